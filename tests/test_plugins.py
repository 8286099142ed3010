"""Plugins: a test plugin's profile and calculators end to end, isolation, broken plugins."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from streamfx import READINGS_SCHEMA, FeatureCalculator, StreamfxError
from streamfx.extract.calculators import CALCULATORS
from streamfx.extract.plugin_calculators import (
    CalculatorFailed,
    check_calculators,
    run_plugin_calculators,
)

from .helpers import streamfx, write_pipeline

PLUGINS = Path(__file__).parent / "plugins"
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


@pytest.fixture
def temps_dsn(pg_dsn: str, pg_conn, monkeypatch: pytest.MonkeyPatch) -> str:
    """Three days of one sensor; day 2 holds a value the fragile calculator refuses."""
    times = [T0 + dt.timedelta(hours=h) for h in range(72)]
    values = [20.0 + (h % 24) / 4 for h in range(72)]
    values[30] = 999.0
    table = pa.table(
        {
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "sensor": ["temp_a"] * 72,
            "value": values,
        }
    )
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE temps (time timestamptz, sensor text, value float8)")
        cur.adbc_ingest("temps", table, mode="append")
    pg_conn.commit()
    monkeypatch.setenv("STREAMFX_DSN", pg_dsn)
    return pg_dsn


def sample_pipeline(tmp_path: Path, **overrides) -> Path:
    settings = {
        "plugins": [str(PLUGINS / "sample_plugin.py")],
        "source__readings": {"table": "temps", "layout": "long"},
        "source__eras": {"every": "1d"},
        "stages__classify": {"profile": "sample"},
        "stages__extract__rolling_windows": [],
    }
    return write_pipeline(tmp_path / "pipeline.yaml", **{**settings, **overrides})


def test_plugin_calculators_and_profile_end_to_end(tmp_path: Path, temps_dsn: str, pg_conn) -> None:
    path = sample_pipeline(tmp_path)
    listing = streamfx("plugins", "--pipeline", str(path))
    assert listing.returncode == 0, listing.stderr
    assert "sample_plugin" in listing.stdout and "local module" in listing.stdout
    assert "calculator peak_to_peak" in listing.stdout and "profile sample" in listing.stdout

    result = streamfx("run", str(path))
    assert result.returncode == 0, result.stderr
    assert "calculator 'fragile' failed on era 2024-05-02T00:00:00Z" in result.stderr

    table = pl.read_parquet(tmp_path / "out" / "features.parquet").sort("start")
    assert table["temp_a__peak_to_peak"].to_list() == [5.75, 979.0, 5.75]
    fragile = table["temp_a__fragile__limit_500.0"].to_list()
    assert fragile[0] == pytest.approx(np.mean([20 + h / 4 for h in range(24)]))
    assert math.isnan(fragile[1])  # that feature only, that era only
    assert not math.isnan(table["temp_a__mean"][1])

    with pg_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM streamfx_features WHERE feature = 'peak_to_peak'")
        assert cur.fetchone()[0] == 3
    pg_conn.commit()
    report = json.loads(next((tmp_path / "out" / "runs").glob("*.json")).read_text())
    assert report["warnings"] == 1 and report["eras"]["failed"] == 0


def test_calculator_error_can_fail_the_era(tmp_path: Path, temps_dsn: str) -> None:
    path = sample_pipeline(tmp_path, stages__extract__on_calculator_error="fail")
    result = streamfx("run", str(path))
    assert result.returncode == 1
    assert "1 failed" in result.stdout and "2024-05-02T00:00:00Z" in result.stdout
    assert pl.read_parquet(tmp_path / "out" / "features.parquet").height == 2


@pytest.mark.parametrize(
    ("module", "needles"),
    [
        ("broken_import", ["plugin 'broken_import'", "failed to import", "ModuleNotFoundError"]),
        (
            "raising_hook",
            ["plugin 'raising_hook'", "hook register_sensor_profiles", "profile database offline"],
        ),
        (
            "wrong_type",
            [
                "plugin 'wrong_type'",
                "register_feature_calculators",
                "expected streamfx.extract.FeatureCalculator",
            ],
        ),
    ],
)
def test_broken_plugins_give_one_clear_error(
    tmp_path: Path, temps_dsn: str, module, needles
) -> None:
    path = sample_pipeline(tmp_path, plugins=[str(PLUGINS / f"{module}.py")])
    result = streamfx("run", str(path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_calculator_in_yaml(tmp_path: Path, temps_dsn: str) -> None:
    path = sample_pipeline(
        tmp_path, stages__classify={"profile": None, "sensors": {"temp*": {"calculators": ["gdd"]}}}
    )
    result = streamfx("validate", "--offline", str(path))
    assert result.returncode == 2
    assert (
        "stages.classify.sensors.temp*.calculators: unknown feature calculator 'gdd'"
        in result.stderr
    )


def test_unknown_plugin_sink(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path / "p.yaml", sinks__parquett={"path": "x"})
    result = streamfx("validate", "--offline", str(path))
    assert result.returncode == 2
    assert "unknown sink 'parquett' (did you mean 'parquet'?)" in result.stderr


def test_streamfx_plugins_env_restricts_third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = streamfx("plugins")
    assert "greenhouse" in everything.stdout  # installed by the README's test command
    monkeypatch.setenv("STREAMFX_PLUGINS", "")
    restricted = streamfx("plugins")
    assert restricted.returncode == 0
    assert "greenhouse" not in restricted.stdout
    assert "streamfx.extract.extractors.tsfresh" in restricted.stdout  # built-ins always load
    monkeypatch.setenv("STREAMFX_PLUGINS", "greenhouse")
    only = streamfx("plugins").stdout
    assert "greenhouse" in only and "streamfx.extract.extractors.tsfresh" in only


def _bucketed_readings() -> pa.Table:
    """Three eras of 12 readings and one of 7, of one sensor."""
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rows = [
        (era, start + dt.timedelta(minutes=5 * i), float(i * (k + 1)))
        for k, (era, n) in enumerate([("a", 12), ("b", 12), ("c", 12), ("d", 7)])
        for i in range(n)
    ]
    era, time, value = zip(*rows, strict=True)
    return pa.table(
        {"era_id": era, "sensor": ["s"] * len(rows), "time": time, "value": value},
        schema=READINGS_SCHEMA,
    )


def test_batch_calculator_gets_a_bucket_of_series_per_call() -> None:
    shapes: list[tuple[int, ...]] = []

    def spread(x: np.ndarray) -> np.ndarray:
        shapes.append(x.shape)
        return x.max(axis=1) - x.min(axis=1)

    calculator = FeatureCalculator("spread", spread, kind="batch")
    features = run_plugin_calculators(
        _bucketed_readings(), {"s": {"spread": None}}, {"spread": calculator}
    )
    assert sorted(shapes) == [(1, 7), (3, 12)]  # one call per length, all its series at once
    got = {r["era_id"]: r["value"] for r in features.to_pylist()}
    assert got == {"a": 11.0, "b": 22.0, "c": 33.0, "d": 24.0}


def test_batch_calculator_that_raises_fails_only_its_series() -> None:
    def fussy(x: np.ndarray) -> np.ndarray:
        if (x > 30).any():
            raise ValueError("too warm")
        return x.sum(axis=1)

    warnings: list[str] = []
    calculator = FeatureCalculator("fussy", fussy, kind="batch")
    features = run_plugin_calculators(
        _bucketed_readings(), {"s": {"fussy": None}}, {"fussy": calculator}, warnings_out=warnings
    )
    got = {r["era_id"]: r["value"] for r in features.to_pylist()}
    assert got["a"] == 66.0 and got["b"] == 132.0 and got["d"] == 84.0
    assert math.isnan(got["c"])  # only era c holds a value above 30
    assert len(warnings) == 1 and "era c, sensor s" in warnings[0] and "too warm" in warnings[0]
    with pytest.raises(CalculatorFailed, match="era c"):
        run_plugin_calculators(
            _bucketed_readings(), {"s": {"fussy": None}}, {"fussy": calculator}, on_error="fail"
        )


def test_a_native_kernel_name_passes_the_calculator_check() -> None:
    check_calculators({"mean": None, "abs_energy": None}, "here")  # tsfresh's and native
    with pytest.raises(StreamfxError, match="here: unknown feature calculator 'no_such'"):
        check_calculators({"no_such": None}, "here")
    CALCULATORS["streamfx_only"] = CALCULATORS["mean"]  # a kernel tsfresh does not have
    try:
        check_calculators({"streamfx_only": None}, "here")
    finally:
        del CALCULATORS["streamfx_only"]
