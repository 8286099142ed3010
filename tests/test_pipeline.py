"""End to end on a real PostgreSQL: demo data and the real celle5 data, through both sinks."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from tsfresh import extract_features as tsfresh_extract_features

from streamfx import feature_set
from streamfx.classify.default_profiles import REFERENCE_EFFICIENT_SENSORS, REFERENCE_GPU_SENSORS
from streamfx.config import load_config
from streamfx.run.pipeline import run_pipeline
from streamfx.source.datasets.aarslev import seed_aarslev
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .conftest import CELLE5
from .helpers import ERA_KEY_SQL, streamfx, write_pipeline

ERA_COLUMNS = ["era_id", "partition", "start", "end", "readings"]


def db_features(conn, table: str = "streamfx_features") -> pl.DataFrame:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {ERA_KEY_SQL}, sensor, feature, value, run_id FROM {table}")
        frame = pl.from_arrow(cur.fetch_arrow_table())
    conn.commit()
    return frame


def parquet_long(path: Path) -> pl.DataFrame:
    """The wide Parquet table back in long form (era key, sensor, feature, value)."""
    wide = pl.read_parquet(path)
    key = pl.concat_str(pl.col("partition") + "/", pl.col("era_id"), ignore_nulls=True)
    return (
        wide.with_columns(key.alias("era_id"))
        .drop(["partition", "start", "end", "readings"])
        .unpivot(index="era_id", variable_name="column", value_name="value")
        .filter(pl.col("value").is_not_null())
        .with_columns(
            pl.col("column").str.splitn("__", 2).struct.rename_fields(["sensor", "feature"])
        )
        .unnest("column")
        .select("era_id", "sensor", "feature", "value")
    )


@pytest.fixture
def demo(pg_dsn: str, pg_conn) -> dict:
    counts = seed_demo(pg_conn, DemoTables(), days=4)
    return counts


def test_demo_end_to_end(tmp_path: Path, pg_dsn: str, pg_conn, demo: dict) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml")
    result = streamfx("run", str(path), dsn=pg_dsn)
    assert result.returncode == 0, result.stderr
    assert "features.parquet" in result.stdout

    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT e.era_id::text FROM eras e WHERE EXISTS (SELECT 1 FROM sensor_readings r "
            "WHERE r.compartment_id = e.compartment_id AND r.time >= e.start_time "
            "AND r.time < e.end_time AND r.value = r.value) ORDER BY 1"
        )
        non_empty = sorted(row[0] for row in cur.fetchall())
        cur.execute("SELECT count(*) FROM eras")
        (all_eras,) = cur.fetchone()
    pg_conn.commit()
    assert len(non_empty) < all_eras  # the demo has an era without readings: it is skipped
    skipped = all_eras - len(non_empty)
    counts = f"{all_eras}: {len(non_empty)} done, 0 already done, {skipped} skipped, 0 failed"
    assert counts in result.stdout

    wide = pl.read_parquet(tmp_path / "out" / "features.parquet")
    assert sorted(wide["era_id"].to_list()) == non_empty
    assert wide.columns[:5] == ERA_COLUMNS
    assert (wide["readings"] > 0).all()

    database = db_features(pg_conn)
    from_parquet = parquet_long(tmp_path / "out" / "features.parquet")
    joined = from_parquet.join(database, on=["era_id", "sensor", "feature"], how="full")
    assert joined.height == database.height == from_parquet.height
    same = joined.select(
        (
            (pl.col("value") == pl.col("value_right"))
            | (pl.col("value").is_nan() & pl.col("value_right").is_nan())
        ).all()
    ).item()
    assert same

    # A second run resumes: nothing recomputed, nothing duplicated.
    again = streamfx("run", str(path), dsn=pg_dsn)
    assert again.returncode == 0, again.stderr
    assert f"{len(non_empty)} already done" in again.stdout
    keys = ["era_id", "sensor", "feature"]
    assert db_features(pg_conn).sort(keys).equals(database.sort(keys))
    # --force recomputes in place: same rows, a new run id.
    forced = streamfx("run", str(path), "--force", dsn=pg_dsn)
    assert forced.returncode == 0, forced.stderr
    database2 = db_features(pg_conn)
    assert database2.height == database.height
    assert database2["run_id"].n_unique() == 1
    assert database2["run_id"][0] != database["run_id"][0]
    assert pl.read_parquet(tmp_path / "out" / "features.parquet").height == len(non_empty)


def test_values_equal_tsfresh_directly(
    tmp_path: Path, pg_dsn: str, pg_conn, demo: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's values equal tsfresh run by hand on the same readings (rtol 1e-6)."""
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    path = write_pipeline(tmp_path / "pipeline.yaml")
    summary = run_pipeline(load_config(path), limit=3)
    assert summary.done >= 2 and not summary.failed
    features = db_features(pg_conn)
    rolling = features.filter(pl.col("feature").str.starts_with("rolling_"))
    assert set(rolling["sensor"]) == {  # rolling windows only for GPU-suitable sensors
        s for s in REFERENCE_GPU_SENSORS if s in set(features["sensor"])
    }
    features = features.filter(~pl.col("feature").str.starts_with("rolling_"))
    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT e.compartment_id || '/' || e.era_id AS era_id, r.sensor, r.time, r.value"
            " FROM eras e JOIN sensor_readings r ON r.compartment_id = e.compartment_id"
            " AND r.time >= e.start_time AND r.time < e.end_time WHERE e.compartment_id"
            " || '/' || e.era_id = ANY(SELECT DISTINCT partition || '/' || era_id"
            " FROM streamfx_features)"
        )
        readings = cur.fetch_arrow_table().to_pandas()
    pg_conn.commit()
    efficient, minimal = feature_set("efficient"), feature_set("minimal")
    kinds = {
        s: (efficient if s in REFERENCE_EFFICIENT_SENSORS else minimal)
        for s in readings["sensor"].unique()
    }
    expected = tsfresh_extract_features(
        readings,
        column_id="era_id",
        column_sort="time",
        column_kind="sensor",
        column_value="value",
        kind_to_fc_parameters=kinds,
        n_jobs=0,
        disable_progressbar=True,
    )
    got = {
        (r["era_id"], f"{r['sensor']}__{r['feature']}"): r["value"]
        for r in features.iter_rows(named=True)
    }
    checked = 0
    for era_id, row in expected.iterrows():
        for column, value in row.items():
            mine = got[(era_id, column)]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(mine), (era_id, column)
            else:
                assert mine == pytest.approx(value, rel=1e-6, abs=1e-9), (era_id, column)
            checked += 1
    assert checked == len(got) > 1000


