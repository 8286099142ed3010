"""The ray executor: a local Ray instance (2 CPUs) gives the local executor's output, survives a
killed worker, and a missing ray extra is one line.

Every run is ``streamfx run`` in a subprocess, so Ray is started and stopped with each run. One
database and one local-executor reference run are shared by the module (Ray is slow to start).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import polars as pl
import pytest

from streamfx.database import connect
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .conftest import _with_database
from .helpers import db_features, streamfx, write_pipeline

pytest.importorskip("ray")

FAULTS = Path(__file__).parent / "plugins" / "faults.py"
RUN_COLUMNS = ["run_id"]  # run-specific, dropped before comparing


@pytest.fixture(scope="module")
def shared(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One demo database (3 days) and the local executor's run on it, for the whole module."""
    import adbc_driver_postgresql.dbapi as pg

    name = f"ray_{uuid.uuid4().hex[:8]}"
    with pg.connect(pg_server, autocommit=True) as admin, admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(pg_server, name)
    conn = connect(dsn)
    seed_demo(conn, DemoTables(), days=3)
    tmp = tmp_path_factory.mktemp("ray")
    local = run(tmp, "local", dsn, executor={"kind": "local", "cpu_workers": 2})
    assert local.returncode == 0, local.stderr
    with conn.cursor() as cur:
        cur.execute("SELECT compartment_id || '/' || era_id FROM eras ORDER BY era_id LIMIT 1")
        first_era = str(cur.fetchone()[0])  # its key: compartment/era_id
    conn.commit()
    yield {"dsn": dsn, "conn": conn, "tmp": tmp, "first_era": first_era}
    conn.close()


def run(tmp: Path, label: str, dsn: str, **overrides) -> subprocess.CompletedProcess:
    path = write_pipeline(
        tmp / f"{label}.yaml",
        name=f"ray-{label}",
        sinks__parquet__path=str(tmp / label),
        sinks__postgres__table=f"features_{label}",
        **overrides,
    )
    return streamfx("run", str(path), "-q", dsn=dsn)


def parquet(tmp: Path, label: str) -> pl.DataFrame:
    frame = pl.read_parquet(tmp / label / "features.parquet")
    return frame.drop([c for c in RUN_COLUMNS if c in frame.columns]).sort("era_id")


def report(tmp: Path, label: str) -> dict:
    (path,) = (tmp / label / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_ray_output_equals_local(shared: dict) -> None:
    tmp, dsn, conn = shared["tmp"], shared["dsn"], shared["conn"]
    result = run(tmp, "ray", dsn, executor={"kind": "ray", "ray_num_cpus": 2})
    assert result.returncode == 0, result.stderr
    assert "local Ray instance" in result.stderr and "2 CPUs" in result.stderr

    assert parquet(tmp, "ray").equals(parquet(tmp, "local"))
    assert db_features(conn, "features_ray").equals(db_features(conn, "features_local"))
    assert db_features(conn, "features_ray").height > 0

    # the workers wrote the Parquet parts themselves; the run's process only composed them
    parts = sorted(p.name for p in (tmp / "ray" / "parts").iterdir())
    assert parts and all(re.fullmatch(r".+-w[0-9a-f]{8}-\d{6}\.parquet", p) for p in parts)
    assert len({p.rsplit("-", 1)[0] for p in parts}) == 2  # one token per worker process
    manifest = json.loads((tmp / "ray" / "manifest.json").read_text())
    assert manifest["rows"] == parquet(tmp, "local").height

    workers = report(tmp, "ray")["workers"]
    assert [w["worker"] for w in workers] == ["cpu-0", "cpu-1"]  # lanes: the cluster's 2 CPUs
    assert all(w["node"] and w["peak_rss_mb"] > 0 for w in workers)
    assert report(tmp, "ray")["eras"]["failed"] == 0


def test_ray_worker_killed_is_retried(shared: dict, tmp_path: Path, monkeypatch) -> None:
    tmp, dsn, conn, era = shared["tmp"], shared["dsn"], shared["conn"], shared["first_era"]
    monkeypatch.setenv("STREAMFX_FAULTS", f"{era}:crash-once")  # passed on to the Ray workers
    monkeypatch.setenv("STREAMFX_FAULTS_DIR", str(tmp_path))
    result = run(
        tmp,
        "crashed",
        dsn,
        plugins=[str(FAULTS)],
        stages__extract__extractor="faulty",
        executor={
            "kind": "ray",
            "ray_num_cpus": 2,
            "eras_per_pass": 1,
            "retry": {"attempts": 3, "backoff": "0s"},
        },
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{era.replace('/', '_')}.tried").exists()  # the fault did fire
    assert f"era {era}: try 2" in result.stderr  # on a fresh task

    assert parquet(tmp, "crashed").equals(parquet(tmp, "local"))
    assert db_features(conn, "features_crashed").equals(db_features(conn, "features_local"))
    done = report(tmp, "crashed")
    detail = {f"{e['partition']}/{e['era_id']}": e for e in done["eras_detail"]}
    assert detail[era]["attempts"] == 2 and detail[era]["status"] == "done"
    assert sum(w["restarts"] for w in done["workers"]) == 1


def test_ray_missing_is_one_line(shared: dict, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ray.py").write_text("raise ImportError('No module named ray')\n")
    path = write_pipeline(tmp_path / "pipeline.yaml", executor={"kind": "ray"})
    env = {**os.environ, "PYTHONPATH": str(hide), "STREAMFX_DSN": shared["dsn"]}
    for args in (["validate", "--offline"], ["run"]):
        result = subprocess.run(
            [sys.executable, "-m", "streamfx.cli", args[0], str(path), *args[1:]],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line == (
            f"error: {path}: executor.kind: ray needs the ray extra: pip install 'streamfx[ray]'"
        )


def test_ray_parquet_only_keeps_features_on_the_workers(shared: dict) -> None:
    """Every sink written by the workers: only counts reach the run's process, and the output
    equals the local executor's."""
    tmp, dsn = shared["tmp"], shared["dsn"]
    path = write_pipeline(
        tmp / "ray-parquet.yaml",
        name="ray-parquet",
        sinks={"parquet": {"path": str(tmp / "ray-parquet")}},
        executor={"kind": "ray", "ray_num_cpus": 2},
    )
    result = streamfx("run", str(path), "-q", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert parquet(tmp, "ray-parquet").equals(parquet(tmp, "local"))
    done = report(tmp, "ray-parquet")["eras"]["done"]
    assert report(tmp, "ray-parquet")["rows_written"] == {"parquet": done}
    eras = {e["era_id"]: e for e in report(tmp, "ray-parquet")["eras_detail"]}
    assert all(e["features"] > 0 for e in eras.values() if e["status"] == "done")
