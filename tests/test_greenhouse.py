"""The streamfx-greenhouse plugin (installed like any third-party package) and pipelines/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from streamfx_greenhouse import (
    daily_light_integral,
    duty_cycle,
    growing_degree_days,
    heating_degree_hours,
    state_transitions,
    vpd_in_range_fraction,
)

from streamfx.config import load_config, sink_options
from streamfx.plugins.manager import feature_calculators, sensor_profiles
from streamfx.run.pipeline import run_pipeline
from streamfx.source.datasets.aarslev import seed_aarslev
from streamfx.source.open import seed_demo_if_missing

from .conftest import CELLE5, REPO
from .helpers import write_pipeline


def hours(*offsets: float) -> np.ndarray:
    base = np.datetime64("2024-05-01T00:00:00", "us")
    return base + (np.array(offsets) * 3600e6).astype("timedelta64[us]")


def test_growing_degree_days_by_hand() -> None:
    # day 1: min 10, max 20 -> (10 + 20) / 2 - 10 = 5; day 2: (5 + 9) / 2 - 10 < 0 -> 0
    values = np.array([10.0, 20.0, 15.0, 5.0, 9.0])
    assert growing_degree_days(values, hours(0, 12, 18, 30, 40), base=10.0) == 5.0
    assert growing_degree_days(values, hours(0, 12, 18, 30, 40), base=5.0) == 10.0 + 2.0


def test_daily_light_integral_by_hand() -> None:
    # 500 µmol/m²/s all day = 500 * 86,400 / 1e6 = 43.2 mol/m²/day
    assert daily_light_integral(np.full(24, 500.0), hours(*range(24))) == pytest.approx(43.2)
    # half the day dark: 21.6
    par = np.array([0.0] * 12 + [500.0] * 12)
    assert daily_light_integral(par, hours(*range(24))) == pytest.approx(21.6)


def test_heating_degree_hours_and_vpd_by_hand() -> None:
    # 3 hourly readings at 16 °C, base 18: 2 °C for 3 hours
    assert heating_degree_hours(np.full(3, 16.0), hours(0, 1, 2)) == pytest.approx(6.0)
    # a 10-hour gap counts as at most twice the usual step
    # steps 1, 1, 1, 10 h: the 10-hour gap counts as twice the median step, the last as one
    assert heating_degree_hours(np.full(5, 16.0), hours(0, 1, 2, 3, 13)) == pytest.approx(
        2 * (1 + 1 + 1 + 2 + 1)
    )
    assert vpd_in_range_fraction(np.array([1.0, 4.0, 9.0, 12.0]), hours(0, 1, 2, 3)) == 0.5


def test_status_calculators_by_hand() -> None:
    x = np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert duty_cycle(x).tolist() == [0.5, 1.0]
    assert state_transitions(x).tolist() == [2.0, 0.0]


def test_plugin_is_discovered_through_entry_points() -> None:
    assert "greenhouse" in sensor_profiles()
    assert {"growing_degree_days", "daily_light_integral", "duty_cycle"} <= set(
        feature_calculators()
    )


def test_greenhouse_profile_on_celle5(
    tmp_path: Path, pg_dsn: str, pg_conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_aarslev(pg_conn, CELLE5, table="celle5", layout="wide")
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    path = write_pipeline(
        tmp_path / "greenhouse.yaml",
        source__readings={"table": "celle5", "layout": "wide"},
        source__eras={"every": "1d", "from": "2014-05-01", "to": "2014-05-04"},
        stages__classify={"profile": "greenhouse", "default_features": "minimal"},
        stages__extract={"extractor": "native", "n_jobs": 0},
    )
    summary = run_pipeline(load_config(path))
    assert summary.done == 3 and not summary.failed
    table = pl.read_parquet(tmp_path / "out" / "features.parquet")
    for column in (
        "air_temp_c__growing_degree_days__base_10.0",
        "air_temp_c__heating_degree_hours__base_18.0",
        "light_intensity_umol__daily_light_integral",
        "vpd_hpa__vpd_in_range_fraction__high_10.0__low_3.0",
        "co2_dosing_status__duty_cycle",
        "vent_pos_1_percent__state_transitions",
        "air_temp_c__rolling_mean_24h__mean",
    ):
        assert column in table.columns, column
        assert table[column].is_not_null().all(), column
    gdd = table["air_temp_c__growing_degree_days__base_10.0"]
    assert ((gdd >= 0) & (gdd < 20)).all()  # one day of a spring greenhouse: a few °C·day


@pytest.mark.parametrize("name", ["greenhouse", "iot-long", "fixed-windows", "reference-layout"])
def test_example_pipelines_run(
    name: str, tmp_path: Path, pg_dsn: str, pg_conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pipelines/*.yaml, pointed at the test database and seeded as on the embedded server."""
    config = load_config(REPO / "pipelines" / f"{name}.yaml")
    source = config.source.model_copy(update={"dsn": pg_dsn})
    config = config.model_copy(update={"source": source})
    assert seed_demo_if_missing(config.source, pg_conn, lambda _: None)
    monkeypatch.chdir(tmp_path)  # relative output paths land here
    summary = run_pipeline(config, limit=3)
    assert summary.done >= 2 and not summary.failed
    assert (
        pl.read_parquet(sink_options(config)["parquet"].path / "features.parquet").height
        == summary.done
    )
