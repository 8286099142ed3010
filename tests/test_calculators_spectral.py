"""Parity of the spectral calculators with tsfresh."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .parity import assert_parity, efficient, standard_cases

NAMES = (
    "fft_coefficient",
    "fft_aggregated",
    "spkt_welch_density",
    "cwt_coefficients",
    "number_cwt_peaks",
    "fourier_entropy",
)
# fft_coefficient's 400 columns dominate tsfresh's time; the hypothesis tests check its four
# attributes on the first coefficients and the rest on all their parameter sets.
LIGHT = {
    **efficient(*NAMES[1:]),
    "fft_coefficient": [
        {"coeff": c, "attr": a} for a in ("real", "imag", "abs", "angle") for c in range(8)
    ],
}

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
small_int = st.integers(-3, 3).map(float)


def test_spectral_parity() -> None:
    assert assert_parity(efficient(*NAMES), standard_cases()) > 10_000


def test_spectral_parity_lengths() -> None:
    """Welch segment boundaries (256, 257, 384, 385, 800), long cwt kernels, near-constants."""
    rng = np.random.default_rng(3)
    cases = [rng.normal(size=n).cumsum() for n in (255, 256, 257, 383, 384, 385, 512, 800)]
    cases += [rng.integers(0, 2, size=n).astype(float) for n in (256, 300, 800)]
    cases += [np.full(n, 0.1) for n in (3, 7, 144, 300)]  # mean not exactly 0.1
    cases += [np.repeat(rng.integers(0, 5, size=30).astype(float), 5)]  # plateaus
    cases += [np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]), np.array([2.0, -2.0])]
    assert_parity(efficient(*NAMES), cases)


def test_spectral_parity_many_statuses() -> None:
    """Binary and small-integer series: ties between wavelet responses decide cwt peaks."""
    rng = np.random.default_rng(11)
    cases = [rng.integers(0, 2, size=n).astype(float) for n in rng.integers(3, 200, size=20)]
    cases += [rng.integers(0, 4, size=n).astype(float) for n in rng.integers(3, 200, size=20)]
    assert_parity(efficient("number_cwt_peaks", "fourier_entropy"), cases)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=60), min_size=1, max_size=5))
def test_spectral_parity_hypothesis(series: list[list[float]]) -> None:
    assert_parity(LIGHT, [np.array(s) for s in series])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(small_int, min_size=1, max_size=60), min_size=1, max_size=5))
def test_spectral_parity_hypothesis_ties(series: list[list[float]]) -> None:
    assert_parity(LIGHT, [np.array(s) for s in series])


def test_number_cwt_peaks_long_series() -> None:
    """Noise windows of many columns (ceil(length / 20)): random walks, noise, statuses."""
    rng = np.random.default_rng(13)
    cases = [rng.normal(size=n).cumsum() for n in (1000, 2500)]
    cases += [rng.normal(size=1200), rng.integers(0, 3, size=1500).astype(float)]
    assert_parity(efficient("number_cwt_peaks"), cases)


@pytest.mark.parametrize("length", [3, 57, 144, 257, 1400])
def test_noise_floors_are_scipys_percentile(length: int) -> None:
    """The sliding order statistic equals scoreatpercentile on each clipped window, NaN and
    ties included, for windows kept sorted (up to 64 values) and counted in a tree."""
    from scipy.stats import scoreatpercentile

    from streamfx.extract.calculators.spectral import _noise_floors

    rng = np.random.default_rng(17)
    rows = np.round(rng.normal(size=(3, length)), 1)
    rows[1, [i for i in (0, 2, 5, 40, 41, 200) if i < length]] = np.nan
    rows[2, : length // 3] = np.nan
    size = -(-rows.shape[1] // 20)
    half, odd = size // 2, size % 2
    got = _noise_floors(rows)
    for s, row in enumerate(rows):
        for c in range(row.size):
            window = row[max(c - half, 0) : min(c + half + odd, row.size)]
            want = scoreatpercentile(np.sort(window), 10)
            assert (np.isnan(want) and np.isnan(got[s, c])) or got[s, c] == want, (s, c)


@pytest.mark.parametrize("length", [5, 12, 53, 144, 401])
def test_ricker_transform_is_numpys_convolution_bit_for_bit(length: int) -> None:
    """Edges by BLAS ddot from compiled code, the middle by matmul: the same floats as
    ``np.convolve(row, kernel, "same")`` (ties between responses decide peaks)."""
    from streamfx.extract.calculators.spectral import _ricker, _ricker_cwt

    rng = np.random.default_rng(length)
    x = np.concatenate(
        [rng.normal(size=(4, length)).cumsum(axis=1), np.round(rng.normal(size=(2, length)))]
    )
    got = _ricker_cwt(x, 5)
    for width in range(1, 6):
        kernel = np.conj(_ricker(min(10 * width, length), width)[::-1])
        want = np.array([np.convolve(row, kernel, "same") for row in x])
        np.testing.assert_array_equal(got[:, width - 1], want)
