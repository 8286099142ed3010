"""Parallel lanes end to end: workers, GPU fallback, `streamfx plan`, and the run report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from streamfx.config import load_config
from streamfx.run.pipeline import run_pipeline
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import streamfx, write_pipeline

FORCE_GPU = {"cpu_below_readings": 0, "gpu_ratio_above": 0.0}


@pytest.fixture
def demo_dsn(pg_dsn: str, pg_conn, monkeypatch: pytest.MonkeyPatch) -> str:
    seed_demo(pg_conn, DemoTables(), days=4)
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    monkeypatch.delenv("USE_SMART_DISTRIBUTION", raising=False)
    return pg_dsn


def query(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.commit()
    return rows


def test_two_workers_equal_one_worker(tmp_path: Path, demo_dsn: str, pg_conn) -> None:
    tables = {}
    for workers in (1, 2):
        path = write_pipeline(
            tmp_path / f"w{workers}.yaml",
            executor__cpu_workers=workers,
            sinks__parquet__path=str(tmp_path / f"out{workers}"),
            sinks__postgres__table=f"features_{workers}",
        )
        summary = run_pipeline(load_config(path))
        assert not summary.failed
        assert {r.worker for r in summary.records.values() if r.status == "done"} == {
            f"cpu-{w}" for w in range(workers)
        }
        tables[workers] = pl.read_parquet(tmp_path / f"out{workers}" / "features.parquet")
    assert tables[1].equals(tables[2])
    one = pl.DataFrame(query(pg_conn, "SELECT * FROM features_1 ORDER BY 1, 2, 3"), orient="row")
    two = pl.DataFrame(query(pg_conn, "SELECT * FROM features_2 ORDER BY 1, 2, 3"), orient="row")
    assert one[:, :4].equals(two[:, :4])


def test_run_report_matches_database(tmp_path: Path, demo_dsn: str, pg_conn) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", executor__cpu_workers=2)
    summary = run_pipeline(load_config(path))
    report = json.loads((tmp_path / "out" / "runs" / f"{summary.run_id}.json").read_text())

    (run,) = query(
        pg_conn,
        "SELECT eras_total, eras_done, eras_skipped, eras_failed, features, success_rate "
        f"FROM streamfx_runs WHERE run_id = '{summary.run_id}'",
    )
    by_status = dict(
        query(
            pg_conn,
            "SELECT status, count(*) FROM streamfx_era_runs "
            f"WHERE run_id = '{summary.run_id}' GROUP BY status",
        )
    )
    (stored,) = query(pg_conn, "SELECT count(*) FROM streamfx_features")
    eras = report["eras"]
    assert run[:4] == (eras["total"], eras["done"], eras["skipped"], eras["failed"])
    assert by_status == {"done": eras["done"], "skipped": eras["skipped"]}
    assert run[4] == report["features"] == stored[0] == summary.features
    assert run[5] == report["success_rate"] == 1.0
    assert report["distribution"]["ran"]["cpu"] == eras["done"]
    assert {w["worker"] for w in report["workers"]} == {"cpu-0", "cpu-1"}
    assert all(w["peak_rss_mb"] > 0 and w["busy_s"] > 0 for w in report["workers"])
    assert report["balance"]["cpu"]["estimated_imbalance"] >= 1.0
    detail = {e["era_id"]: e for e in report["eras_detail"]}
    assert all(e["rule"] for e in detail.values())
    assert all(e["seconds"] > 0 for e in detail.values() if e["status"] == "done")
    # where the time went: each step measured, together no more than the run; the sinks'
    # writer runs alongside extraction, each of its parts within the run too
    timings, writes = report["timings_s"], report["writes_s"]
    steps = {"plan", "compile kernels", "extract", "wait for sinks", "write (after extraction)"}
    assert steps | {"close parquet", "close postgres"} == set(timings)
    assert set(writes) == {"era status", "write parquet", "write postgres"}
    assert all(v >= 0 for v in [*timings.values(), *writes.values()]) and timings["extract"] > 0
    assert sum(timings.values()) <= report["seconds"] + 0.01
    assert all(v <= report["seconds"] for v in writes.values())
    assert all(w["node"] for w in report["workers"])


def test_gpu_routed_eras_fall_back_with_one_notice(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", stages__classify__routing=FORCE_GPU)
    result = streamfx("run", str(path), "-q")
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "GPU lane unavailable" in line]
    assert len(notices) == 1, result.stderr
    assert "run on the CPU lane" in notices[0]
    assert "routed GPU 5 / CPU 0" in result.stdout
    assert "ran GPU 0 / CPU 5" in result.stdout


def test_gpu_required_without_gpu_exits_2(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", executor__gpu="required")
    result = streamfx("run", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "executor.gpu: required" in result.stderr


def test_plan_shows_routes_rules_and_loads(tmp_path: Path, demo_dsn: str, pg_conn) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", executor__cpu_workers=2)
    result = streamfx("plan", str(path))
    assert result.returncode == 0, result.stderr
    out, routes = result.stdout.split("routes (eras per route and rule)")
    (eras,) = query(pg_conn, "SELECT count(*) FROM eras")[0]
    rows = [line for line in out.splitlines() if re.search(r"│ (cpu|gpu|skip) +│", line)]
    assert len(rows) == eras  # one row per era, each with its route
    assert sum("< 10,000" in row for row in rows) == eras - 1
    assert sum("no readings: skipped" in row for row in rows) == 1  # the era after the data
    assert re.search(rf"│ cpu +│ readings < 10,000 +│ +{eras - 1} │", routes)
    assert re.search(r"│ skip +│ no readings: skipped +│ +1 │", routes)
    assert "cpu-0" in out and "cpu-1" in out
    assert "cpu lane imbalance (max / mean load):" in routes
    assert not (tmp_path / "out").exists()  # planning extracts and writes nothing


def test_plan_fits_80_columns(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", executor__cpu_workers=2)
    result = streamfx("plan", str(path), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.stdout
    header = next(line for line in lines if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")][:4] == [
        "era", "readings", "route", "rule"
    ]  # fmt: skip
    assert re.search(r"│ 1/\d+ +│ +[\d,]+ │ cpu +│", result.stdout)  # the era's key, its route
    assert "not shown at 80 columns: start, hours, sensors" in result.stdout


def test_plan_shows_some_rows_and_writes_all_to_csv(tmp_path: Path, demo_dsn: str, pg_conn) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", executor__cpu_workers=2)
    result = streamfx("plan", str(path), "--rows", "3", "--csv", str(tmp_path / "plan.csv"))
    assert result.returncode == 0, result.stderr
    (eras,) = query(pg_conn, "SELECT count(*) FROM eras")[0]
    out = result.stdout.split("routes (eras per route and rule)")[0]
    rows = [line for line in out.splitlines() if re.search(r"│ (cpu|gpu|skip) +│", line)]
    assert len(rows) == 3
    assert f"... and {eras - 3:,} more eras" in out
    table = pl.read_csv(tmp_path / "plan.csv", infer_schema=False)
    assert table.height == eras and table.columns[:2] == ["era", "partition"]
    assert table["route"].value_counts().sort("route").rows() == [("cpu", eras - 1), ("skip", 1)]


def test_rerun_resumes_force_recomputes_and_changes_recompute(
    tmp_path: Path, demo_dsn: str, pg_conn
) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", executor__cpu_workers=1)
    first = run_pipeline(load_config(path), limit=3)
    assert first.done == 3 and first.resumed == 0
    table = pl.read_parquet(tmp_path / "out" / "features.parquet")

    again = run_pipeline(load_config(path))  # all eras: the first three are already done
    assert again.resumed == 3 and again.done == 2  # 6 eras: 3 resumed, 2 new, 1 empty
    assert {r.era.id for r in again.records.values() if r.status == "resumed"} == {
        r.era.id for r in first.records.values() if r.status == "done"
    }
    assert pl.read_parquet(tmp_path / "out" / "features.parquet").height == 5

    third = run_pipeline(load_config(path))
    assert third.done == 0 and third.resumed == 5
    final = pl.read_parquet(tmp_path / "out" / "features.parquet")
    assert final.filter(pl.col("era_id").is_in(table["era_id"].to_list())).equals(table)

    forced = run_pipeline(load_config(path), force=True)
    assert forced.done == 5 and forced.resumed == 0

    changed = write_pipeline(
        tmp_path / "pipeline.yaml",
        executor__cpu_workers=1,
        stages__classify__default_features="efficient",
    )
    recomputed = run_pipeline(load_config(changed))
    assert recomputed.done == 5 and recomputed.resumed == 0
    status = dict(
        query(pg_conn, "SELECT status, count(*) FROM streamfx_era_status GROUP BY status")
    )
    assert status == {"done": 5}
