"""Reductions over one series: moments, order statistics, extremes."""

from __future__ import annotations

from . import Array, namespace, simple


@simple
def mean(x: Array) -> Array:
    """Mean of the series."""
    return namespace(x).mean(x, axis=1)


@simple
def sum_values(x: Array) -> Array:
    """Sum of the values."""
    return namespace(x).sum(x, axis=1)


@simple
def length(x: Array) -> Array:
    """Number of values."""
    xp = namespace(x)
    return xp.full((x.shape[0],), float(x.shape[1]), dtype=xp.float64)


@simple
def quantile(x: Array, q: float) -> Array:
    """The q-quantile, linearly interpolated between order statistics (NumPy's default)."""
    xp = namespace(x)
    ordered = xp.sort(x, axis=1)
    position = q * (x.shape[1] - 1)
    lo = int(position // 1)
    hi = min(lo + 1, x.shape[1] - 1)
    t = position - lo
    a, b = ordered[:, lo], ordered[:, hi]
    # NumPy's _lerp: exact at both ends, symmetric around t = 0.5
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)


@simple
def median(x: Array) -> Array:
    """Median of the series."""
    return quantile(x, 0.5)
