"""Interruptions: a run killed at any point, then rerun, equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import polars as pl
import pytest

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
