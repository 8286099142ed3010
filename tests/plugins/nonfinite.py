"""A plugin whose calculators give +inf, -inf and NaN on cue (to test imputation)."""

import numpy as np

from streamfx import FeatureCalculator, hookimpl

#: A series' first value -> what ``signal`` returns (any other first value: that value).
CUES = {1.0: np.inf, 2.0: -np.inf, 3.0: np.nan}


def signal(values: np.ndarray, times: np.ndarray) -> float:
    """+inf, -inf or NaN when the first value cues it, else the first value."""
    return float(CUES.get(float(values[0]), values[0]))


def undefined(values: np.ndarray, times: np.ndarray) -> float:
    """Always NaN: a feature column without any finite value."""
    return float("nan")


@hookimpl
def register_feature_calculators():
    return [FeatureCalculator("signal", signal), FeatureCalculator("undefined", undefined)]
