"""Small helpers shared by tests: write pipeline files, run the CLI as users do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml


def write_pipeline(path: Path, **overrides: Any) -> Path:
    """A pipeline file for the demo tables, reading the DSN from $STREAMFX_DSN."""
    config: dict[str, Any] = {
        "name": "test",
        "source": {
            "dsn": "${STREAMFX_DSN}",
            "readings": {
                "table": "sensor_readings",
                "layout": "long",
                "partition_column": "compartment_id",
            },
            "eras": {"table": "eras", "partition_column": "compartment_id"},
        },
        "stages": {"extract": {"n_jobs": 0}},
        "sinks": {
            "parquet": {"path": str(path.parent / "out")},
            "postgres": {"table": "streamfx_features"},
        },
    }
    for dotted, value in overrides.items():
        node = config
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def streamfx(
    *args: str,
    dsn: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run the installed ``streamfx`` command in a subprocess, as a user would."""
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    if dsn is not None:
        env["STREAMFX_DSN"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "streamfx.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


#: An era's key (partition/era_id, as streamfx prints it) from a features view or table.
ERA_KEY_SQL = "coalesce(partition || '/', '') || era_id AS era_id"


def validate_offline(path: Path) -> subprocess.CompletedProcess:
    """``streamfx validate --offline PATH`` in this process (typer's runner: the same command,
    its output and exit status, without a Python start per file), as ``streamfx`` returns it."""
    from typer.testing import CliRunner

    from streamfx.cli import app

    args = ["validate", "--offline", str(path)]
    result = CliRunner().invoke(app, args)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def db_features(conn, table: str) -> pl.DataFrame:
    """A features table's (era key, sensor, feature, value) rows, in key order."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {ERA_KEY_SQL}, sensor, feature, value FROM {table}")
        frame = pl.from_arrow(cur.fetch_arrow_table())
    conn.commit()
    return frame.sort("era_id", "sensor", "feature")


def start_run(path: Path, dsn: str, *args: str, sigint: Any = signal.SIG_DFL) -> subprocess.Popen:
    """``streamfx run PATH -q ARGS`` in the background, in its own process group (as a
    terminal gives it), output piped; ``sigint`` is its Ctrl-C disposition (default: handled,
    whatever pytest inherited)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamfx.cli", "run", str(path), "-q", *args],
        env={**os.environ, "STREAMFX_DSN": dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


def wait_for_parts(folder: Path, count: int, process: subprocess.Popen) -> None:
    """Until the run has written ``count`` Parquet parts into ``folder``; fails if it ends first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if folder.exists() and len(list(folder.glob("*.parquet"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the run ended before it could be interrupted")


def wait_for_workers(process: subprocess.Popen, count: int = 2) -> None:
    """Until the run has spawned ``count`` worker processes; fails if it ends first."""
    import psutil

    runner = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        spawned = [c for c in runner.children() if "multiprocessing" in " ".join(c.cmdline())]
        if len(spawned) >= count:
            return
        time.sleep(0.01)
    raise AssertionError("the run ended before its workers started")
