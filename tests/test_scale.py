"""Thousands of short windows in one run: the same output batch by batch as in one big batch,
the long-form view equal to Parquet, and a rerun that writes nothing again."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl

from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import db_features, streamfx, write_pipeline
from .test_pipeline import parquet_long

WINDOWS = {"every": "20min"}  # 23 days x 72 windows x 2 compartments = 3,312 eras


def _pipeline(tmp_path: Path, label: str, **executor: int) -> Path:
    return write_pipeline(
        tmp_path / f"{label}.yaml",
        source__eras=WINDOWS,
        stages__classify={"profile": None},  # minimal features everywhere: CI-sized
        stages__extract={"n_jobs": 0, "rolling_windows": []},
        sinks__parquet__path=str(tmp_path / label),
        sinks__postgres__table=f"features_{label}",
        executor=executor,
    )


def _report(folder: Path) -> dict:
    (path,) = sorted((folder / "runs").glob("*.json"))[-1:]
    return json.loads(path.read_text())


def test_thousands_of_windows_equal_one_big_batch_and_rerun_writes_nothing(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    seed_demo(pg_conn, DemoTables(eras_table=None), days=23)
    batched = _pipeline(tmp_path, "batched", cpu_workers=2)
    result = streamfx("run", str(batched), "-q", dsn=pg_dsn)
    assert result.returncode == 0, result.stderr
    report = _report(tmp_path / "batched")
    assert report["eras"]["total"] >= 3000
    done = report["eras"]["done"]
    assert done >= 3000

    whole = _pipeline(tmp_path, "whole", cpu_workers=1, eras_per_pass=4000, batch_eras=4000)
    result = streamfx("run", str(whole), "-q", dsn=pg_dsn)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "whole" / "parts").glob("*.parquet"))) == 1  # one batch

    # Parquet: the same rows, columns and values (NaN and null in the same cells)
    a = pl.read_parquet(tmp_path / "batched" / "features.parquet")
    b = pl.read_parquet(tmp_path / "whole" / "features.parquet")
    assert a.height == done and a.columns == b.columns
    assert a.equals(b, null_equal=True)

    # PostgreSQL: the same values, and the view equal to what Parquet holds
    in_db = db_features(pg_conn, "features_batched")
    assert in_db.equals(db_features(pg_conn, "features_whole"), null_equal=True)
    from_parquet = parquet_long(tmp_path / "batched" / "features.parquet").sort(
        "era_id", "sensor", "feature"
    )
    assert in_db.height == from_parquet.height == report["rows_written"]["postgres"]
    joined = in_db.join(from_parquet, on=["era_id", "sensor", "feature"], how="full")
    assert joined["value"].null_count() == joined["value_right"].null_count() == 0
    for got, want in joined.select("value", "value_right").iter_rows():
        assert got == want or (math.isnan(got) and math.isnan(want))

    # a rerun finds everything done and writes nothing
    parts = sorted((tmp_path / "batched" / "parts").iterdir())
    again = streamfx("run", str(batched), "-q", dsn=pg_dsn)
    assert again.returncode == 0, again.stderr
    assert f"{done} already done" in again.stdout
    rerun = _report(tmp_path / "batched")
    assert rerun["run_id"] != report["run_id"] and rerun["rows_written"] == {}
    assert sorted((tmp_path / "batched" / "parts").iterdir()) == parts
    assert db_features(pg_conn, "features_batched").equals(in_db, null_equal=True)
