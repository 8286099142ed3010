"""The source's one analysis query (era_stats) against counts computed here, long and wide."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from streamfx.model import Era
from streamfx.source.config import SourceConfig
from streamfx.source.postgres import Source

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
MINUTE = dt.timedelta(minutes=1)


def _readings() -> pl.DataFrame:
    """Two partitions, two sensors, a reading every 10 minutes for 3 h; some NaN, null, inf."""
    rows = []
    for part in (1, 2):
        for i in range(18):
            for sensor in ("a", "b"):
                value = float(i)
                if (i, sensor, part) == (3, "a", 1):
                    value = math.nan
                if (i, sensor, part) == (4, "b", 1):
                    value = math.inf
                if sensor == "b" and part == 2 and i > 9:
                    continue  # sensor b of partition 2 stops
                rows.append((T0 + 10 * i * MINUTE, part, sensor, value))
    frame = pl.DataFrame(rows, schema=["time", "part", "sensor", "value"], orient="row")
    return frame.with_columns(pl.col("time").dt.cast_time_unit("us"), pl.col("part").cast(pl.Int32))


def _expected(frame: pl.DataFrame, eras: list[Era]) -> dict[tuple[int, str], int]:
    counts: dict[tuple[int, str], int] = {}
    finite = frame.filter(pl.col("value").is_finite())
    for index, era in enumerate(eras):
        inside = finite.filter(
            (pl.col("part").cast(pl.String) == era.partition)
            & (pl.col("time") >= era.start)
            & (pl.col("time") < era.end)
        )
        for sensor, n in inside.group_by("sensor").len().iter_rows():
            counts[(index, sensor)] = n
    return counts


def _era(name: str, part: str, start_min: int, end_min: int) -> Era:
    return Era(name, T0 + start_min * MINUTE, T0 + end_min * MINUTE, part)


WINDOWS = [  # back to back, not in time order, one past the data
    _era("w3", "1", 120, 180),
    _era("w1", "1", 0, 60),
    _era("w2", "1", 60, 120),
    _era("v1", "2", 0, 90),
    _era("v2", "2", 90, 200),
    _era("late", "2", 500, 560),
]
OVERLAPPING = [*WINDOWS, _era("x", "1", 30, 150)]


@pytest.fixture
def long_source(pg_conn) -> Source:
    frame = _readings()
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE r (time timestamptz, part int, sensor text, value double precision)"
        )
        cur.adbc_ingest("r", frame.to_arrow(), mode="append")
    pg_conn.commit()
    config = SourceConfig.model_validate(
        {
            "readings": {"table": "r", "partition_column": "part"},
            "eras": {"every": "1h"},  # the eras are given to era_stats directly
        }
    )
    return Source(config, pg_conn)


@pytest.mark.parametrize("eras", [WINDOWS, OVERLAPPING], ids=["sorted-assignment", "range-join"])
def test_era_stats_long(long_source: Source, eras: list[Era]) -> None:
    stats = long_source.era_stats(eras)
    got = {(era, sensor): n for era, sensor, n in stats.iter_rows()}
    assert got == _expected(_readings(), eras)
    assert 5 not in {era for era, _ in got}  # the era after the data has no readings


def test_era_stats_wide(pg_conn) -> None:
    frame = _readings().pivot(on="sensor", index=["time", "part"], values="value")
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE w (time timestamptz, part int, a float8, b float8)")
        cur.adbc_ingest("w", frame.to_arrow(), mode="append")
    pg_conn.commit()
    config = SourceConfig.model_validate(
        {
            "readings": {"table": "w", "layout": "wide", "partition_column": "part"},
            "eras": {"every": "1h"},
        }
    )
    source = Source(config, pg_conn)
    for eras in (WINDOWS, OVERLAPPING):
        got = {(era, sensor): n for era, sensor, n in source.era_stats(eras).iter_rows()}
        assert got == _expected(_readings(), eras)
