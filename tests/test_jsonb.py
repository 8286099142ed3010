"""The jsonb readings layout against the same readings in a long table, and the reference dataset."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import polars as pl
import pytest

from streamfx.config import load_config
from streamfx.database import table_columns
from streamfx.errors import StreamfxError
from streamfx.model import Era
from streamfx.run.pipeline import plan_pipeline
from streamfx.source.config import SourceConfig
from streamfx.source.datasets.demo import generate_readings
from streamfx.source.open import seed_demo_if_missing
from streamfx.source.postgres import Source

from .conftest import REPO
from .test_source import (  # the same eras as the long layout's tests
    MINUTE,
    OVERLAPPING,
    T0,
    WINDOWS,
)

# (minute, partition) -> the JSON values that differ from the plain number i * 1.5 + partition
ODD: dict[tuple[int, int], dict[str, Any]] = {
    (50, 1): {"a": "8.5"},  # a numeric string: a reading
    (60, 1): {"a": " 1e1 "},  # numeric with blanks and an exponent: a reading, 10.0
    (30, 1): {"b": "NaN"},  # NaN, dropped as in the other layouts, not reported
    (70, 2): {"a": "n/a"},  # not a number: skipped and reported
    (20, 2): {"b": 1e400},  # beyond float8: skipped and reported, not an error
    **{(100 + 10 * i, 2): {"c": odd} for i, odd in enumerate([True, "abc", None, {}, [1]])},
}
SKIPPED = {"a": 1, "b": 1, "c": 5}  # what ODD holds that is not a reading, per sensor


def _documents() -> list[tuple[dt.datetime, int, dict[str, Any]]]:
    """Two partitions, sensors a and b every 10 minutes for 3 h; b of partition 2 stops."""
    rows = []
    for part in (1, 2):
        for i in range(18):
            doc: dict[str, Any] = {"a": i * 1.5 + part}
            if not (part == 2 and i > 9):
                doc["b"] = i * 1.5 + part
            doc |= ODD.get((10 * i, part), {})
            rows.append((T0 + 10 * i * MINUTE, part, doc))
    return rows


def _as_number(value: Any) -> float | None:
    """What a JSON value reads as: the reading, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isinf(number) else number


def _create(conn: Any, readings: list[tuple[dt.datetime, int, dict[str, Any]]], kind: str) -> None:
    """Table ``j`` (time, part, doc ``kind``) with ``readings``, plus rows that are no objects,
    and table ``r``: the same readings in the long layout."""
    long = [
        (t, part, sensor, number)
        for t, part, doc in readings
        for sensor, value in doc.items()
        if (number := _as_number(value)) is not None
    ]
    times, parts, docs = zip(*readings, strict=True)
    docs = [json.dumps(doc).replace("Infinity", "1e400") for doc in docs]  # json.dumps(1e400)
    times += (T0, T0, T0)
    parts += (1, 1, 2)
    docs += ("[1, 2]", "null", None)  # no object: no readings, no error
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE j (time timestamptz, part int, doc {kind})")
        cur.execute(
            f"INSERT INTO j SELECT * FROM unnest($1::timestamptz[], $2::int[], $3::{kind}[])",
            parameters=(list(times), list(parts), docs),
        )
        cur.execute("CREATE TABLE r (time timestamptz, part int, sensor text, value float8)")
        frame = pl.DataFrame(long, schema=["time", "part", "sensor", "value"], orient="row")
        cur.adbc_ingest("r", frame.with_columns(pl.col("part").cast(pl.Int32)).to_arrow(), "append")
    conn.commit()


def _source(conn: Any, notices: list[str] | None = None, **readings: Any) -> Source:
    options = {"table": "j", "layout": "jsonb", "json_column": "doc", "partition_column": "part"}
    config = SourceConfig.model_validate(
        {"readings": options | readings, "eras": {"every": "1h"}}  # eras given directly
    )
    return Source(config, conn, (notices if notices is not None else []).append)


def _long(conn: Any, **readings: Any) -> Source:
    config = SourceConfig.model_validate(
        {"readings": {"table": "r", "partition_column": "part"} | readings, "eras": {"every": "1h"}}
    )
    return Source(config, conn)


def _stats(source: Source, eras: list[Era]) -> dict[tuple[int, str], int]:
    return {(era, sensor): n for era, sensor, n in source.era_stats(eras).iter_rows()}


