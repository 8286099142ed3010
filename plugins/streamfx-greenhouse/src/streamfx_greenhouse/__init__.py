"""Greenhouse domain features and sensor profile for streamfx.

Each calculator works on one era's series of one sensor: ``values`` (float64) and ``times``
(datetime64[us], UTC, sorted). Day boundaries are UTC days.
"""

from __future__ import annotations

import numpy as np

from streamfx import REFERENCE_PROFILE, FeatureCalculator, SensorProfile, SensorRule, hookimpl

HOUR = np.timedelta64(3600_000_000, "us")


def _days(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[D]")


def growing_degree_days(values: np.ndarray, times: np.ndarray, base: float = 10.0) -> float:
    """Sum over the era's days of max(0, (daily max + daily min) / 2 - base), in °C·day."""
    days = _days(times)
    _, starts = np.unique(days, return_index=True)
    highs = np.maximum.reduceat(values, starts)
    lows = np.minimum.reduceat(values, starts)
    return float(np.sum(np.maximum(0.0, (highs + lows) / 2 - base)))


def _step_hours(times: np.ndarray) -> np.ndarray:
    """Hours each reading stands for: the gap to the next one, at most twice the median gap."""
    if len(times) < 2:
        return np.zeros(len(times))
    gaps = np.diff(times) / HOUR
    typical = np.median(gaps)
    return np.append(np.minimum(gaps, 2 * typical), typical)


def heating_degree_hours(values: np.ndarray, times: np.ndarray, base: float = 18.0) -> float:
    """Sum of max(0, base - temperature) × hours: how much heating the era needed, in °C·h."""
    return float(np.sum(np.maximum(0.0, base - values) * _step_hours(times)))


def daily_light_integral(values: np.ndarray, times: np.ndarray) -> float:
    """Mean daily light integral in mol/m²/day from PAR in µmol/m²/s (mean PAR × 86,400 s / 1e6).

    The mean over the era's readings, so sensor gaps do not lower the integral.
    """
    return float(np.mean(values) * 86_400 / 1e6)


def vpd_in_range_fraction(
    values: np.ndarray, times: np.ndarray, low: float = 3.0, high: float = 10.0
) -> float:
    """Share of readings with vapour-pressure deficit in [low, high] hPa (the comfortable band)."""
    return float(np.mean((values >= low) & (values <= high)))


def duty_cycle(x: np.ndarray) -> np.ndarray:
    """Share of readings where a status or position is on (> 0), per series."""
    return np.mean(x > 0, axis=1)


def state_transitions(x: np.ndarray) -> np.ndarray:
    """Number of changes between consecutive readings, per series (switching frequency)."""
    return np.sum(x[:, 1:] != x[:, :-1], axis=1).astype(float)


@hookimpl
def register_feature_calculators() -> list[FeatureCalculator]:
    return [
        FeatureCalculator("growing_degree_days", growing_degree_days, [{"base": 10.0}]),
        FeatureCalculator("heating_degree_hours", heating_degree_hours, [{"base": 18.0}]),
        FeatureCalculator("daily_light_integral", daily_light_integral),
        FeatureCalculator(
            "vpd_in_range_fraction", vpd_in_range_fraction, [{"low": 3.0, "high": 10.0}]
        ),
        FeatureCalculator("duty_cycle", duty_cycle, kind="batch"),
        FeatureCalculator("state_transitions", state_transitions, kind="batch"),
    ]


GREENHOUSE_PROFILE = SensorProfile(
    name="greenhouse",
    description="reference lanes and feature sets plus greenhouse domain features",
    rules=(
        SensorRule(
            "air_temp_c", calculators={"growing_degree_days": None, "heating_degree_hours": None}
        ),
        SensorRule("light_intensity_umol", calculators={"daily_light_integral": None}),
        SensorRule("par_synth_umol", calculators={"daily_light_integral": None}),
        SensorRule("vpd_hpa", features="efficient", calculators={"vpd_in_range_fraction": None}),
        SensorRule(
            "*_status", lane="cpu", calculators={"duty_cycle": None, "state_transitions": None}
        ),
        SensorRule(
            "vent_*", lane="cpu", calculators={"duty_cycle": None, "state_transitions": None}
        ),
        SensorRule(
            "curtain_*", lane="cpu", calculators={"duty_cycle": None, "state_transitions": None}
        ),
        *REFERENCE_PROFILE.rules,
    ),
)


@hookimpl
def register_sensor_profiles() -> list[SensorProfile]:
    return [GREENHOUSE_PROFILE]