def _celle5_pipeline(tmp_path: Path, layout: str, table: str, **overrides) -> Path:
    """Days of celle5 with minimal features for every sensor (fast enough for all 7 months)."""
    settings = {
        "source__readings": {"table": table, "layout": layout},
        "source__eras": {"every": "1d"},
        "stages__classify": {"profile": None},
        "sinks__parquet__path": str(tmp_path / f"out-{layout}"),
        "sinks__postgres__table": f"features_{layout}",
    }
    return write_pipeline(tmp_path / f"{layout}.yaml", **{**settings, **overrides})


def test_real_celle5_every_day(tmp_path: Path, pg_dsn: str, pg_conn, monkeypatch) -> None:
    """All 7 months of real data as a wide table, eras = calendar days (UTC)."""
    seed_aarslev(pg_conn, CELLE5, table="celle5", layout="wide")
    with pg_conn.cursor() as cur:  # one sensor silent for a whole day
        cur.execute(
            "UPDATE celle5 SET co2_measured_ppm = NULL "
            "WHERE time >= '2014-05-10' AND time < '2014-05-11'"
        )
    pg_conn.commit()
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    path = _celle5_pipeline(tmp_path, "wide", "celle5")
    summary = run_pipeline(load_config(path))
    assert not summary.failed

    with pg_conn.cursor() as cur:
        cur.execute("SELECT * FROM celle5")
        wide = pl.from_arrow(cur.fetch_arrow_table())
    pg_conn.commit()
    days = wide.with_columns(pl.col("time").dt.truncate("1d").alias("day"))
    counts = (
        days.unpivot(index=["time", "day"], variable_name="sensor")
        .filter(pl.col("value").is_not_null())
        .group_by("day", "sensor")
        .len()
    )
    out = pl.read_parquet(tmp_path / "out-wide" / "features.parquet")
    assert out.height == counts["day"].n_unique() == summary.done
    assert summary.done + len(summary.skipped) == summary.eras_total
    have = (
        parquet_long(tmp_path / "out-wide" / "features.parquet")
        .select(pl.col("era_id"), pl.col("sensor"))
        .unique()
    )
    assert have.height == counts.height  # features exactly for the (day, sensor) with readings
    silent_day = "2014-05-10T00:00:00Z"
    assert silent_day in out["era_id"].to_list()
    assert "co2_measured_ppm" not in have.filter(pl.col("era_id") == silent_day)["sensor"]
    assert "air_temp_c" in have.filter(pl.col("era_id") == silent_day)["sensor"]
    assert (
        not db_features(pg_conn, "features_wide")
        .filter((pl.col("era_id") == silent_day) & (pl.col("sensor") == "co2_measured_ppm"))
        .height
    )


def test_long_and_wide_layouts_agree(tmp_path: Path, pg_dsn: str, pg_conn, monkeypatch) -> None:
    seed_aarslev(pg_conn, CELLE5, table="celle5_wide", layout="wide")
    seed_aarslev(pg_conn, CELLE5, table="celle5_long", layout="long")
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    window = {"from": "2014-03-28", "to": "2014-04-02"}  # spans the daylight-saving change
    tables = {}
    for layout in ("wide", "long"):
        path = _celle5_pipeline(
            tmp_path, layout, f"celle5_{layout}", source__eras={"every": "1d", **window}
        )
        run_pipeline(load_config(path))
        tables[layout] = pl.read_parquet(tmp_path / f"out-{layout}" / "features.parquet")
    wide, long = tables["wide"], tables["long"]
    assert wide.height == long.height == 5
    assert sorted(wide.columns) == sorted(long.columns)
    assert wide.select(sorted(wide.columns)).equals(long.select(sorted(long.columns)))
