"""Interruptions: a run killed at any point, then rerun, equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from streamfx.datasets.demo import DemoTables, seed_demo

from .helpers import streamfx, write_pipeline

KEYS = ["era_id", "sensor", "feature"]


def features(conn, table: str) -> pl.DataFrame:
    with conn.cursor() as cur:
        cur.execute(f"SELECT era_id, sensor, feature, value FROM {table}")
        frame = pl.from_arrow(cur.fetch_arrow_table())
    conn.commit()
    return frame.sort(KEYS)


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
    env = {**os.environ, "STREAMFX_DSN": pg_dsn}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamfx.cli", "run", str(path), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    parts = tmp_path / "killed" / "parts"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if parts.exists() and len(list(parts.glob("*.parquet"))) >= parts_before_kill:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    rerun = streamfx("run", str(path), "-q", dsn=pg_dsn)
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in rerun.stdout

    expected = pl.read_parquet(tmp_path / "reference" / "features.parquet").drop("readings")
    got = pl.read_parquet(tmp_path / "killed" / "features.parquet").drop("readings")
    assert got.equals(expected)
    assert features(pg_conn, "features_killed").equals(features(pg_conn, "features_reference"))


def test_sigterm_stops_cleanly_with_143(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    seed_demo(pg_conn, DemoTables(), days=5)
    path = pipeline(tmp_path, "terminated")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamfx.cli", "run", str(path), "-q"],
        env={**os.environ, "STREAMFX_DSN": pg_dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parts = tmp_path / "terminated" / "parts"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (parts.exists() and any(parts.glob("*.parquet"))):
        time.sleep(0.05)
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
    import psutil

    seed_demo(pg_conn, DemoTables(), days=5)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        executor={"cpu_workers": 2},
        sinks__parquet__path=str(tmp_path / "out"),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "streamfx.cli", "run", str(path), "-q"],
        env={**os.environ, "STREAMFX_DSN": pg_dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
        # Ctrl-C handled, as in a terminal (a background job of a script inherits it ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    runner = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        spawned = [c for c in runner.children() if "multiprocessing" in " ".join(c.cmdline())]
        if len(spawned) >= 2:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before its workers started"
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
    import psutil

    seed_demo(pg_conn, DemoTables(), days=3)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        executor={"cpu_workers": 2},
        sinks__parquet__path=str(tmp_path / "out"),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "streamfx.cli", "run", str(path), "-q"],
        env={**os.environ, "STREAMFX_DSN": pg_dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    runner = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len([c for c in runner.children() if "multiprocessing" in " ".join(c.cmdline())]) >= 2:
            break
        time.sleep(0.01)
    for _ in range(5):  # while the workers import and begin
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.2)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "failed" not in stderr
