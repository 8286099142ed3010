"""Interruptions: a run killed at any point, then rerun, equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from streamfx.database import qualified
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import (
    db_features,
    start_run,
    streamfx,
    wait_for_parts,
    wait_for_workers,
    write_pipeline,
)


def pipeline(tmp_path: Path, name: str) -> Path:
    return write_pipeline(
        tmp_path / f"{name}.yaml",
        stages__classify={"profile": "reference", "default_features": "minimal"},
        executor={"cpu_workers": 1, "eras_per_pass": 1, "batch_eras": 1},
        sinks__parquet__path=str(tmp_path / name),
        sinks__postgres__table=f"features_{name}",
    )


@pytest.mark.parametrize("parts_before_kill", [1, 3])
def test_kill_9_then_rerun_equals_uninterrupted(
    tmp_path: Path, pg_dsn: str, pg_conn, parts_before_kill: int
) -> None:
    seed_demo(pg_conn, DemoTables(), days=5)
    reference = streamfx("run", str(pipeline(tmp_path, "reference")), "-q", dsn=pg_dsn)
    assert reference.returncode == 0, reference.stderr

    path = pipeline(tmp_path, "killed")
    process = start_run(path, pg_dsn)
    wait_for_parts(tmp_path / "killed" / "parts", parts_before_kill, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()

    rerun = streamfx("run", str(path), "-q", dsn=pg_dsn)
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in rerun.stdout

    expected = pl.read_parquet(tmp_path / "reference" / "features.parquet").drop("readings")
    got = pl.read_parquet(tmp_path / "killed" / "features.parquet").drop("readings")
    assert got.equals(expected)
    assert db_features(pg_conn, "features_killed").equals(
        db_features(pg_conn, "features_reference")
    )


def era_status(conn, table: str) -> dict[str, str]:
    """Each era's status (by key) in the status table, for ``table``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(NULLIF(partition, '') || '/', '') || era_id, status"
            " FROM streamfx_era_status WHERE features_table = $1",
            parameters=(qualified("public", table),),
        )
        rows = dict(cur.fetchall())
    conn.commit()
    return rows


def assert_equals_reference(tmp_path: Path, conn, name: str) -> None:
    """The Parquet file and the features table of ``name`` equal the reference run's."""
    expected = pl.read_parquet(tmp_path / "reference" / "features.parquet").drop("readings")
    got = pl.read_parquet(tmp_path / name / "features.parquet").drop("readings")
    assert got.equals(expected)
    rows = db_features(conn, f"features_{name}")
    assert rows.equals(db_features(conn, "features_reference"))
    assert not rows.select("era_id", "sensor", "feature").is_duplicated().any()


@pytest.mark.parametrize("runs", [2, 3])
def test_concurrent_runs_of_one_pipeline_one_runs_the_others_stop(
    tmp_path: Path, pg_dsn: str, pg_conn, runs: int
) -> None:
    """Runs of one pipeline started at once: one holds the pipeline's lock and does every era,
    each other one stops at once with exit status 2, naming the run that holds it."""
    seed_demo(pg_conn, DemoTables(), days=5)
    reference = streamfx("run", str(pipeline(tmp_path, "reference")), "-q", dsn=pg_dsn)
    assert reference.returncode == 0, reference.stderr
    path = pipeline(tmp_path, "shared")
    processes = [start_run(path, pg_dsn) for _ in range(runs)]
    ended = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in ended) == [0] + [2] * (runs - 1), ended
    for code, stderr in ended:
        if code == 2:
            (line,) = stderr.strip().splitlines()
            assert "pipeline 'test' is already running (streamfx run " in line
            assert " pid " in line and ", since " in line and "--wait" in line
    assert_equals_reference(tmp_path, pg_conn, "shared")
    status = era_status(pg_conn, "features_shared")
    assert status == era_status(pg_conn, "features_reference") and set(status.values()) == {"done"}


