"""Parity of the statistics calculators with tsfresh."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfx.extract.calculators import statistics

from .parity import assert_parity, efficient, standard_cases

NAMES = (
    "mean",
    "sum_values",
    "length",
    "quantile",
    "median",
    "variance_larger_than_standard_deviation",
    "standard_deviation",
    "variation_coefficient",
    "variance",
    "skewness",
    "kurtosis",
    "root_mean_square",
    "abs_energy",
    "maximum",
    "absolute_maximum",
    "minimum",
    "large_standard_deviation",
    "ratio_beyond_r_sigma",
    "count_above_mean",
    "count_below_mean",
    "count_above",
    "count_below",
    "range_count",
    "value_count",
    "mean_n_absolute_max",
    "symmetry_looking",
    "benford_correlation",
    "has_duplicate_max",
    "has_duplicate_min",
    "has_duplicate",
    "percentage_of_reoccurring_values_to_all_values",
    "percentage_of_reoccurring_datapoints_to_all_datapoints",
    "sum_of_reoccurring_values",
    "sum_of_reoccurring_data_points",
    "ratio_value_number_to_time_series_length",
    "index_mass_quantile",
    "binned_entropy",
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
small_integers = st.integers(-3, 3).map(float)
# a few values, many repeats: ties, equal digit frequencies, cancelling sums
repeated = st.sampled_from([-1e6, -2.5, -1.0, -0.0, 0.0, 1e-5, 0.1, 0.3, 1.0, 7.0, 1e6])


def test_statistics_parity() -> None:
    assert assert_parity(efficient(*NAMES), standard_cases()) > 2000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=60), min_size=1, max_size=5))
def test_statistics_parity_hypothesis(series: list[list[float]]) -> None:
    assert_parity(efficient(*NAMES), [np.array(s) for s in series])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(small_integers, min_size=1, max_size=60),
            st.lists(repeated, min_size=1, max_size=60),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_statistics_parity_ties(series: list[list[float]]) -> None:
    assert_parity(efficient(*NAMES), [np.array(s) for s in series])


def test_statistics_edge_cases() -> None:
    rng = np.random.default_rng(3)
    cases = [
        np.arange(1.0, 10.0),  # every first digit once: flat digit frequencies
        np.array([0.1] * 7),  # a constant whose mean rounds
        np.array([1e6, 1e6 + 1e-9, 1e6, 1e6 + 2e-9, 1e6]),  # tiny spread, large offset
        np.array([0.0, 5e-324, 2.2250738585072014e-308, 1e-300]),  # subnormal digits and bins
        np.array([-1e6] * 20 + [1e-5, 1e-5] + [1e6] * 20),  # cancelling reoccurring sums
        np.array([0.3, 0.29999999999999993, 3e-5, 9.999999999999999e22, 1e23]),
        np.concatenate([np.arange(20.0), np.arange(20.0)]),  # more than 8 reoccurring values
        rng.integers(-100, 100, size=600).astype(float),  # > 128 distinct repeated values
        rng.normal(size=700) * 1e3 + 1e5,  # several SIMD blocks in pandas' moments
        np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),  # exactly 7 absolute maxima + 1
        np.linspace(-1.0, 1.0, 11),  # values exactly on histogram edges
    ]
    assert_parity(efficient(*NAMES), cases)


def test_skewness_kurtosis_bitwise() -> None:
    """pandas' moments are reproduced exactly, not only to the harness' tolerance."""
    rng = np.random.default_rng(11)
    for n in (3, 4, 5, 8, 255, 256, 257, 513, 900):
        x = rng.normal(size=(6, n)) * 10.0 ** rng.integers(-3, 7, size=(6, 1)) + 1e6
        x[0] = 0.1
        x[1] = np.round(x[1])
        with np.errstate(all="ignore"):
            skew, kurt = statistics.skewness(x), statistics.kurtosis(x)
        want_skew = [pd.Series(r).skew(skipna=False) for r in x]
        want_kurt = [pd.Series(r).kurtosis() for r in x]
        np.testing.assert_array_equal(skew, want_skew)
        np.testing.assert_array_equal(kurt, want_kurt)


def test_pairwise_prefix_matches_numpy_sum() -> None:
    rng = np.random.default_rng(5)
    for width in (5, 9, 64, 130, 300, 800):
        count = rng.integers(0, width + 1, size=50)
        values = rng.normal(size=(50, width)) * 10.0 ** rng.integers(-8, 16, size=(50, width))
        values[np.arange(width)[None, :] >= count[:, None]] = 0.0
        want = [np.sum(row[:k]) for row, k in zip(values, count, strict=True)]
        np.testing.assert_array_equal(statistics._pairwise_prefix(values, count), want)


def test_leading_digit_table() -> None:
    """The table gives the shortest repr's first digit at and just below every threshold."""
    thresholds, digits = statistics._leading_digit_table()

    def looked_up(value: float) -> float:
        slot = np.searchsorted(thresholds, value, side="right") - 1
        return digits[slot] if slot >= 0 else 0.0

    for threshold in thresholds[np.isfinite(thresholds)]:
        for value in (threshold, float(np.nextafter(threshold, 0.0))):
            assert looked_up(value) == int(np.format_float_scientific(value)[:1]), value


