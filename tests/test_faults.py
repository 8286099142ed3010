"""Faults inside a run: eras that raise, workers that die or hang. The rest completes.

The ``faulty`` extractor (tests/plugins/faults.py) is the native extractor plus injected
faults on chosen eras; every other era must come out exactly as a clean run computes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from streamfx.source.datasets.demo import DemoTables, seed_demo

from .conftest import REPO
from .helpers import db_features, streamfx, write_pipeline

#: By era key (compartment/era_id): the demo's eras 1-4 are compartment 1's, 5-12 compartment 2's.
FAULTS = {
    "1/2": "raise",  # fails on every try
    "2/5": "crash",  # kills its worker on every try
    "2/8": "hang",  # never returns: stopped by era_timeout
    "1/3": "crash-once",  # kills its worker once, then succeeds on a fresh one
    "2/10": "raise-once",  # raises once, then succeeds
}
FAILING = {"1/2", "2/5", "2/8"}


def pipeline(tmp_path: Path, name: str, extractor: str) -> Path:
    return write_pipeline(
        tmp_path / f"{name}.yaml",
        plugins=[str(REPO / "tests" / "plugins" / "faults.py")],
        stages__extract__extractor=extractor,
        stages__classify={"profile": "reference", "default_features": "minimal"},
        executor={
            "cpu_workers": 2,
            "eras_per_pass": 3,
            "batch_eras": 2,
            "retry": {"attempts": 2, "backoff": "0s"},
            "era_timeout": "8s",
        },
        sinks__parquet__path=str(tmp_path / name),
        sinks__postgres__table=f"features_{name}",
    )


def statuses(conn, table: str) -> dict[str, tuple[str, int, str | None]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT partition || '/' || era_id, status, attempts, error FROM streamfx_era_status"
            " WHERE features_table = $1",
            parameters=(f'"public"."{table}"',),
        )
        rows = cur.fetchall()
    conn.commit()
    return {era: (status, attempts, error) for era, status, attempts, error in rows}


def assert_same_values(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Equal keys, values equal to 1e-9 (eras retried alone are batched differently)."""
    assert got.select("era_id", "sensor", "feature").equals(
        expected.select("era_id", "sensor", "feature")
    )
    np.testing.assert_allclose(
        got["value"].to_numpy(), expected["value"].to_numpy(), rtol=1e-9, atol=1e-12
    )


def test_faulty_eras_fail_alone_and_a_rerun_completes(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    seed_demo(pg_conn, DemoTables(), days=5)
    clean = streamfx("run", str(pipeline(tmp_path, "clean", "native")), "-q", dsn=pg_dsn)
    assert clean.returncode == 0, clean.stderr
    expected = db_features(pg_conn, "features_clean")
    all_eras = set(expected["era_id"].unique())
    assert FAILING.issubset(all_eras) and len(all_eras) > len(FAILING)

    path = pipeline(tmp_path, "faulty", "faulty")
    faults = {
        "STREAMFX_FAULTS": ",".join(f"{era}:{fault}" for era, fault in FAULTS.items()),
        "STREAMFX_FAULTS_DIR": str(tmp_path),
    }
    run = streamfx("run", str(path), "-q", dsn=pg_dsn, env=faults)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    for era in FAILING:
        assert f"era {era} failed" in run.stderr

    # the database: every other era done, the faulty ones failed with their reasons
    status = statuses(pg_conn, "features_faulty")
    assert status["1/2"][:2] == ("failed", 2) and "injected fault on era 1/2" in status["1/2"][2]
    assert status["2/5"][:2] == ("failed", 2) and "died" in status["2/5"][2]
    assert status["2/8"][0] == "failed" and "timed out after 8 s" in status["2/8"][2]
    # a try that fails a pass of several eras counts for none of them: each is redone alone
    assert status["1/3"][0] == "done" and status["2/10"][0] == "done"
    assert {era for era, s in status.items() if s[0] == "done"} == all_eras - FAILING
    got = db_features(pg_conn, "features_faulty")
    assert set(got["era_id"].unique()) == all_eras - FAILING
    assert_same_values(got, expected.filter(~pl.col("era_id").is_in(list(FAILING))))

    # the report says the same
    (report_file,) = (tmp_path / "faulty" / "runs").glob("*.json")
    report = json.loads(report_file.read_text())
    assert report["eras"]["failed"] == 3 and report["ended"] == "completed"
    detail = {f"{e['partition']}/{e['era_id']}": e for e in report["eras_detail"]}
    assert {e for e, d in detail.items() if d["status"] == "failed"} == FAILING
    assert detail["2/5"]["attempts"] == 2 and detail["1/3"]["status"] == "done"
    assert sum(w["restarts"] for w in report["workers"]) >= 3  # era 5 crashing, era 8 hanging
    # every try, with why it was tried again: the timeline of `streamfx report`
    tries = {era: d["tries"] for era, d in detail.items()}
    assert all(t["start_s"] <= t["end_s"] <= report["seconds"] for ts in tries.values() for t in ts)
    assert all(
        tries[e][-1]["outcome"] == "done" for e, d in detail.items() if d["status"] == "done"
    )
    assert [t["outcome"] for t in tries["1/2"][-2:]] == ["retried", "failed"]
    assert "injected fault on era 1/2" in tries["1/2"][-1]["error"]
    assert tries["2/5"][-1]["outcome"] == "failed" and "died" in tries["2/5"][-1]["error"]
    assert "timed out after 8 s" in tries["2/8"][-1]["error"]
    died = [t for t in tries["1/3"] if t["outcome"] == "retried"]  # crashed under it once
    assert died and "died" in died[0]["error"]
    raised = [t["error"] for t in tries["2/10"] if t["outcome"] == "retried"]
    assert raised and all("injected fault on era 2/10" in e for e in raised)

    # the faults are gone: a rerun computes only the failed eras, and the output is complete
    rerun = streamfx("run", str(path), "-q", dsn=pg_dsn, env={"STREAMFX_FAULTS": ""})
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(all_eras) - 3} eras already done" in rerun.stderr
    assert_same_values(db_features(pg_conn, "features_faulty"), expected)
    parquet = pl.read_parquet(tmp_path / "faulty" / "features.parquet").sort("era_id")
    reference = pl.read_parquet(tmp_path / "clean" / "features.parquet").sort("era_id")
    assert parquet["era_id"].to_list() == reference["era_id"].to_list()
    assert parquet.columns == reference.columns
    numbers = [c for c, t in reference.schema.items() if t == pl.Float64]
    np.testing.assert_allclose(
        parquet.select(numbers).to_numpy(), reference.select(numbers).to_numpy(), rtol=1e-9
    )
