"""Parity of the changes calculators with tsfresh."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfx.extract.calculators import changes

from .parity import assert_parity, efficient, standard_cases

NAMES = (
    "mean_abs_change",
    "mean_change",
    "mean_second_derivative_central",
    "absolute_sum_of_changes",
    "longest_strike_below_mean",
    "longest_strike_above_mean",
    "last_location_of_maximum",
    "first_location_of_maximum",
    "last_location_of_minimum",
    "first_location_of_minimum",
    "time_reversal_asymmetry_statistic",
    "c3",
    "cid_ce",
    "number_crossing_m",
    "number_peaks",
    "change_quantiles",
    "energy_ratio_by_chunks",
    "autocorrelation",
    "agg_autocorrelation",
    "partial_autocorrelation",
    "lempel_ziv_complexity",
    "permutation_entropy",
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
small_int = st.integers(-3, 3).map(float)
values = st.one_of(
    st.lists(finite, min_size=1, max_size=60),
    st.lists(small_int, min_size=1, max_size=60),
)


def test_changes_parity() -> None:
    assert assert_parity(efficient(*NAMES), standard_cases()) > 1000


def test_changes_parity_edge_cases() -> None:
    rng = np.random.default_rng(11)
    cases = [
        np.full(7, 0.1),  # constant whose mean is not exact
        np.full(12, 1e-3),
        np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]),
        np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]),  # peaks and crossings
        np.array([3.0, 1.0, 2.0]),
        np.array([2.0, 2.0, 2.0, 5.0]),
        np.arange(25.0),
        np.arange(25.0)[::-1].copy(),
        rng.normal(size=10) * 1e-5,  # variance below autocorrelation's cut-offs
        rng.normal(size=1500).cumsum(),  # statsmodels' acf switches to FFT above 1250
        rng.integers(0, 3, size=400).astype(float),  # many tied ordinal patterns
        np.round(rng.normal(size=300).cumsum(), 1),
    ]
    assert_parity(efficient(*NAMES), cases)


@settings(max_examples=30, deadline=None)
@given(st.lists(values, min_size=1, max_size=5))
def test_changes_parity_hypothesis(series: list[list[float]]) -> None:
    assert_parity(efficient(*NAMES), [np.array(s) for s in series])


def test_aggregates_beyond_the_grids_as_tsfresh() -> None:
    """``f_agg`` values tsfresh documents but its grids do not use, computed natively:
    change_quantiles' std, agg_autocorrelation's std, sum, max and min, agg_linear_trend's
    sum and std."""
    settings = {
        "change_quantiles": [
            {"ql": ql, "qh": qh, "isabs": isabs, "f_agg": "std"}
            for ql, qh in ((0.0, 0.6), (0.2, 0.8), (0.4, 1.0), (0.6, 0.2))
            for isabs in (False, True)
        ],
        "agg_autocorrelation": [
            {"f_agg": f_agg, "maxlag": maxlag}
            for f_agg in ("std", "sum", "max", "min")
            for maxlag in (3, 40)
        ],
        "agg_linear_trend": [
            {"attr": attr, "chunk_len": 5, "f_agg": f_agg}
            for attr in ("slope", "stderr")
            for f_agg in ("sum", "std")
        ],
    }
    assert assert_parity(settings, standard_cases()) > 300


def test_other_aggregates_go_to_tsfresh() -> None:
    """A NumPy function the kernel lacks (change_quantiles' median) leaves the calculator to
    tsfresh, all its parameter sets, so its columns keep tsfresh's order."""
    from streamfx.extract.calculators import split_settings

    mixed = [
        {"ql": 0.2, "qh": 0.8, "isabs": False, "f_agg": "median"},
        {"ql": 0.2, "qh": 0.8, "isabs": False, "f_agg": "mean"},
    ]
    native, _, rest = split_settings({"change_quantiles": mixed, "mean": None})
    assert native == {"mean": None} and rest == {"change_quantiles": mixed}


def test_entropies_as_tsfresh() -> None:
    """sample_entropy and approximate_entropy (the comprehensive set's), computed natively."""
    rng = np.random.default_rng(5)
    cases = [
        *standard_cases(),
        np.full(9, 0.3),  # constant: tolerance 0, every template matches
        np.array([1.0, 2.0]),
        np.array([1.0, 2.0, 3.0]),
        np.tile([1.0, 2.0, 3.0], 20),  # periodic: A = B, entropies near 0
        np.round(rng.normal(size=200).cumsum(), 1),  # ties at the tolerance
        rng.normal(size=700),
    ]
    settings = {
        "sample_entropy": None,
        "approximate_entropy": [{"m": 2, "r": r} for r in (0.1, 0.3, 0.5, 0.7, 0.9)],
    }
    assert assert_parity(settings, cases) > 100


def test_permutation_entropy_cpu_kernels_match_the_device_path() -> None:
    """The compiled order codes and entropy the CPU takes equal the array operations the
    device runs (codes exactly, entropies to rounding: the sums run in another order)."""
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(12, 200)), 1)  # ties
    x[0] = 1.0
    x[1, ::3] = np.nan
    for d in (2, 3, 5, 7):
        for tau in (1, 2, 5):
            windows = (x.shape[1] - d) // tau + 1
            codes = changes._order_codes(x, d, tau, windows)
            np.testing.assert_array_equal(codes, changes._order_codes_xp(x, d, tau, windows))
            labels = changes._pattern_table(codes.reshape(-1), d)[codes]
            np.testing.assert_allclose(
                changes._sorted_label_entropy(np.sort(labels, axis=1)),
                changes._entropy_of_labels(np, labels),
                rtol=1e-12,
            )


