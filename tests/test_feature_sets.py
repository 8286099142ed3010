"""streamfx's copy of tsfresh's feature sets equals the installed tsfresh's."""

from __future__ import annotations

import inspect

from tsfresh.feature_extraction import feature_calculators, settings

from streamfx import feature_set
from streamfx.extract.feature_sets import TSFRESH_CALCULATORS


def test_sets_equal_tsfresh_in_content_and_order() -> None:
    for name, tsfresh_set in (
        ("minimal", settings.MinimalFCParameters()),
        ("efficient", settings.EfficientFCParameters()),
        ("comprehensive", settings.ComprehensiveFCParameters()),
    ):
        ours = feature_set(name)
        assert ours == dict(tsfresh_set), name
        assert list(ours) == list(tsfresh_set), name


def test_calculator_names_equal_tsfresh() -> None:
    names = {
        n
        for n, f in inspect.getmembers(feature_calculators, inspect.isfunction)
        if hasattr(f, "fctype")
    }
    assert names == TSFRESH_CALCULATORS


def test_copies_are_independent() -> None:
    first = feature_set("efficient")
    first.pop("mean")
    assert "mean" in feature_set("efficient")
