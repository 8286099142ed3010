"""Messy readings, each handled as docs/data.md says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from streamfx.config import load_config
from streamfx.errors import StreamfxError
from streamfx.run.pipeline import run_pipeline

from .helpers import write_pipeline

T0 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def load(conn, table: str, frame: pl.DataFrame, time_type: str = "timestamptz") -> None:
    """A long readings table (time, sensor text, value float8) holding ``frame``."""
    data = frame.to_arrow()
    if time_type == "timestamp":  # naive: the same wall-clock times, without a zone
        data = data.set_column(0, "time", data["time"].cast(pa.timestamp("us")))
    with conn.cursor() as cur:
        cur.execute(f'CREATE TABLE "{table}" (time {time_type}, sensor text, value float8)')
        cur.adbc_ingest(table, data, mode="append")
    conn.commit()


def features(tmp_path: Path, table: str, layout: str = "long", **overrides) -> pl.DataFrame:
    settings = {
        "source__readings": {"table": table, "layout": layout},
        "source__eras": {"every": "1d"},
        "stages__classify": {"profile": None, "default_features": "minimal"},
        "stages__extract": {"rolling_windows": [], "n_jobs": 0},
        "sinks": {"parquet": {"path": str(tmp_path / table)}},
    }
    path = write_pipeline(tmp_path / f"{table}.yaml", **{**settings, **overrides})
    summary = run_pipeline(load_config(path))
    assert not summary.failed
    return pl.read_parquet(tmp_path / table / "features.parquet").drop("readings")


def series(values: list[float], minutes: int = 10, start: dt.datetime = T0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time": [start + dt.timedelta(minutes=minutes * i) for i in range(len(values))],
            "sensor": ["s"] * len(values),
            "value": values,
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("us", "UTC")))


@pytest.fixture
def env(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    return pg_dsn


def test_nan_and_infinite_readings_are_dropped(tmp_path: Path, env, pg_conn) -> None:
    load(pg_conn, "clean", series([1.0, 2.0, 4.0, 8.0]))
    load(pg_conn, "messy", series([1.0, float("nan"), 2.0, float("inf"), 4.0, float("-inf"), 8.0]))
    clean, dirty = features(tmp_path, "clean"), features(tmp_path, "messy")
    assert dirty["s__length"].item() == 4
    assert dirty.drop("era_id", "start", "end").equals(clean.drop("era_id", "start", "end"))


def test_duplicate_timestamps_are_kept(tmp_path: Path, env, pg_conn) -> None:
    frame = pl.concat([series([1.0, 2.0, 3.0]), series([5.0])])  # t0 twice
    load(pg_conn, "dups", frame)
    out = features(tmp_path, "dups")
    assert out["s__length"].item() == 4 and out["s__sum_values"].item() == 11.0


def test_unsorted_rows_give_sorted_results(tmp_path: Path, env, pg_conn) -> None:
    ordered = series([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    load(pg_conn, "ordered", ordered)
    load(pg_conn, "shuffled", ordered.sample(fraction=1.0, shuffle=True, seed=3))
    a, b = features(tmp_path, "ordered"), features(tmp_path, "shuffled")
    assert a.drop("era_id").equals(b.drop("era_id"))


def test_naive_timestamps_are_utc(tmp_path: Path, env, pg_conn) -> None:
    values = series([1.0, 2.0, 3.0, 7.0], minutes=360)  # spans two UTC days from 18:00
    late = values.with_columns(pl.col("time") + pl.duration(hours=18))
    load(pg_conn, "aware", late)
    load(pg_conn, "naive", late, time_type="timestamp")
    aware, naive = features(tmp_path, "aware"), features(tmp_path, "naive")
    assert aware.height == naive.height == 2
    assert aware.drop("era_id").equals(naive.drop("era_id"))


def test_non_numeric_wide_columns(tmp_path: Path, env, pg_conn) -> None:
    wide = pl.DataFrame(
        {
            "time": [T0 + dt.timedelta(hours=h) for h in range(4)],
            "temp": [1.0, 2.0, 3.0, 4.0],
            "label": ["a", "b", "c", "d"],
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("us", "UTC")))
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE wide_mixed (time timestamptz, temp float8, label text)")
        cur.adbc_ingest("wide_mixed", wide.to_arrow(), mode="append")
    pg_conn.commit()
    out = features(tmp_path, "wide_mixed", layout="wide")  # auto-detect skips the text column
    assert "temp__mean" in out.columns and not any(c.startswith("label") for c in out.columns)
    with pytest.raises(StreamfxError, match="label has type text"):
        features(
            tmp_path,
            "wide_mixed",
            layout="wide",
            source__readings={
                "table": "wide_mixed",
                "layout": "wide",
                "sensors": ["temp", "label"],
            },
        )


def test_sensor_named_like_another_sensors_feature_is_refused_at_plan_time(
    tmp_path: Path, pg_dsn: str, pg_conn
) -> None:
    """``air_temp_c__rolling_mean_1h``'s median column would be ``air_temp_c``'s
    ``rolling_mean_1h__median``: plan and run stop before any era, naming both; no era is left
    running, and nothing is written."""
    from streamfx.source.datasets.demo import DemoTables, seed_demo

    from .helpers import streamfx

    seed_demo(pg_conn, DemoTables(), days=2)
    with pg_conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sensor_readings (time, compartment_id, sensor, value)"
            " SELECT time, compartment_id, 'air_temp_c__rolling_mean_1h', value"
            " FROM sensor_readings WHERE sensor = 'air_temp_c'"
        )
    pg_conn.commit()
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        stages__classify={"profile": "reference", "default_features": "minimal"},
    )
    for command in ("plan", "run"):
        result = streamfx(command, str(path), dsn=pg_dsn)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "sensor 'air_temp_c__rolling_mean_1h'" in line
        assert "sensor 'air_temp_c''s rolling_mean_1h features" in line
    with pg_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM streamfx_era_status")
        assert cur.fetchall() == [(0,)]
    pg_conn.commit()
    assert not list((tmp_path / "out" / "parts").glob("*.parquet"))