def test_autocovariances_are_statsmodels_sums_on_the_cpu_and_agree_with_the_device_path() -> None:
    """The host's lagged dot products equal statsmodels' acovf(adjusted, fft=False) to the bit
    (agg_autocorrelation and partial_autocorrelation read them), on walks, noise, ties,
    constants and lengths 2-3,000; the device's sums of products agree to rounding."""
    from statsmodels.tsa.stattools import acovf

    rng = np.random.default_rng(5)
    for n in (2, 3, 12, 144, 1251, 3000):
        x = np.vstack(
            [
                np.cumsum(rng.normal(size=n)),
                rng.normal(size=n) * 1e6 + 1e9,
                np.round(rng.normal(size=n), 1),
                np.full(n, 7.0),
            ]
        )
        lags = min(40, n - 1)
        host = changes._autocovariances(x, lags)
        expected = np.array([acovf(row, adjusted=True, fft=False)[: lags + 1] for row in x])
        np.testing.assert_array_equal(host, expected)
        device = changes._autocovariances_xp(np, x, lags)
        np.testing.assert_allclose(device, host, rtol=1e-9, atol=1e-12 * np.abs(host).max())


def test_agg_autocorrelation_beyond_the_direct_lags_takes_one_fft_with_tsfresh_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More lags than ``_DIRECT_LAGS``: one FFT of every lag (a dot product per lag would be
    quadratic), values as tsfresh's (statsmodels' FFT above 1,250 points, its sums below)."""
    from tsfresh.feature_extraction import feature_calculators as fc

    fft = changes._fft_autocovariances
    calls = []
    monkeypatch.setattr(changes, "_fft_autocovariances", lambda *a: calls.append(a) or fft(*a))
    rng = np.random.default_rng(8)
    lags = changes._DIRECT_LAGS + 100
    param = [{"f_agg": f, "maxlag": lags} for f in ("mean", "median", "var")]
    for n in (800, 1300):
        x = np.vstack([np.cumsum(rng.normal(size=n)), rng.normal(size=n)])
        direct = changes._autocovariances(x, lags)
        np.testing.assert_allclose(fft(np, x, lags), direct, rtol=1e-9, atol=1e-12)
        ours = changes.agg_autocorrelation(x, param)
        for row, series in enumerate(x):
            expected = dict(fc.agg_autocorrelation(series, param))
            for suffix, values in ours:
                assert values[row] == pytest.approx(expected[suffix], rel=1e-6, abs=1e-9)
    assert len(calls) == 2  # one FFT per call


def test_template_entropies_share_one_pass_with_the_same_values() -> None:
    """sample_entropy's tolerance joins approximate_entropy's pass where a batch computes both
    (once: the kernel runs one time), and the values equal each computed on its own."""
    from streamfx.extract.calculators import compute
    from streamfx.extract.feature_sets import feature_set

    grid = feature_set("comprehensive")["approximate_entropy"]
    x = np.round(np.random.default_rng(4).normal(size=(6, 300)).cumsum(axis=1), 1)
    calls = []
    kernel = changes._template_matches

    def counted(*args: object) -> object:
        calls.append(args)
        return kernel(*args)

    changes._template_matches = counted
    try:
        both = dict(compute(x, {"sample_entropy": None, "approximate_entropy": grid}))
    finally:
        changes._template_matches = kernel
    assert len(calls) == 1 and calls[0][2].shape[1] == 6  # 0.2 and the five r
    alone = {
        **dict(compute(x, {"sample_entropy": None})),
        **dict(compute(x, {"approximate_entropy": grid})),
    }
    assert both.keys() == alone.keys()
    for name, values in both.items():
        np.testing.assert_array_equal(values, alone[name])
