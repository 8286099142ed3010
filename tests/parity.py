"""Parity harness: streamfx's calculators against tsfresh.extract_features on the same series."""

from __future__ import annotations

import math
import warnings
from functools import cache

import numpy as np
import pandas as pd
import tsfresh
from tsfresh.feature_extraction import EfficientFCParameters

from streamfx.extract.calculators import CALCULATORS, compute

from .conftest import CELLE5

RTOL, ATOL = 1e-6, 1e-9


def efficient(*names: str) -> dict:
    """tsfresh's EfficientFCParameters restricted to ``names`` (all their parameter sets)."""
    settings = EfficientFCParameters()
    return {name: settings[name] for name in names}


@cache
def celle5_days() -> tuple[np.ndarray, ...]:
    """A few real days of celle5 sensors (gaps removed), as series."""
    from streamfx.source.datasets.aarslev import load_aarslev

    wide = load_aarslev(CELLE5)
    days = []
    for column in ("air_temp_c", "co2_measured_ppm", "vent_pos_1_percent", "co2_dosing_status"):
        values = wide[column].to_numpy()
        for start in (0, 144 * 40, 144 * 100):
            day = values[start : start + 144]
            days.append(day[~np.isnan(day)])
    return tuple(d for d in days if len(d))


def standard_cases(seed: int = 7) -> list[np.ndarray]:
    """Random walks, white noise, constants, lengths 1-5, ties, integer statuses, real days."""
    rng = np.random.default_rng(seed)
    cases = [rng.normal(size=n).cumsum() for n in (10, 50, 144, 300)]
    cases += [rng.normal(size=n) for n in (20, 144)]
    cases += [np.full(n, 3.5) for n in (1, 5, 40)]
    cases += [np.zeros(30)]
    cases += [rng.normal(size=n) for n in (1, 2, 3, 4, 5)]
    cases += [rng.integers(0, 4, size=n).astype(float) for n in (6, 60)]  # ties and repeats
    cases += [rng.integers(0, 2, size=144).astype(float)]  # a binary status
    cases += [np.array([1.0, 1.0, 2.0, 2.0, 1.0]), np.array([5.0, -5.0, 5.0, -5.0])]
    cases += list(celle5_days())
    return cases


def tsfresh_values(series: list[np.ndarray], settings: dict) -> pd.DataFrame:
    """tsfresh.extract_features on each series (id = position), columns without ``x__``."""
    frame = pd.DataFrame(
        {
            "id": np.repeat(np.arange(len(series)), [len(s) for s in series]),
            "time": np.concatenate([np.arange(len(s)) for s in series]),
            "value": np.concatenate(series),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tsfresh.extract_features(
            frame,
            column_id="id",
            column_sort="time",
            column_value="value",
            default_fc_parameters=settings,
            n_jobs=0,
            disable_progressbar=True,
        )
    result.columns = [c.removeprefix("value__") for c in result.columns]
    return result


def native_values(series: list[np.ndarray], settings: dict) -> pd.DataFrame:
    """streamfx's calculators on the same series, bucketed by length as the extractor does."""
    columns: dict[str, np.ndarray] = {}
    lengths = np.array([len(s) for s in series])
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        batch = np.stack([np.asarray(series[i], dtype=np.float64) for i in members])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, values in compute(batch, settings):
                columns.setdefault(name, np.full(len(series), np.nan))[members] = np.asarray(
                    values, dtype=np.float64
                )
    return pd.DataFrame(columns)


def assert_parity(settings: dict, series: list[np.ndarray]) -> int:
    """Every feature of ``settings`` equal to tsfresh's (NaN where tsfresh NaN); returns count."""
    missing = [name for name in settings if name not in CALCULATORS]
    assert not missing, f"not ported: {missing}"
    expected = tsfresh_values(series, settings)
    got = native_values(series, settings)
    assert sorted(got.columns) == sorted(expected.columns)
    checked = 0
    for column in expected.columns:
        for i, want in enumerate(expected[column].to_numpy(dtype=np.float64)):
            have = float(got[column].iloc[i])
            if math.isnan(want):
                assert math.isnan(have), (column, i, series[i][:8], have)
            elif math.isinf(want):
                assert have == want, (column, i, series[i][:8], have, want)
            else:
                assert math.isclose(have, want, rel_tol=RTOL, abs_tol=ATOL), (
                    column,
                    i,
                    series[i][:8],
                    have,
                    want,
                )
            checked += 1
    return checked
