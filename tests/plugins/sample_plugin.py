"""A plugin defined inside the tests: one profile, two calculators (one of them fragile)."""

import numpy as np

from streamfx import FeatureCalculator, SensorProfile, SensorRule, hookimpl


def peak_to_peak(x: np.ndarray) -> np.ndarray:
    """max - min of each series (a batch calculator)."""
    return x.max(axis=1) - x.min(axis=1)


def fragile(values: np.ndarray, times: np.ndarray, limit: float = 500.0) -> float:
    """The mean, but raises on any value above ``limit`` (to test isolation)."""
    if np.any(values > limit):
        raise ValueError(f"value above {limit}")
    return float(np.mean(values))


@hookimpl
def register_feature_calculators():
    return [
        FeatureCalculator("peak_to_peak", peak_to_peak, kind="batch"),
        FeatureCalculator("fragile", fragile, [{"limit": 500.0}]),
    ]


@hookimpl
def register_sensor_profiles():
    return [
        SensorProfile(
            "sample",
            (
                SensorRule(
                    "temp*", features="minimal", calculators={"peak_to_peak": None, "fragile": None}
                ),
            ),
            "test profile",
        )
    ]
