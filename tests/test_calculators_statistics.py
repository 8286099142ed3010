"""Parity of the statistics calculators with tsfresh."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from .parity import assert_parity, efficient, standard_cases

NAMES = ("mean", "sum_values", "length", "quantile", "median")

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def test_statistics_parity() -> None:
    assert assert_parity(efficient(*NAMES), standard_cases()) > 100


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=40), min_size=1, max_size=5))
def test_statistics_parity_hypothesis(series: list[list[float]]) -> None:
    assert_parity(efficient(*NAMES), [np.array(s) for s in series])