def test_leading_digit_frequencies_cpu_kernel_matches_the_device_path() -> None:
    """benford_correlation's digit shares: the compiled search equals the array operations,
    from subnormals to the largest doubles, with NaN, infinities, zeros and negatives."""
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(size=144) * 10.0 ** rng.integers(-320, 308) for _ in range(64)])
    x[0, :6] = [np.nan, np.inf, -np.inf, 0.0, 5e-324, -np.finfo(np.float64).max]
    x[1] = 0.0
    host = statistics._digit_frequencies(x)
    device = statistics._digit_frequencies_xp(np, x)
    assert len(host) == len(device) == 9
    for h, d in zip(host, device, strict=True):
        np.testing.assert_array_equal(h, d)
    nonzero = np.all((x != 0) & ~np.isnan(x), axis=1)  # every value there leads with a digit
    assert nonzero[2:].any()
    np.testing.assert_allclose(sum(host)[nonzero], 1.0, rtol=1e-12)


def test_reoccurring_sums_kernel_matches_the_array_api_path() -> None:
    """The compiled pass the CPU takes gives the array-API path's sums (the GPU's) exactly."""
    rng = np.random.default_rng(8)
    for n in (1, 2, 7, 8, 9, 130, 300, 1000):
        x = np.round(rng.normal(size=(20, n)) * 10.0 ** rng.integers(0, 3, size=(20, 1)))
        x[0] = 1.5
        ordered = np.sort(x, axis=1)
        values, counts, n_unique = statistics._make_unique_counts(x)
        for weighted in (False, True):
            terms = np.where(counts > 1, counts * values if weighted else values, 0.0)
            want = statistics._pairwise_prefix(terms, n_unique)
            got = statistics._reoccurring_sums(ordered, weighted)
            np.testing.assert_array_equal(got, want)


def test_compiled_pairwise_sum_is_numpys() -> None:
    rng = np.random.default_rng(4)
    for n in (0, 1, 7, 8, 9, 127, 128, 129, 255, 257, 1000, 4097, 123_457):
        a = rng.normal(size=n) * 10.0 ** rng.integers(-8, 16, size=n)
        assert statistics.pairwise_sum(a, 0, n) == np.sum(a)
        assert statistics.pairwise_sum(a, 3, max(n - 2, 3)) == np.sum(a[3 : max(n - 2, 3)])


def test_quantiles_of_sorted_are_numpys_to_the_bit() -> None:
    """Every q of the shipped settings and qcut's nudged grid, rows of 1 to 300 values, ties
    and NaN: the same floats as ``np.quantile``."""
    from streamfx.extract.calculators.statistics import quantiles_of_sorted

    rng = np.random.default_rng(8)
    grid = np.linspace(0, 1, 31)
    np.putmask(grid, 30 * grid != np.arange(31), np.nextafter(grid, 1))
    qs = [*grid, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.25, 0.75, 1 / 3]
    for n in (1, 2, 3, 7, 144, 300):
        x = np.concatenate(
            [rng.normal(size=(5, n)).cumsum(axis=1), np.round(rng.normal(size=(3, n)))]
        )
        x[0, n // 2] = np.nan
        got = quantiles_of_sorted(np.sort(x, axis=1), qs)
        np.testing.assert_array_equal(got, np.quantile(x, qs, axis=1).T)


def test_histogram_entropy_cpu_kernel_matches_the_device_path_and_tsfresh() -> None:
    """The compiled histogram entropy (binned_entropy, fourier_entropy) equals the array
    operations the device runs and tsfresh's binned_entropy to the bit: constant rows, huge
    values, ranges too narrow for distinct edges (NaN, where NumPy raises), NaN rows."""
    from tsfresh.feature_extraction.feature_calculators import binned_entropy

    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 144, 1000):
        x = np.concatenate(
            [
                rng.normal(size=(4, n)).cumsum(axis=1),
                np.round(rng.normal(size=(2, n))),
                np.full((1, n), 3.0),
                np.full((1, n), 1e300),
                (1 + np.arange(n) * 1e-16)[None],
            ]
        )
        x[0, n // 2] = np.nan
        for bins in (2, 3, 10, 100):
            got = statistics._histogram_entropy(x, bins)
            with np.errstate(all="ignore"):  # as the extractor runs calculators
                device = statistics._histogram_entropy_xp(x, bins)
            np.testing.assert_array_equal(got, device)
            for row, value in zip(x[1:], got[1:], strict=True):
                try:
                    want = binned_entropy(row, bins)
                except ValueError:
                    want = np.nan
                np.testing.assert_array_equal(value, want)
