"""A generated greenhouse dataset, seeded into PostgreSQL, for demos, tests and benchmarks.

Real exports cannot ship with the project, and tests need data whose properties are known in
advance: several compartments, the sensor names of the reference profile, day/night cycles,
binary status sensors, an hourly price next to 5-minute readings, sensor dropouts, eras of very
different lengths and exactly one era without readings. Everything follows from one seed, so two
runs give identical tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from ...database import qualified, quote_ident
from ...errors import StreamfxError

UTC = dt.timezone.utc
START = dt.datetime(2024, 3, 1, tzinfo=UTC)
HOURLY = ("spot_price_dkk_mwh",)
SENSORS = (
    *("air_temp_c", "relative_humidity_percent", "light_intensity_umol", "radiation_w_m2"),
    *("co2_measured_ppm", "pipe_temp_1_c", "flow_temp_1_c", "outside_temp_c", "dli_sum"),
    *("par_synth_umol", "rain_status", "co2_status", "co2_dosing_status"),
    *("vent_pos_1_percent", "vent_pos_2_percent", *HOURLY),
)
MIN_ERA_HOURS, MAX_ERA_HOURS = 3, 96


@dataclass(frozen=True)
class DemoTables:
    """Names of the tables and columns that :func:`seed_demo` creates, and their shape."""

    schema: str = "public"
    layout: Literal["long", "wide", "jsonb"] = "long"
    readings_table: str = "sensor_readings"
    time_column: str = "time"
    partition_column: str = "compartment_id"
    sensor_column: str = "sensor"
    value_column: str = "value"  # long layout only
    json_column: str = "features"  # jsonb layout only
    eras_table: str | None = "eras"  # None: readings only (fixed-window pipelines)
    era_id_column: str = "era_id"
    era_start_column: str = "start_time"
    era_end_column: str = "end_time"
    era_partition_column: str = "compartment_id"
    era_ids_per_partition: bool = False  # True: ids restart at 1 in each compartment


def _utc64(when: dt.datetime) -> np.datetime64:
    return np.datetime64(when.astimezone(UTC).replace(tzinfo=None), "us")


def _utc(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype("datetime64[us]")).dt.replace_time_zone("UTC")


def generate_eras(
    seed: int = 42, days: int = 30, compartments: int = 2, start: dt.datetime = START
) -> pl.DataFrame:
    """Consecutive eras of 3 h to 4 d per compartment over the span, plus one empty era after it.

    ``era_id`` is unique across compartments; eras are half-open ``[start_time, end_time)``.
    """
    if days < 1 or compartments < 1:
        raise StreamfxError("the demo dataset needs days >= 1 and compartments >= 1")
    rng = np.random.default_rng([seed, 1])
    span, t0 = days * 24, _utc64(start)
    parts, starts, ends = [], [], []
    for c in range(1, compartments + 1):
        hours = np.rint(3 + 93 * rng.random(span // 3 + 2) ** 1.6).astype(np.int64)
        cum = np.cumsum(hours)
        k = int(np.searchsorted(cum, span))  # the era that reaches the end: cut it there
        hours = hours[: k + 1]
        hours[-1] = span - (cum[k - 1] if k else 0)
        if k and hours[-1] < MIN_ERA_HOURS:  # too short a remainder: merge it or share it
            total = int(hours[-2] + hours[-1])
            if total <= MAX_ERA_HOURS:
                hours = np.append(hours[:-2], total)
            else:
                hours[-2:] = total // 2, total - total // 2
        offsets = t0 + np.concatenate([[0], np.cumsum(hours)]).astype("timedelta64[h]")
        starts.append(offsets[:-1])
        ends.append(offsets[1:])
        parts.append(np.full(len(hours), c, dtype=np.int32))
    after = t0 + np.timedelta64(span + 24, "h")  # the one era without readings
    starts.append(np.array([after]))
    ends.append(np.array([after + np.timedelta64(24, "h")]))
    parts.append(np.array([1], dtype=np.int32))
    part = np.concatenate(parts)
    return pl.DataFrame(
        {
            "era_id": np.arange(1, len(part) + 1, dtype=np.int64),
            "compartment_id": part,
            "start_time": _utc(np.concatenate(starts)),
            "end_time": _utc(np.concatenate(ends)),
        }
    )


def _climate(rng: np.random.Generator, hour: np.ndarray, day: np.ndarray, step: int, c: int):
    """Sensor -> values on the regular grid; ``c`` (0, 1, ...) shifts each compartment a little."""
    n = len(hour)

    def smooth(scale: float, hours: float) -> np.ndarray:  # correlated noise, std ``scale``
        w = max(1, int(hours * 60 / step))
        return np.convolve(rng.standard_normal(n + w - 1), np.ones(w) / np.sqrt(w), "valid") * scale

    sun = np.clip(np.sin(np.pi * (hour - 6) / 12), 0, None) * rng.uniform(0.3, 1, day[-1] + 1)[day]
    radiation = np.where(sun > 0, np.clip(750 * sun * (1 + smooth(0.08, 0.5)), 0, None), 0.0)
    lamps = (hour >= 4) & (hour < 20) & (radiation < 120)
    light = np.clip(1.3 * radiation + 180 * lamps + np.abs(smooth(3, 0.5)), 0, None)
    first = np.unique(day, return_index=True)[1][day]  # index of each reading's midnight
    increment = light * step * 60 / 1e6  # mol/m^2
    dli = np.cumsum(increment)
    dli += increment[first] - dli[first]  # reset at every midnight
    outside = 5 + 5 * np.sin(2 * np.pi * (hour - 9) / 24) + smooth(0.6, 6) + smooth(2, 24)
    air = 19 + 0.4 * c + 6 * sun + smooth(0.15, 1)
    rain = (smooth(1, 3) > 1.2).astype(float)
    vent1 = np.clip((air - 22.5) * 35 + smooth(2, 0.5), 0, 100) * np.where(rain > 0, 0.2, 1)
    vent2 = np.clip(0.8 * vent1 + smooth(2, 0.5), 0, 100)
    co2_on = ((hour >= 5) & (hour < 19)).astype(float)
    dosing = co2_on * (vent1 < 15)
    dosed = np.convolve(np.r_[np.zeros(11), dosing], np.ones(12) / 12, "valid")
    pipe = np.clip(42 + 2 * c - 1.5 * outside - 10 * sun + smooth(1.5, 2), 20, 75)
    return {
        "air_temp_c": air,
        "relative_humidity_percent": np.clip(85 - 30 * sun - 0.05 * vent1 + smooth(2, 1), 40, 100),
        "light_intensity_umol": light,
        "radiation_w_m2": radiation,
        "co2_measured_ppm": np.clip(420 + 550 * dosed + 60 * (sun == 0) + smooth(20, 1), 350, 1200),
        "pipe_temp_1_c": pipe,
        "flow_temp_1_c": np.clip(pipe + 6 + smooth(0.8, 1), 20, 85),
        "outside_temp_c": outside,
        "dli_sum": dli,
        "par_synth_umol": 2.1 * radiation,
        "rain_status": rain,
        "co2_status": co2_on,
        "co2_dosing_status": dosing.astype(float),
        "vent_pos_1_percent": vent1,
        "vent_pos_2_percent": vent2,
    }


def _kept(rng: np.random.Generator, times: np.ndarray, outage: tuple[Any, Any]) -> np.ndarray:
    """Mask of the readings a sensor delivers: 2-4 dropouts of 1-12 h and the outage missing."""
    keep = (times < outage[0]) | (times >= outage[1])
    for _ in range(int(rng.integers(2, 5))):
        begin = times[rng.integers(0, len(times))]
        keep &= (times < begin) | (times >= begin + np.timedelta64(int(rng.integers(1, 13)), "h"))
    return keep


def generate_readings(
    seed: int = 42,
    days: int = 30,
    interval_minutes: int = 5,
    compartments: int = 2,
    start: dt.datetime = START,
) -> pl.DataFrame:
    """Long readings (time, compartment_id, sensor, value) of all :data:`SENSORS`, with gaps.

    Each compartment loses about a day of readings inside its longest era, so the only era
    without readings is the extra one after the data (see :func:`generate_eras`).
    """
    if not 1 <= interval_minutes <= 60:
        raise StreamfxError("interval_minutes must be between 1 and 60")
    eras = generate_eras(seed, days, compartments, start).with_columns(
        length=pl.col("end_time") - pl.col("start_time")
    )
    rng = np.random.default_rng(seed)
    t0 = _utc64(start)
    steps = np.arange(days * 1440 // interval_minutes) * interval_minutes
    times = t0 + steps.astype("timedelta64[m]")
    hourly = t0 + np.arange(days * 24).astype("timedelta64[h]")
    end = start + dt.timedelta(days=days)
    midnight = times.astype("datetime64[D]")
    hour = (times - midnight) / np.timedelta64(1, "h")
    day = (midnight - midnight[0]).astype(np.int64)
    hour_of_price = (hourly - hourly.astype("datetime64[D]")) / np.timedelta64(1, "h")
    peaks = np.exp(-(((hour_of_price - 8) / 2) ** 2)) + np.exp(-(((hour_of_price - 18) / 2.5) ** 2))
    level = rng.normal(0, 80, len(hourly) + 23)
    price = np.clip(450 + 300 * peaks + np.convolve(level, np.ones(24) / 24 * 3, "valid"), 0, None)
    time, part, sensor, value = [], [], [], []
    for c in range(1, compartments + 1):
        values = _climate(rng, hour, day, interval_minutes, c - 1)
        values["spot_price_dkk_mwh"] = price + 5 * (c - 1)
        longest = eras.filter(pl.col("compartment_id") == c, pl.col("end_time") <= end)
        era = longest.sort("length", descending=True, maintain_order=True).row(0, named=True)
        length = min(dt.timedelta(hours=24), era["length"] / 2)
        begin = era["start_time"] + (era["length"] - length) / 2
        outage = (_utc64(begin), _utc64(begin + length))
        for i, name in enumerate(SENSORS):
            grid = hourly if name in HOURLY else times
            keep = _kept(rng, grid, outage)
            time.append(grid[keep])
            value.append(values[name][keep].astype(np.float64))
            part.append(np.full(len(time[-1]), c, dtype=np.int32))
            sensor.append(np.full(len(time[-1]), i, dtype=np.int32))
    names = pl.Series("sensor", SENSORS, dtype=pl.String).gather(np.concatenate(sensor))
    return pl.DataFrame(
        [
            _utc(np.concatenate(time)).alias("time"),
            pl.Series("compartment_id", np.concatenate(part)),
            names,
            pl.Series("value", np.concatenate(value)),
        ]
    ).sort("compartment_id", "time", "sensor")


def to_wide(long_df: pl.DataFrame) -> pl.DataFrame:
    """One row per (time, compartment_id), one Float64 column per sensor; absent readings null."""
    wide = long_df.pivot(on="sensor", index=["time", "compartment_id"], values="value")
    sensors = [s for s in SENSORS if s in wide.columns]
    sensors += sorted(set(wide.columns) - {"time", "compartment_id", *sensors})
    return wide.select("time", "compartment_id", *sensors).sort("compartment_id", "time")


def to_jsonb(long_df: pl.DataFrame) -> pl.DataFrame:
    """One row per (time, compartment_id) with a JSON object of its sensors' readings (text).

    An absent reading is an absent key, not a JSON null, as in the reference system's
    ``preprocessed_features``; keys are JSON-encoded, values written as Polars prints floats."""
    keys = {sensor: json.dumps(sensor) for sensor in long_df["sensor"].unique()}
    pair = pl.concat_str(pl.col("sensor").replace_strict(keys), pl.lit(":"), pl.col("value"))
    document = pl.concat_str(pl.lit("{"), pair.str.join(","), pl.lit("}"))
    return (
        long_df.group_by("time", "compartment_id")
        .agg(document.alias("features"))
        .sort("compartment_id", "time")
    )


def _per_partition(eras: pl.DataFrame) -> pl.DataFrame:
    """The eras renumbered 1, 2, ... in time order within each compartment."""
    era_id = pl.col("start_time").rank("ordinal").over("compartment_id").cast(pl.Int64)
    return eras.with_columns(era_id=era_id)


def _create_and_ingest(
    conn: Any,
    schema: str,
    table: str,
    columns: dict[str, str],
    data: pa.Table,
    index: Sequence[str],
    replace: bool,
) -> None:
    """CREATE TABLE with exact column types, COPY ``data`` in, index it; the caller commits.

    A ``jsonb`` column is loaded as text and converted after: COPY's binary jsonb differs."""
    name = qualified(schema, table)
    loaded = {column: "text" if kind == "jsonb" else kind for column, kind in columns.items()}
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = $1", parameters=(schema,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        if replace:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        spec = ", ".join(f"{quote_ident(column)} {kind}" for column, kind in loaded.items())
        cur.execute(f"CREATE TABLE {name} ({spec})")
        cur.adbc_ingest(
            table, data.rename_columns(list(columns)), mode="append", db_schema_name=schema
        )
        for column in (c for c, kind in columns.items() if kind != loaded[c]):
            cur.execute(
                f"ALTER TABLE {name} ALTER COLUMN {quote_ident(column)} TYPE jsonb"
                f" USING {quote_ident(column)}::jsonb"
            )
        cur.execute(f"CREATE INDEX ON {name} ({', '.join(map(quote_ident, index))})")


