"""Loader for the real climate export of greenhouse cell 5 in Aarslev (Dec 2013 - Jun 2014).

Real data checks what generated data cannot: sensors that drop out for days, status sensors
with odd levels, local timestamps across a DST change. The files are read as exported (see the
README next to them): ``;``-separated, every value quoted, exponent notation such as
``"8.94135e-009"``, empty strings for missing readings and two columns with the same empty name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl

from ...errors import StreamfxError
from .demo import _seed

TIME_ZONE = "Europe/Copenhagen"

#: (header, sensor) in file order; a list of pairs, because one header occurs twice.
SENSOR_NAMES: tuple[tuple[str, str], ...] = (
    ("Celle 5: Lufttemperatur", "air_temp_c"),
    ("Celle 5: Endelig fælles varme sætpunkt", "heating_setpoint_c"),
    ("Celle 5: Vent. position 1", "vent_pos_1_percent"),
    ("Celle 5: Vent. position 2", "vent_pos_2_percent"),
    ("Celle 5: Luftfugtighed RH%", "relative_humidity_percent"),
    ("Celle 5: Luftfugtighed VPD", "vpd_hpa"),
    ("Celle 5: CO2", "co2_measured_ppm"),
    ("Celle 5: CO2 krav", "co2_required_ppm"),
    ("Celle 5: CO2 dosering", "co2_dosing_status"),
    ("Celle 5: ", "unknown_1"),
    ("Celle 5: ", "unknown_2"),
    ("Celle 5: Lys intensitet", "light_intensity_umol"),
    ("Celle 5: Gardin 1 position", "curtain_1_percent"),
    ("Celle 5: Solindstråling", "radiation_w_m2"),
    ("Celle 5: Udetemperatur", "outside_temp_c"),
    ("Celle 5: Flow temperatur 1", "flow_temp_1_c"),
    ("Celle 5: Flow temperatur 2", "flow_temp_2_c"),
)
SENSORS = tuple(sensor for _, sensor in SENSOR_NAMES)
HEADER = ("Date", "Time", *(header for header, _ in SENSOR_NAMES))


def _read_file(path: Path) -> pl.DataFrame:
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = tuple(name.strip('"') for name in f.readline().rstrip("\r\n").split(";"))
    if header != HEADER:
        raise StreamfxError(f"{path}: unexpected header {header!r}")
    raw = pl.read_csv(
        path, separator=";", infer_schema=False, new_columns=["date", "clock", *SENSORS]
    )
    values = raw.select(pl.col(SENSORS).cast(pl.Float64, strict=False))
    given = raw.select((pl.col(SENSORS).is_not_null() & (pl.col(SENSORS) != "")).sum())
    bad = [s for s in SENSORS if given[s][0] != values[s].count()]
    if bad:
        raise StreamfxError(f"{path}: values that are not numbers in column(s) {', '.join(bad)}")
    local = pl.concat_str("date", "clock", separator=" ").str.to_datetime(
        "%Y-%m-%d %H:%M:%S", time_unit="us"
    )
    return pl.concat([raw.select(local.alias("local")), values], how="horizontal")


def load_aarslev(folder: Path) -> pl.DataFrame:
    """All monthly files of ``folder`` as one wide frame: ``time`` (UTC), one Float64 per sensor.

    Local times are Europe/Copenhagen: of a repeated autumn hour the first occurrence is taken as
    summer time and the second as winter time; a time that does not exist (spring) is dropped.
    """
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise StreamfxError(f"no CSV files in {folder}")
    local = pl.concat([_read_file(path) for path in files])
    ambiguous = pl.when(pl.col("local").is_first_distinct()).then(pl.lit("earliest"))
    time = pl.col("local").dt.replace_time_zone(
        TIME_ZONE, ambiguous=ambiguous.otherwise(pl.lit("latest")), non_existent="null"
    )
    return (
        local.select(time.dt.convert_time_zone("UTC").alias("time"), *SENSORS)
        .drop_nulls("time")
        .sort("time", maintain_order=True)
    )


def to_long(wide: pl.DataFrame) -> pl.DataFrame:
    """The wide frame melted to ``time, sensor, value``, without missing readings."""
    sensors = [c for c in wide.columns if c != "time"]
    long = wide.unpivot(on=sensors, index="time", variable_name="sensor", value_name="value")
    return long.drop_nulls("value").sort("time", maintain_order=True)


def seed_aarslev(
    conn: Any,
    folder: Path,
    *,
    schema: str = "public",
    table: str = "celle5",
    layout: Literal["wide", "long"] = "wide",
    replace: bool = False,
) -> int:
    """Load the export into a new table (wide: one column per sensor; long: time, sensor, value).

    Types are ``timestamptz``, ``double precision`` and ``text``; ``replace`` drops an existing
    table of that name first. Returns the number of rows loaded.
    """
    data = load_aarslev(folder)
    if layout == "wide":
        columns = {"time": "timestamptz", **dict.fromkeys(SENSORS, "double precision")}
        index: tuple[str, ...] = ("time",)
    elif layout == "long":
        data = to_long(data)
        columns = {"time": "timestamptz", "sensor": "text", "value": "double precision"}
        index = ("sensor", "time")
    else:
        raise StreamfxError(f"unknown layout {layout!r} (expected 'wide' or 'long')")
    _seed(conn, "Aarslev data", [(schema, table, columns, data.to_arrow(), index, replace)])
    return data.height