@pytest.mark.parametrize("kind", ["jsonb", "json"])
def test_same_readings_as_the_long_layout(pg_conn, kind: str) -> None:
    _create(pg_conn, _documents(), kind)
    jsonb, long = _source(pg_conn), _long(pg_conn)
    for eras in (WINDOWS, OVERLAPPING):
        assert jsonb.read_eras(eras).equals(long.read_eras(eras))
        assert _stats(jsonb, eras) == _stats(long, eras)
    readings = pl.from_arrow(jsonb.read_eras(WINDOWS))
    assert readings.height == (18 + 17) + (17 + 9)  # partition 1: a, b less NaN; 2: a, b
    w1 = pl.col("era_id") == "1/w1"  # era_id holds the era's key, partition/id
    at = readings.filter(pl.col("sensor") == "a", w1)["value"].to_list()
    assert at == [1.0, 2.5, 4.0, 5.5, 7.0, 8.5]  # "8.5" read as 8.5
    assert readings.filter(pl.col("era_id") == "1/w2")["value"][0] == 10.0  # " 1e1 "
    assert "c" not in readings["sensor"].to_list()
    stats = _stats(jsonb, WINDOWS)
    assert stats[(1, "a")] == 6 and stats[(1, "b")] == 5  # w1: b's NaN does not count
    assert stats[(3, "a")] == 8 and (5, "a") not in stats  # v1: "n/a" skipped; late: empty


def test_non_numbers_reported_once_per_sensor(pg_conn) -> None:
    _create(pg_conn, _documents(), "jsonb")
    notices: list[str] = []
    _source(pg_conn, notices).era_stats(WINDOWS)
    assert len(notices) == len(SKIPPED)
    for notice, (sensor, n) in zip(notices, sorted(SKIPPED.items()), strict=True):
        assert notice.startswith(f"source.readings: skipped {n} values of sensor '{sensor}'")
        assert "public.j.doc" in notice


def test_sensors_are_pushed_down(pg_conn, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(pg_conn, _documents(), "jsonb")
    notices: list[str] = []
    source = _source(pg_conn, notices, sensors=["b"])
    fetched: set[str] = set()  # the value columns the query returned, one per sensor read
    normalize = source._normalize

    def spy(frame: pl.DataFrame) -> pl.DataFrame:
        fetched.update(c for c in frame.columns if c not in ("era", "time"))
        return normalize(frame)

    monkeypatch.setattr(source, "_normalize", spy)
    readings = pl.from_arrow(source.read_eras(WINDOWS))
    assert fetched == {"s0"}  # only b's values left the server
    assert readings.equals(pl.from_arrow(_long(pg_conn, sensors=["b"]).read_eras(WINDOWS)))
    assert {sensor for _, sensor in _stats(source, WINDOWS)} == {"b"}
    assert len(notices) == 1 and "sensor 'b'" in notices[0]  # a and c are not read


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("missing", "source.readings.json_column: column 'missing' not found in table public.j"),
        ("part", "source.readings.json_column: column public.j.part has type integer; expected"),
    ],
)
def test_json_column_checked(pg_conn, column: str, message: str) -> None:
    _create(pg_conn, _documents(), "jsonb")
    with pytest.raises(StreamfxError) as error:
        _source(pg_conn, json_column=column)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_reference_dataset(pg_dsn: str, pg_conn) -> None:
    """pipelines/reference-layout.yaml seeds both tables as the reference system has them, and
    plans every era from them."""
    config = load_config(REPO / "pipelines" / "reference-layout.yaml")
    config = config.model_copy(update={"source": config.source.model_copy(update={"dsn": pg_dsn})})
    seeded: list[str] = []
    assert seed_demo_if_missing(config.source, pg_conn, seeded.append)
    assert seeded[0].startswith("seeded reference data: ")
    assert table_columns(pg_conn, "public", "preprocessed_features") == {
        "timestamp": "timestamp with time zone",
        "compartment_id": "integer",
        "features": "jsonb",
    }
    columns = table_columns(pg_conn, "public", "era_labels_level_B")
    assert columns is not None and list(columns) == [
        "era_id",
        "compartment_id",
        "start_time",
        "end_time",
    ]
    with pg_conn.cursor() as cur:
        cur.execute(
            'SELECT compartment_id, array_agg(era_id ORDER BY start_time) FROM "era_labels_level_B"'
            " GROUP BY 1 ORDER BY 1"
        )
        ids = dict(cur.fetchall())
        cur.execute(
            "SELECT sum((SELECT count(*) FROM jsonb_object_keys(features)))::int"
            " FROM preprocessed_features"
        )
        values = cur.fetchone()[0]
    pg_conn.commit()
    assert sorted(ids) == [1, 2]
    for era_ids in ids.values():
        assert era_ids == list(range(1, len(era_ids) + 1))  # restarting at 1
    assert values == generate_readings().height

    _, plan = plan_pipeline(config)
    assert len(plan.eras) == sum(map(len, ids.values()))
    assert sum(p.analysis.readings for p in plan.eras) == values  # the eras cover every reading
