"""Small helpers shared by tests: write pipeline files, run the CLI as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