def _seed(conn: Any, what: str, tables: Sequence[tuple]) -> None:
    """Create and fill all ``tables`` in one transaction; roll back and explain on failure."""
    try:
        for args in tables:
            _create_and_ingest(conn, *args)
        conn.commit()
    except Exception as exc:
        conn.rollback()
        message = " ".join(str(exc).split())
        raise StreamfxError(f"cannot seed the {what}: {message}") from exc


def seed_demo(
    conn: Any, tables: DemoTables = DemoTables(), *, replace: bool = False, **generate_kwargs: Any
) -> dict[str, int]:
    """Generate the demo readings and eras and load them into two new tables, in one transaction.

    ``generate_kwargs`` go to :func:`generate_readings` (and those that apply to
    :func:`generate_eras`); ``replace`` drops existing tables of the same names first. Layout
    ``jsonb`` with ``era_ids_per_partition`` gives the reference system's shape: one JSON
    object per row as in its ``preprocessed_features``, era ids per compartment as in its
    ``era_labels_level_B``.
    Returns the number of rows loaded: ``{"readings": ..., "eras": ...}``.
    """
    t = tables
    readings = generate_readings(**generate_kwargs)
    era_keys = ("seed", "days", "compartments", "start")
    eras = generate_eras(**{k: v for k, v in generate_kwargs.items() if k in era_keys})
    if t.era_ids_per_partition:
        eras = _per_partition(eras)
    columns = {t.time_column: "timestamptz", t.partition_column: "integer"}
    if t.layout == "long":
        columns |= {t.sensor_column: "text", t.value_column: "double precision"}
        index = (t.partition_column, t.sensor_column, t.time_column)
    elif t.layout == "wide":
        readings = to_wide(readings)
        columns |= {sensor: "double precision" for sensor in readings.columns[2:]}
        index = (t.partition_column, t.time_column)
    elif t.layout == "jsonb":
        readings = to_jsonb(readings)
        columns |= {t.json_column: "jsonb"}
        index = (t.partition_column, t.time_column)
    else:
        raise StreamfxError(
            f"unknown demo layout {t.layout!r} (expected 'long', 'wide' or 'jsonb')"
        )
    era_columns = {
        t.era_id_column: "bigint",
        t.era_partition_column: "integer",
        t.era_start_column: "timestamptz",
        t.era_end_column: "timestamptz",
    }
    if len(columns) != readings.width or len(era_columns) != eras.width:
        raise StreamfxError("the demo tables' column names must differ from each other")
    era_index = (t.era_partition_column, t.era_start_column)
    tables_to_seed = [(t.schema, t.readings_table, columns, readings.to_arrow(), index, replace)]
    if t.eras_table is not None:  # None: the pipeline uses fixed windows, no era table
        tables_to_seed.append(
            (t.schema, t.eras_table, era_columns, eras.to_arrow(), era_index, replace)
        )
    _seed(conn, "demo dataset", tables_to_seed)
    return {"readings": readings.height, "eras": eras.height if t.eras_table else 0}
