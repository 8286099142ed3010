"""Parity of the model calculators (trends, AR, Langevin, ADF) with tsfresh."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfx.extract.calculators import models
from streamfx.extract.calculators.models import _max_real_root

from .parity import assert_parity, efficient, standard_cases

NAMES = (
    "linear_trend",
    "agg_linear_trend",
    "ar_coefficient",
    "friedrich_coefficients",
    "max_langevin_fixed_point",
    "query_similarity_count",
    "augmented_dickey_fuller",
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
small_int = st.integers(-3, 3).map(float)


def degenerate_cases() -> list[np.ndarray]:
    """Exact lines, periodic and step series, near-constant series: rank-deficient AR and ADF
    designs, perfect fits, constant bin means, repeated quantile edges."""
    rng = np.random.default_rng(3)
    return [
        np.tile([1.0, 2.0, 3.0], 20),
        np.tile([0.0, 1.0], 15),
        np.tile([5.0, -5.0, 5.0, 0.0], 10),
        np.arange(30.0),
        np.arange(30.0) * 0.1,
        np.arange(100.0) * 0.3 + 2,
        np.r_[np.zeros(20), 1.0],
        np.r_[np.ones(24) * 3, 3.0000001],
        np.r_[1.0, np.ones(30) * 2],
        np.r_[1.0, 2.0, np.ones(30) * 2, 5.0],
        np.r_[np.zeros(50), np.ones(50)],
        np.r_[np.zeros(70), np.ones(3), np.zeros(71)],
        np.tile([0.0, 0.0, 1.0], 48),
        (np.arange(144) % 7 == 0).astype(float),
        np.arange(12.0) ** 2,
        np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        np.array([0.0, 0.0, 0.0, 1.0]),
        np.array([3.0, 1.0, 2.0, 3.0, 1.0, 2.0]),
        np.array([0.2, 0.6, 1.0]),
        np.full(7, 0.1),
        1000 + rng.normal(size=200),
        1e6 + rng.normal(size=100).cumsum(),
        np.sin(np.arange(300) / 10),
        np.round(np.sin(np.arange(144) / 5) * 3),
        # flat after their first values: every candidate lag fits the zero differences exactly
        np.r_[np.zeros(5), 1.0, np.zeros(138)],
        np.r_[3.0, np.full(143, 2.0)],
        np.r_[np.arange(20.0), np.full(124, 7.0)],
    ]


def test_models_parity() -> None:
    assert assert_parity(efficient(*NAMES), standard_cases()) > 1500


def test_models_parity_degenerate() -> None:
    assert assert_parity(efficient(*NAMES), degenerate_cases()) > 1500


def test_models_parity_other_parameters() -> None:
    """Parameter sets outside EfficientFCParameters: other lags, aggregations, degrees, bins,
    lag selections, attributes and a given query."""
    custom = {
        "linear_trend": [{"attr": "intercept_stderr"}],
        "agg_linear_trend": [
            {"attr": attr, "chunk_len": chunk_len, "f_agg": f_agg}
            for attr in ("pvalue", "intercept_stderr", "rvalue")
            for chunk_len in (1, 2, 3, 7)
            for f_agg in ("std", "sum", "max", "var")
        ],
        "ar_coefficient": [{"coeff": c, "k": k} for k in (1, 2, 5) for c in range(7)],
        "friedrich_coefficients": [
            {"coeff": c, "m": m, "r": r} for m in (1, 2, 5) for r in (2, 5, 10) for c in (0, 2, 6)
        ],
        "max_langevin_fixed_point": [{"m": m, "r": r} for m in (1, 2, 5) for r in (1, 2, 5, 10)],
        "augmented_dickey_fuller": [
            {"attr": attr, "autolag": autolag}
            for attr in ("teststat", "pvalue", "usedlag", "unknown")
            for autolag in ("AIC", "BIC", "t-stat", None)
        ],
        "query_similarity_count": [
            {"query": np.array([1.0, 2.0, 3.0]), "threshold": 0.0},
            {"query": [1.0, 2.0, 3.0, 4.0], "threshold": 0.5, "normalize": False},
            {"query": [1.0, 2.0], "threshold": 0.0},
        ],
    }
    cases = [c for c in standard_cases() if len(c) >= 4] + degenerate_cases()[:14]
    assert assert_parity(custom, cases) > 4000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=60), min_size=1, max_size=5))
def test_models_parity_hypothesis(series: list[list[float]]) -> None:
    assert_parity(efficient(*NAMES), [np.array(s) for s in series])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(small_int, min_size=1, max_size=60), min_size=1, max_size=5))
def test_models_parity_hypothesis_ties(series: list[list[float]]) -> None:
    assert_parity(efficient(*NAMES), [np.array(s) for s in series])


def test_max_real_root_matches_np_roots() -> None:
    """Leading and trailing zeros, NaN, infinity, all zero and a lone constant."""
    rng = np.random.default_rng(0)
    coefficients = rng.normal(size=(300, 4))
    coefficients[rng.random((300, 4)) < 0.4] = 0.0
    coefficients[:6] = [
        [np.nan] * 4,
        [1.0, np.inf, 0.0, 1.0],
        [0.0] * 4,
        [0.0, 0.0, 0.0, 2.0],
        [2.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ]

    def reference(p: np.ndarray) -> float:
        try:
            return float(np.max(np.real(np.roots(p))))
        except (np.linalg.LinAlgError, ValueError):
            return np.nan

    expected = np.array([reference(p) for p in coefficients])
    np.testing.assert_array_equal(_max_real_root(coefficients), expected)


@pytest.mark.parametrize("length", [144, 400])
def test_models_parity_long_random_walks(length: int) -> None:
    """Long series take the fast lag selection of the Dickey-Fuller test."""
    rng = np.random.default_rng(length)
    walks = [rng.normal(size=length).cumsum() for _ in range(4)]
    noise = [rng.normal(size=length)]
    names = ("augmented_dickey_fuller", "ar_coefficient", "friedrich_coefficients")
    assert_parity(efficient(*names), walks + noise)


def test_dickey_fuller_lag_choice_from_cross_products() -> None:
    """The lag choice from the design's cross products (Cholesky) on the series where squaring
    the condition bites: far from zero, smooth (integrated twice), strongly autoregressive,
    rounded; every autolag, up to 3,000 values."""
    rng = np.random.default_rng(21)
    cases = []
    for n in (150, 1200, 3000):
        t = np.arange(n)
        ar = np.zeros(n)
        shocks = rng.normal(size=n)
        for i in range(2, n):
            ar[i] = 1.2 * ar[i - 1] - 0.3 * ar[i - 2] + shocks[i]
        cases += [
            1e6 + rng.normal(size=n).cumsum(),
            20 + np.sin(t / 17) + 0.01 * rng.normal(size=n),
            rng.normal(size=n).cumsum().cumsum() * 1e-3,
            ar,
            np.round(rng.normal(size=n).cumsum(), 1),
        ]
    settings = {
        "augmented_dickey_fuller": [
            {"attr": attr, "autolag": autolag}
            for attr in ("teststat", "usedlag")
            for autolag in ("AIC", "BIC", "t-stat")
        ]
    }
    assert assert_parity(settings, cases) == 6 * len(cases)


def test_qr_fits_match_the_statsmodels_way() -> None:
    """The host's QR fits of AR coefficients and Dickey-Fuller statistics equal the pinv (SVD)
    fits the device keeps, and hand back the rows they cannot trust (rank-deficient designs,
    perfect fits) to be fitted that way."""
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.normal(size=(20, 144)).cumsum(axis=1),
            rng.normal(size=(20, 144)),
            np.round(rng.normal(size=(20, 144)), 0),
            np.ones((1, 144)),
            np.arange(144.0)[None],
        ]
    )
    params, trusted = models._autoreg_qr(x, 10)
    assert trusted[:60].all() and not trusted[60:].any()
    np.testing.assert_allclose(params[:60], models._autoreg_pinv(np, x[:60], 10), rtol=1e-9)
    # constant series take the closed form of their rank-one fit, the others the SVD
    flat = np.array([[c] * 60 for c in (0.0, 1.0, -3.5, 1e-5, 1234.5, 1e10)])
    for rows in (x, flat):
        np.testing.assert_allclose(
            models._autoreg_params(np, rows, 10),
            models._autoreg_pinv(np, rows, 10),
            rtol=1e-9,
            atol=1e-12,
        )
    xdiff = np.diff(x, axis=1)
    for lag in (0, 1, 6):
        stat, trusted = models._adf_qr(x, xdiff, np.full(len(x), lag))
        assert trusted[:60].all() and not trusted[60:].any()
        rhs, target = models._adf_lag_columns(x[:60], xdiff[:60], lag)
        want = models._ols_blocks([*rhs, np.ones_like(rhs[0])], target, llf=False, tvalue=0)
        np.testing.assert_allclose(stat[:60], want["tvalue"], rtol=1e-9)
    # a regressor already a non-zero constant (the level of 3, ..., 3, 5) leaves it out
    step = np.r_[np.full(30, 3.0), 5.0][None]
    stat, trusted = models._adf_qr(step, np.diff(step, axis=1), np.array([0]))
    rhs, target = models._adf_lag_columns(step, np.diff(step, axis=1), 0)
    assert trusted.all()
    np.testing.assert_allclose(
        stat, models._ols_blocks(rhs, target, llf=False, tvalue=0)["tvalue"], rtol=1e-9
    )


def test_chunk_aggregates_are_numpys_to_the_bit() -> None:
    """The host's one-pass chunk aggregates equal the array operations the device runs (and
    tsfresh's NumPy methods), short last chunks, ties and NaN included."""
    rng = np.random.default_rng(9)
    codes = np.arange(len(models._CHUNK_AGGREGATES))
    for n in (1, 3, 12, 144, 1000):
        x = np.concatenate(
            [rng.normal(size=(4, n)).cumsum(axis=1), np.round(rng.normal(size=(2, n)))]
        )
        x[0, n // 2] = np.nan
        for chunk_len in (1, 2, 5, 50, 300):
            got = models._chunk_aggregates(x, chunk_len, codes)
            for aggregate, values in zip(models._CHUNK_AGGREGATES, got, strict=True):
                want = models._aggregate_on_chunks(np, x, aggregate, chunk_len)
                np.testing.assert_array_equal(values, want)
