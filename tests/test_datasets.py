"""The generated demo dataset and the loader of the real Aarslev export."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from streamfx.database import qualified, table_columns
from streamfx.errors import StreamfxError
from streamfx.source.datasets.aarslev import HEADER, SENSORS, load_aarslev, seed_aarslev, to_long
from streamfx.source.datasets.demo import (
    SENSORS as DEMO_SENSORS,
)
from streamfx.source.datasets.demo import (
    DemoTables,
    generate_eras,
    generate_readings,
    seed_demo,
    to_wide,
)

# Same as conftest.CELLE5; not imported, so the module works with and without tests/__init__.py.
CELLE5 = Path(__file__).resolve().parents[2] / "shared" / "data" / "aarslev-celle5"
SMALL = {"days": 6, "interval_minutes": 15}


@pytest.fixture(scope="module")
def readings() -> pl.DataFrame:
    return generate_readings()


@pytest.fixture(scope="module")
def eras() -> pl.DataFrame:
    return generate_eras()


@pytest.fixture(scope="module")
def celle5() -> pl.DataFrame:
    return load_aarslev(CELLE5)


def _count(conn, schema: str, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {qualified(schema, table)}")
        (n,) = cur.fetchone()
    conn.commit()
    return n


# --- demo -------------------------------------------------------------------------------------


def test_demo_is_deterministic(readings: pl.DataFrame, eras: pl.DataFrame) -> None:
    assert readings.equals(generate_readings())
    assert eras.equals(generate_eras())
    assert not readings.equals(generate_readings(seed=7))


def test_demo_readings_shape(readings: pl.DataFrame) -> None:
    assert readings.schema == pl.Schema(
        {
            "time": pl.Datetime("us", "UTC"),
            "compartment_id": pl.Int32,
            "sensor": pl.String,
            "value": pl.Float64,
        }
    )
    assert len(DEMO_SENSORS) == 16
    assert sorted(readings["sensor"].unique()) == sorted(DEMO_SENSORS)
    assert sorted(readings["compartment_id"].unique()) == [1, 2]
    assert readings["value"].null_count() == 0
    by = readings.group_by("sensor").agg(
        pl.col("value").min().alias("lo"), pl.col("value").max().alias("hi")
    )
    ranges = {row["sensor"]: (row["lo"], row["hi"]) for row in by.iter_rows(named=True)}
    for status in ("rain_status", "co2_status", "co2_dosing_status"):
        assert ranges[status] == (0.0, 1.0)
    assert ranges["relative_humidity_percent"][0] >= 40
    assert ranges["relative_humidity_percent"][1] <= 100
    assert 350 <= ranges["co2_measured_ppm"][0] <= ranges["co2_measured_ppm"][1] <= 1200
    assert ranges["vent_pos_1_percent"][0] >= 0 and ranges["vent_pos_1_percent"][1] <= 100
    assert ranges["radiation_w_m2"][0] == 0 and ranges["light_intensity_umol"][0] >= 0
    night = readings.filter(pl.col("sensor") == "radiation_w_m2", pl.col("time").dt.hour() < 5)
    assert night.height > 0 and night["value"].max() == 0


def test_demo_spot_price_hourly_and_gaps(readings: pl.DataFrame) -> None:
    price = readings.filter(pl.col("sensor") == "spot_price_dkk_mwh")
    assert (price["time"].dt.minute() == 0).all()
    assert price.height <= 2 * 30 * 24
    full = 30 * 24 * 12  # 5-minute readings of one sensor and compartment without gaps
    counts = (
        readings.filter(pl.col("sensor") != "spot_price_dkk_mwh")
        .group_by("sensor", "compartment_id")
        .len()
    )
    assert counts["len"].max() < full - 24 * 12  # every series lost its outage day at least
    assert counts["len"].min() > full * 0.8
    dli = readings.filter(pl.col("sensor") == "dli_sum", pl.col("compartment_id") == 1)
    daily = dli.group_by(pl.col("time").dt.date()).agg(pl.col("value").is_sorted().alias("up"))
    assert daily["up"].all()  # cumulative within each day, reset at midnight


def test_demo_eras(readings: pl.DataFrame, eras: pl.DataFrame) -> None:
    assert eras["era_id"].dtype == pl.Int64 and eras["era_id"].is_unique().all()
    assert 35 <= eras.height <= 45
    end = readings["time"].max()
    after = eras.filter(pl.col("start_time") > end)
    assert after.height == 1
    inside = eras.filter(pl.col("start_time") <= end)
    hours = (inside["end_time"] - inside["start_time"]).dt.total_minutes() / 60
    assert hours.min() >= 3 and hours.max() <= 96
    for part in inside.partition_by("compartment_id"):
        part = part.sort("start_time")
        assert part["start_time"][0] == readings["time"].min()
        assert (part["start_time"][1:] == part["end_time"][:-1]).all()  # consecutive
    hits = readings.join_where(
        eras,
        pl.col("compartment_id") == pl.col("compartment_id_right"),
        pl.col("time") >= pl.col("start_time"),
        pl.col("time") < pl.col("end_time"),
    )
    empty = set(eras["era_id"]) - set(hits["era_id"])
    assert empty == set(after["era_id"])  # the only era without readings


def test_to_wide(readings: pl.DataFrame) -> None:
    wide = to_wide(readings)
    assert wide.columns == ["time", "compartment_id", *DEMO_SENSORS]
    assert wide.select(pl.exclude("time", "compartment_id").count()).sum_horizontal()[0] == (
        readings.height
    )


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_seed_demo_custom_names(pg_conn, layout: str) -> None:
    tables = DemoTables(
        schema="Demo Schema",
        layout=layout,
        readings_table="Sensor Readings",
        time_column="Zeit",
        partition_column="cell id",
        sensor_column="Sensor",
        value_column="v",
        eras_table="my eras",
        era_id_column="ID",
        era_start_column="from",
        era_end_column="to",
        era_partition_column="Cell",
    )
    counts = seed_demo(pg_conn, tables, seed=3, **SMALL)
    readings = generate_readings(seed=3, **SMALL)
    expected = readings.height if layout == "long" else to_wide(readings).height
    eras = generate_eras(seed=3, days=SMALL["days"])
    assert counts == {"readings": expected, "eras": eras.height}
    assert _count(pg_conn, "Demo Schema", "Sensor Readings") == expected
    assert _count(pg_conn, "Demo Schema", "my eras") == eras.height
    columns = table_columns(pg_conn, "Demo Schema", "Sensor Readings")
    assert columns is not None
    assert columns["Zeit"] == "timestamp with time zone" and columns["cell id"] == "integer"
    if layout == "long":
        assert columns == {
            "Zeit": "timestamp with time zone",
            "cell id": "integer",
            "Sensor": "text",
            "v": "double precision",
        }
    else:
        assert list(columns)[2:] == list(DEMO_SENSORS)
        assert set(list(columns.values())[2:]) == {"double precision"}
    assert table_columns(pg_conn, "Demo Schema", "my eras") == {
        "ID": "bigint",
        "Cell": "integer",
        "from": "timestamp with time zone",
        "to": "timestamp with time zone",
    }


def test_seed_demo_default_names_and_replace(pg_conn) -> None:
    counts = seed_demo(pg_conn, days=2, compartments=1)
    assert _count(pg_conn, "public", "sensor_readings") == counts["readings"]
    with pytest.raises(StreamfxError, match="already exists"):
        seed_demo(pg_conn, days=2, compartments=1)
    assert seed_demo(pg_conn, replace=True, days=3, compartments=1)["eras"] > 0


# --- Aarslev ----------------------------------------------------------------------------------


def _raw_cells() -> tuple[int, int, str]:
    """Rows, empty cells and the raw radiation text of 2014-03-31 23:50 from the CSV files."""
    rows = empty = 0
    text = ""
    for path in sorted(CELLE5.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=";")
            assert tuple(next(reader)) == HEADER
            for row in reader:
                rows += 1
                empty += sum(value == "" for value in row[2:])
                if row[:2] == ["2014-03-31", "23:50:00"]:
                    text = row[2 + SENSORS.index("radiation_w_m2")]
    return rows, empty, text


def test_aarslev_shape_and_nulls(celle5: pl.DataFrame) -> None:
    rows, empty, text = _raw_cells()
    # The README says 30,528; the files hold 212 days * 144 - 6 (DST) = 30,522.
    assert rows == celle5.height == 30_522
    assert celle5["time"].is_unique().all() and celle5["time"].is_sorted()
    assert celle5.columns == ["time", *SENSORS] and len(SENSORS) == 17
    assert celle5.schema["time"] == pl.Datetime("us", "UTC")
    assert all(celle5.schema[s] == pl.Float64 for s in SENSORS)
    nulls = celle5.select(pl.col(SENSORS).null_count()).sum_horizontal()[0]
    assert nulls == empty == 133_766
    assert text == "8.94135e-009"
    last = celle5.filter(pl.col("time") == dt.datetime(2014, 3, 31, 21, 50, tzinfo=dt.timezone.utc))
    assert last["radiation_w_m2"][0] == pytest.approx(8.94135e-09, rel=1e-12)
    assert to_long(celle5).height == rows * len(SENSORS) - empty


def test_aarslev_local_time(celle5: pl.DataFrame) -> None:
    local = celle5["time"].dt.convert_time_zone("Europe/Copenhagen")
    per_day = local.dt.date().value_counts()
    assert per_day.filter(pl.col("time") == dt.date(2014, 3, 30))["count"][0] == 138
    assert per_day.height == 212
    first = local[0]
    assert (first.date(), first.hour) == (dt.date(2013, 12, 1), 0)
    assert celle5["time"][0] == dt.datetime(2013, 11, 30, 23, tzinfo=dt.timezone.utc)


def test_aarslev_autumn_hour(tmp_path: Path) -> None:
    """A repeated local hour maps to two distinct UTC hours instead of failing."""
    lines = [";".join(f'"{h}"' if h.startswith("Celle") else h for h in HEADER)]
    for clock in ("01:30:00", "02:30:00", "02:30:00", "03:30:00"):
        lines.append(f'2014-10-26;{clock};"1.5e-003"' + ";" * (len(SENSORS) - 1))
    (tmp_path / "output-2014-10-01-00-00.csv").write_text("\r\n".join(lines) + "\r\n")
    wide = load_aarslev(tmp_path)
    assert [t.hour for t in wide["time"]] == [23, 0, 1, 2]
    assert wide["air_temp_c"].to_list() == [0.0015] * 4


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_seed_aarslev(pg_conn, celle5: pl.DataFrame, layout: str) -> None:
    n = seed_aarslev(pg_conn, CELLE5, schema="Real", table="Celle 5", layout=layout)
    expected = celle5.height if layout == "wide" else to_long(celle5).height
    assert n == expected == _count(pg_conn, "Real", "Celle 5")
    columns = table_columns(pg_conn, "Real", "Celle 5")
    assert columns is not None and columns["time"] == "timestamp with time zone"
    if layout == "wide":
        assert list(columns) == ["time", *SENSORS]
    with pg_conn.cursor() as cur:
        cur.execute('SELECT min(time), max(time) FROM "Real"."Celle 5"')
        loaded = celle5 if layout == "wide" else to_long(celle5)
        assert cur.fetchone() == (loaded["time"].min(), loaded["time"].max())
    pg_conn.commit()