def test_concurrent_runs_with_wait_run_one_after_the_other(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """With --wait the second run waits for the first, then finds every era done."""
    seed_demo(pg_conn, DemoTables(), days=5)
    reference = streamfx("run", str(pipeline(tmp_path, "reference")), "-q", dsn=pg_dsn)
    assert reference.returncode == 0, reference.stderr
    path = pipeline(tmp_path, "waited")
    processes = [start_run(path, pg_dsn, "--wait") for _ in range(2)]
    ended = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    assert [code for code, _ in ended] == [0, 0], ended
    waited = [stderr for _, stderr in ended if "waiting for the other run" in stderr]
    assert len(waited) == 1, ended
    assert sum("eras already done with this configuration" in e for _, e in ended) == 1
    assert_equals_reference(tmp_path, pg_conn, "waited")


def test_sigterm_stops_cleanly_with_143(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    seed_demo(pg_conn, DemoTables(), days=5)
    path = pipeline(tmp_path, "terminated")
    process = start_run(path, pg_dsn)
    wait_for_parts(tmp_path / "terminated" / "parts", 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated" in stderr
    # what landed is whole: the composed table reads, and a rerun finishes the rest
    assert pl.read_parquet(tmp_path / "terminated" / "features.parquet").height >= 1
    (report,) = (tmp_path / "terminated" / "runs").glob("*.json")
    assert json.loads(report.read_text())["ended"] == "interrupted"
    assert streamfx("run", str(path), "-q", dsn=pg_dsn).returncode == 0


def test_ctrl_c_while_workers_start_exits_130_without_tracebacks(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """Ctrl-C reaches the terminal's whole process group: workers still importing must not
    die of it with tracebacks, and no era may be reported failed; the runner stops them."""
    seed_demo(pg_conn, DemoTables(), days=5)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        executor={"cpu_workers": 2},
        sinks__parquet__path=str(tmp_path / "out"),
    )
    process = start_run(path, pg_dsn)  # Ctrl-C handled, in its own group: as in a terminal
    wait_for_workers(process)
    time.sleep(0.3)  # the workers' interpreters are up and importing streamfx (about 1 s)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "failed" not in stderr and "interrupted" in stderr


def test_sigint_to_the_group_of_a_runner_that_ignores_it_changes_nothing(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """A run started with Ctrl-C ignored (nohup, a background job of a script) ignores a
    SIGINT sent to its process group, its workers too, even while they are still starting."""
    seed_demo(pg_conn, DemoTables(), days=3)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        executor={"cpu_workers": 2},
        sinks__parquet__path=str(tmp_path / "out"),
    )
    process = start_run(path, pg_dsn, sigint=signal.SIG_IGN)
    wait_for_workers(process)
    for _ in range(5):  # while the workers import and begin
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.2)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "failed" not in stderr


def test_report_counts_done_only_the_eras_every_sink_committed(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """The Parquet sink fails mid-run (its parts folder turns into a file): the run exits 1,
    the report counts done exactly the eras both sinks hold, and no era stays running."""
    import pyarrow.parquet as pq

    seed_demo(pg_conn, DemoTables(), days=5)
    path = pipeline(tmp_path, "broken")
    parts = tmp_path / "broken" / "parts"
    process = start_run(path, pg_dsn)
    wait_for_parts(parts, 2, process)
    parts.rename(tmp_path / "broken" / "parts.moved")
    parts.write_text("in the way")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "error: sinks.parquet" in stderr and "Traceback" not in stderr

    in_parquet = {
        f"{partition}/{era_id}" if partition else era_id
        for part in (tmp_path / "broken" / "parts.moved").glob("*.parquet")
        for era_id, partition, *_ in json.loads(pq.read_schema(part).metadata[b"streamfx.eras"])
    }
    status = era_status(pg_conn, "features_broken")
    in_postgres = {key for key, state in status.items() if state == "done"}
    assert "running" not in status.values()
    (report_file,) = (tmp_path / "broken" / "runs").glob("*.json")
    report = json.loads(report_file.read_text())
    done = {
        f"{e['partition']}/{e['era_id']}" if e["partition"] else e["era_id"]
        for e in report["eras_detail"]
        if e["status"] == "done"
    }
    assert done == in_parquet & in_postgres and report["eras"]["done"] == len(done)
    assert report["ended"].startswith("aborted: sinks.parquet")


def test_report_is_written_when_the_output_folder_is_not(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """Every era reaches both sinks, but features.parquet and runs/ cannot be written: the
    run exits 1 naming the sink, says where the report could not go, and the database still
    gets the report, counting every era done."""
    seed_demo(pg_conn, DemoTables(), days=3)
    path = pipeline(tmp_path, "blocked")
    out = tmp_path / "blocked"
    (out / "features.parquet").mkdir(parents=True)  # a folder where the file goes
    (out / "features.parquet" / "keep").write_text("")
    (out / "runs").write_text("a file where the folder goes")
    result = streamfx("run", str(path), "-q", dsn=pg_dsn)
    assert result.returncode == 1, result.stderr
    assert "run report not written to" in result.stderr and "runs" in result.stderr
    assert "error: sinks.parquet:" in result.stderr and "Traceback" not in result.stderr
    status = era_status(pg_conn, "features_blocked")
    assert set(status.values()) == {"done"}
    with pg_conn.cursor() as cur:
        cur.execute("SELECT eras_done, eras_total, report->>'ended' FROM streamfx_runs")
        ((done, total, ended),) = cur.fetchall()
    pg_conn.commit()
    assert done == len(status) and total >= done and ended.startswith("aborted: sinks.parquet")


def test_a_cancelled_postgres_write_stops_the_run_as_ctrl_c_does(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """The PostgreSQL sink's COPY is cancelled (what Ctrl-C does to a call in flight): the
    batch rolls back, the run exits 130, the report says interrupted, no era stays running,
    and a rerun equals an uninterrupted run."""
    seed_demo(pg_conn, DemoTables(), days=5)
    reference = streamfx("run", str(pipeline(tmp_path, "reference")), "-q", dsn=pg_dsn)
    assert reference.returncode == 0, reference.stderr
    path = pipeline(tmp_path, "cancelled")
    process = start_run(path, pg_dsn)
    deadline = time.monotonic() + 300
    cancelled = False
    while not cancelled and process.poll() is None and time.monotonic() < deadline:
        with pg_conn.cursor() as cur:
            cur.execute(
                "SELECT bool_or(pg_cancel_backend(pid)) FROM pg_stat_activity"
                " WHERE state = 'active' AND pid <> pg_backend_pid()"
                " AND query LIKE 'COPY %features_cancelled_values%'"
            )
            cancelled = bool(cur.fetchall()[0][0])
        pg_conn.commit()
    assert cancelled, "the run ended before a write could be cancelled"
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    (report,) = (tmp_path / "cancelled" / "runs").glob("*.json")
    assert json.loads(report.read_text())["ended"] == "interrupted"
    assert "running" not in era_status(pg_conn, "features_cancelled").values()
    rerun = streamfx("run", str(path), "-q", dsn=pg_dsn)
    assert rerun.returncode == 0, rerun.stderr
    assert_equals_reference(tmp_path, pg_conn, "cancelled")


def test_workers_of_a_killed_runner_exit_quietly(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    """The runner alone is killed (its workers are not): each worker finds its pipe broken at
    its next message and exits without a traceback."""
    seed_demo(pg_conn, DemoTables(), days=5)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        executor={"cpu_workers": 2, "eras_per_pass": 1, "batch_eras": 1},
        sinks__parquet__path=str(tmp_path / "out"),
    )
    process = start_run(path, pg_dsn)
    wait_for_parts(tmp_path / "out" / "parts", 1, process)  # the workers are sending eras
    process.kill()
    _, stderr = process.communicate(timeout=120)  # EOF: every worker has exited
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
