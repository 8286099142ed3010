"""Fitted models: linear trends, autoregression, Langevin dynamics, unit-root tests."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import scipy.special
from array_api_compat import is_numpy_array

from . import (
    Array,
    combiner,
    full,
    host,
    like,
    namespace,
    one_blas_thread,
    param_suffix,
    search_left,
    shared,
    simple,
)
from .statistics import pairwise_sum, quantiles_of_sorted

_TINY = 1.0e-20  # scipy.stats.linregress's guard against r = ±1
_LINREGRESS = ("slope", "intercept", "rvalue", "pvalue", "stderr", "intercept_stderr")


def _t_pvalue(xp: Any, df: float, t: Array) -> Array:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom, SciPy's
    ``2 * stdtr(df, -|t|)`` (``scipy.stats.linregress``).

    NumPy arrays go to ``scipy.special.stdtr``. CuPy arrays stay on the device: CuPy's
    ``cupyx.scipy.special.stdtr`` where it has one, else the same value as a regularised
    incomplete beta, ``betainc(df / 2, 1 / 2, df / (df + t**2))``; without either, through the
    host (one value per series, so the copy is cheap).
    """
    if is_numpy_array(t):
        return 2.0 * scipy.special.stdtr(df, -xp.abs(t))
    try:
        from cupyx.scipy import special  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - another array library
        host = np.asarray(t.get() if hasattr(t, "get") else t)
        return xp.asarray(2.0 * scipy.special.stdtr(df, -np.abs(host)))
    if hasattr(special, "stdtr"):  # pragma: no cover - needs CuPy
        return 2.0 * special.stdtr(df, -xp.abs(t))
    return special.betainc(df / 2.0, 0.5, df / (df + t * t))  # pragma: no cover - needs CuPy


# --- linear regression against the sample index ------------------------------------------------


def _linregress(xp: Any, y: Array) -> dict[str, Array]:
    """``scipy.stats.linregress(range(n), row)`` for every row of ``y`` (n = y.shape[1]).

    The closed forms of SciPy, in its order of operations: ``np.cov(bias=1)`` moments (scaled by
    ``1/n``), r clipped to [-1, 1] and NaN for a constant row, p from Student's t with
    ``df = n - 2`` and SciPy's ``TINY`` guard, the two-point special case (p = 1 for equal
    values else 0, stderr 0), and all NaN for a single point (SciPy's too-small sample).
    """
    rows, n = y.shape
    nan = xp.full((rows,), math.nan, dtype=xp.float64)
    if n < 2:
        return {a: nan for a in _LINREGRESS}
    # np.cov(x, y, bias=1) as SciPy calls it: centre the stacked (x, y) pair and multiply it by
    # its transpose (a batched matmul of (2, n) by (n, 2) matches NumPy's dot bit for bit).
    pair = xp.stack([xp.broadcast_to(xp.arange(n, dtype=xp.float64), (rows, n)), y], axis=1)
    means = xp.mean(pair, axis=2)
    pair = pair - means[:, :, None]
    cov = xp.matmul(pair, xp.permute_dims(pair, (0, 2, 1))) * (1.0 / n)
    ssxm, ssxym, ssym = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    xmean, ymean = means[:, 0], means[:, 1]
    degenerate = (ssxm == 0.0) | (ssym == 0.0)
    safe = xp.where(degenerate, 1.0, ssxm * ssym)
    r = ssxym / xp.sqrt(safe)
    r = xp.clip(r, -1.0, 1.0)
    r = xp.where(degenerate, xp.where(ssxym == 0.0, nan, 0.0), r)
    slope = ssxym / ssxm
    intercept = ymean - slope * xmean
    if n == 2:
        pvalue = xp.astype(y[:, 0] == y[:, 1], xp.float64)
        stderr = xp.zeros((rows,), dtype=xp.float64)
        intercept_stderr = stderr
    else:
        df = float(n - 2)
        t = r * xp.sqrt(df / ((1.0 - r + _TINY) * (1.0 + r + _TINY)))
        pvalue = _t_pvalue(xp, df, t)
        stderr = xp.sqrt((1.0 - r**2) * ssym / ssxm / df)
        intercept_stderr = stderr * xp.sqrt(ssxm + xmean**2)
    values = (slope, intercept, r, pvalue, stderr, intercept_stderr)
    return dict(zip(_LINREGRESS, values, strict=True))


@combiner
def linear_trend(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Least-squares line through (0..n-1, x): ``scipy.stats.linregress``'s attributes."""
    xp = namespace(x)
    fit = _linregress(xp, x)
    return [(f'attr_"{p["attr"]}"', fit[p["attr"]]) for p in param]


def _aggregate_on_chunks(xp: Any, x: Array, f_agg: str, chunk_len: int) -> Array:
    """tsfresh's ``_aggregate_on_chunks``: ``f_agg`` (a NumPy array method: max, min, mean, sum,
    var or std with ddof 0) over consecutive chunks of ``chunk_len`` values, the last chunk
    possibly shorter."""
    rows, n = x.shape
    full = n // chunk_len
    parts = []
    if full:
        chunks = xp.reshape(x[:, : full * chunk_len], (rows, full, chunk_len))
        parts.append(getattr(xp, f_agg)(chunks, axis=2))
    if full * chunk_len < n:
        parts.append(getattr(xp, f_agg)(x[:, full * chunk_len :], axis=1)[:, None])
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)


#: ``f_agg`` values of agg_linear_trend computed natively: the NumPy array methods tsfresh
#: calls (``chunk.max()``, ...); tsfresh computes the calculator for any other.
_CHUNK_AGGREGATES = ("max", "min", "mean", "var", "std", "sum")


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _chunk_aggregates(
    x: np.ndarray, chunk_len: int, codes: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """``_aggregate_on_chunks`` for the aggregates ``codes`` (indexes into
    ``_CHUNK_AGGREGATES``) in one pass, (aggregate, rows, chunks), NumPy's floats to the bit:
    its pairwise sums, the variance as the mean of squared deviations from the mean."""
    rows, n = x.shape
    chunks = -(-n // chunk_len)
    out = np.empty((len(codes), rows, chunks))
    squares = np.empty(chunk_len)
    for r in range(rows):
        row = x[r]
        for c in range(chunks):
            lo = c * chunk_len
            hi = min(lo + chunk_len, n)
            size = hi - lo
            for k in range(len(codes)):
                code = codes[k]
                if code <= 1:  # max, min; NaN wins, as in NumPy
                    best = row[lo]
                    for t in range(lo + 1, hi):
                        value = row[t]
                        if math.isnan(best):
                            break
                        if math.isnan(value) or (value > best if code == 0 else value < best):
                            best = value
                    out[k, r, c] = best
                    continue
                total = pairwise_sum(row, lo, hi)
                if code == 5:
                    out[k, r, c] = total
                    continue
                mean = total / size
                if code == 2:
                    out[k, r, c] = mean
                    continue
                for t in range(size):
                    gap = row[lo + t] - mean
                    squares[t] = gap * gap
                variance = pairwise_sum(squares, 0, size) / size
                out[k, r, c] = variance if code == 3 else math.sqrt(variance)
    return out


@combiner(accepts=lambda p: p["f_agg"] in _CHUNK_AGGREGATES)
def agg_linear_trend(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """``linear_trend`` of the chunk aggregates (``_aggregate_on_chunks``); NaN where
    ``chunk_len`` is not shorter than the series. Each (f_agg, chunk_len) is fitted once."""
    xp = namespace(x)
    n = x.shape[1]
    nan = full(xp, x, math.nan)
    rows = x.shape[0]
    # the aggregates of one chunk_len share their number of chunks: one regression over all of
    # them, stacked (each row's fit is independent of the others)
    wanted: dict[int, list[str]] = {}
    for p in param:
        if p["chunk_len"] < n and p["f_agg"] not in wanted.setdefault(p["chunk_len"], []):
            wanted[p["chunk_len"]].append(p["f_agg"])
    fits: dict[tuple[str, int], dict[str, Array]] = {}
    for chunk_len, aggs in wanted.items():
        if is_numpy_array(x):
            codes = np.array([_CHUNK_AGGREGATES.index(f) for f in aggs])
            on_host = np.ascontiguousarray(x, dtype=np.float64)
            stacked = _chunk_aggregates(on_host, chunk_len, codes).reshape(len(aggs) * rows, -1)
        else:
            stacked = xp.concat([_aggregate_on_chunks(xp, x, f, chunk_len) for f in aggs])
        fit = _linregress(xp, stacked)
        for i, f_agg in enumerate(aggs):
            fits[f_agg, chunk_len] = {a: v[i * rows : (i + 1) * rows] for a, v in fit.items()}
    out = []
    for p in param:
        chunk_len, f_agg, attr = p["chunk_len"], p["f_agg"], p["attr"]
        suffix = f'attr_"{attr}"__chunk_len_{chunk_len}__f_agg_"{f_agg}"'
        out.append((suffix, nan if chunk_len >= n else fits[f_agg, chunk_len][attr]))
    return out


# --- ordinary least squares, statsmodels' way ---------------------------------------------------

_BLOCK = 1 << 20  # doubles per block of stacked design matrices (8 MiB; LAPACK copies it)


def _pinv_solve(xp: Any, design: Array, target: Array) -> Array:
    """statsmodels' OLS ``params`` (``method="pinv"``) for a stack of regressions.

    ``design`` is (batch, nobs, k) and ``target`` (batch, nobs): ``pinv_extended``'s SVD with
    singular values below ``1e-15 * max`` dropped, so rank-deficient designs give the same
    minimum-norm solution as statsmodels (NumPy's stacked SVD runs the same LAPACK call per
    matrix as statsmodels' 2-D one). V (S⁺ (Uᵀ y)) rather than statsmodels' (V S⁺ Uᵀ) y: the
    same up to rounding, without forming the pseudo-inverse.
    """
    u, s, vt = xp.linalg.svd(design, full_matrices=False)
    cutoff = 1e-15 * xp.max(s, axis=1, keepdims=True)
    inverse = xp.where(s > cutoff, 1.0 / xp.where(s > cutoff, s, 1.0), 0.0)
    rotated = xp.matmul(xp.permute_dims(u, (0, 2, 1)), target[:, :, None]) * inverse[:, :, None]
    return xp.matmul(xp.permute_dims(vt, (0, 2, 1)), rotated)[:, :, 0]


#: Where a QR fit agrees with statsmodels' pinv (SVD) one within rounding: each column's
#: diagonal at least this share of its norm (statsmodels' rank may drop below), the diagonal
#: within this ratio of its largest (its rank's relative cutoff), and the residual sum of
#: squares at least this share of the target's (a near-perfect fit leaves only rounding).
_QR_RELATIVE, _QR_RANK, _QR_RESIDUAL = 1e-6, 1e-9, 1e-10


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _qr_fit(
    work: np.ndarray, p: int, nobs: int, tvalue: int, r: np.ndarray, params: np.ndarray
) -> tuple[float, float, bool]:  # pragma: no cover - compiled
    """Least squares of ``work[p, :nobs]`` on the regressors ``work[:p, :nobs]`` (a row per
    design column) by Householder QR, in place; the coefficients into ``params[:p]``.

    Returns the residual sum of squares, ``(X'X)^-1[tvalue, tvalue]`` (NaN for a negative
    ``tvalue``), and whether the fit is far enough from rank deficiency and from a perfect fit
    to agree with statsmodels' pinv (SVD) fit within rounding (``_QR_RELATIVE``, ``_QR_RANK``,
    ``_QR_RESIDUAL``, as ``_select_lag_fast``'s QR). Where it is not, the caller refits the
    statsmodels way.
    """
    norms = np.empty(p + 1)
    for c in range(p + 1):
        total = 0.0
        for t in range(nobs):
            total += work[c, t] * work[c, t]
        norms[c] = math.sqrt(total)
    if nobs <= p:
        return math.nan, math.nan, False
    for j in range(p):
        v = work[j, j:nobs]
        total = 0.0
        for t in range(len(v)):
            total += v[t] * v[t]
        if total == 0.0:
            return math.nan, math.nan, False
        alpha = -math.sqrt(total) if v[0] >= 0 else math.sqrt(total)
        scale = 2.0 / (total - 2.0 * alpha * v[0] + alpha * alpha)  # 2 / |v|², v = x - alpha e1
        v[0] -= alpha
        for c in range(j + 1, p + 1):
            other = work[c, j:nobs]
            dot = 0.0
            for t in range(len(v)):
                dot += v[t] * other[t]
            factor = dot * scale
            for t in range(len(v)):
                other[t] -= factor * v[t]
            r[j, c] = other[0]
        r[j, j] = alpha
    largest, smallest, relative = 0.0, math.inf, math.inf
    for j in range(p):
        size = abs(r[j, j])
        largest, smallest = max(largest, size), min(smallest, size)
        relative = min(relative, size / norms[j])
    residual = 0.0
    for t in range(p, nobs):
        residual += work[p, t] * work[p, t]
    trusted = (
        relative >= _QR_RELATIVE
        and smallest > _QR_RANK * largest
        and residual > _QR_RESIDUAL * norms[p] ** 2
    )
    for j in range(p - 1, -1, -1):
        total = r[j, p]
        for c in range(j + 1, p):
            total -= r[j, c] * params[c]
        params[j] = total / r[j, j]
    if tvalue < 0:
        return residual, math.nan, trusted
    w = np.zeros(p)  # row tvalue of R^-1: R' w = e_tvalue
    inverse = 0.0
    for j in range(tvalue, p):
        value = 1.0 if j == tvalue else 0.0
        for c in range(tvalue, j):
            value -= r[c, j] * w[c]
        w[j] = value / r[j, j]
        inverse += w[j] * w[j]
    return residual, inverse, trusted


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _autoreg_qr(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """``_autoreg_params`` by ``_qr_fit`` per row, and the rows it trusts: about 5x faster than
    the stacked SVD for celle5's days."""
    rows, n = x.shape
    nobs = n - k
    params = np.full((rows, k + 1), np.nan)
    trusted = np.zeros(rows, dtype=np.bool_)
    work = np.empty((k + 2, nobs))
    r = np.zeros((k + 1, k + 2))
    for row in range(rows):
        # element by element: an array assignment compiles numba's shape-error messages
        for t in range(nobs):
            work[0, t] = 1.0
            for lag in range(1, k + 2):  # lags 1..k, then the target (lag 0) last
                work[lag, t] = x[row, t + k - (lag if lag <= k else 0)]
        trusted[row] = _qr_fit(work, k + 1, nobs, -1, r, params[row])[2]
    return params, trusted


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _adf_qr(
    x: np.ndarray, xdiff: np.ndarray, lags: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """adfuller's test statistic per row by ``_qr_fit``: the t value of the level in the
    regression of the differences on it, on ``lags[row]`` lagged differences and a constant
    (left out where a regressor is already a non-zero constant, as ``add_trend(...,
    has_constant="skip")``), and the rows it trusts; rows with a negative lag are skipped."""
    rows, n = x.shape
    stat = np.full(rows, np.nan)
    trusted = np.zeros(rows, dtype=np.bool_)
    most = max(lags.max(), 0)
    work = np.empty((most + 3, n))
    r = np.zeros((most + 2, most + 3))
    params = np.empty(most + 2)
    for row in range(rows):
        lag = lags[row]
        if lag < 0:
            continue
        nobs = n - 1 - lag
        for t in range(nobs):  # element by element, as in _autoreg_qr
            work[0, t] = x[row, lag + t]
            for j in range(1, lag + 1):
                work[j, t] = xdiff[row, lag - j + t]
        constant = True
        for c in range(lag + 1):
            same = work[c, 0] != 0.0
            for t in range(1, nobs):
                same = same and work[c, t] == work[c, 0]
            constant = constant and not same
        p = lag + 1 + constant
        for t in range(nobs):
            if constant:
                work[lag + 1, t] = 1.0
            work[p, t] = xdiff[row, lag + t]
        ssr, inverse, trusted[row] = _qr_fit(work, p, nobs, 0, r, params)
        stat[row] = params[0] / math.sqrt(inverse * ssr / (nobs - p))
    return stat, trusted


def _lag_design(xp: Any, x: Array, k: int) -> tuple[Array, Array]:
    """AutoReg's regressors (constant, x[t-1], ..., x[t-k]) and targets x[t] for t >= k.

    The design is a transposed view of (series, regressor, t): stacking whole columns is
    several times cheaper than interleaving them, and the SVD copies each matrix into
    column-major order anyway, so it sees the same values.
    """
    rows, n = x.shape
    columns = [xp.ones((rows, n - k), dtype=xp.float64)]
    columns += [x[:, k - lag : n - lag] for lag in range(1, k + 1)]
    return xp.permute_dims(xp.stack(columns, axis=1), (0, 2, 1)), x[:, k:]


def _autoreg_params(xp: Any, x: Array, k: int) -> Array:
    """``AutoReg(x, lags=k, trend="c").fit().params`` per row, (rows, k + 1): on the host by
    QR (``_autoreg_qr``), refitting the rows it does not trust the statsmodels way."""
    if not is_numpy_array(x):
        return _autoreg_pinv(xp, x, k)
    params, trusted = _autoreg_qr(np.ascontiguousarray(x, dtype=np.float64), k)
    # a constant series c: every observation is v = (1, c, ..., c) with target c, a rank-one
    # design whose minimum-norm (pinv) solution is c v / |v|^2
    level = x[:, 0]
    norm = 1.0 + k * level * level
    flat = ~trusted & (np.max(x, axis=1) == np.min(x, axis=1)) & np.isfinite(norm)
    params[flat, 0] = level[flat] / norm[flat]
    params[flat, 1:] = (level[flat] * level[flat] / norm[flat])[:, None]
    if not (trusted | flat).all():
        again = np.flatnonzero(~(trusted | flat))
        params[again] = _autoreg_pinv(xp, x[again], k)
    return params


def _autoreg_pinv(xp: Any, x: Array, k: int) -> Array:
    """``_autoreg_params`` as statsmodels computes it (``_pinv_solve``), in blocks of rows to
    bound the memory of the stacked lag matrices."""
    rows, n = x.shape
    if rows == 0:
        return xp.zeros((0, k + 1), dtype=xp.float64)
    block = max(1, _BLOCK // ((n - k) * (k + 1)))
    parts = []
    with one_blas_thread():
        for start in range(0, rows, block):
            design, target = _lag_design(xp, x[start : min(start + block, rows), :], k)
            parts.append(_pinv_solve(xp, design, target))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


@combiner
def ar_coefficient(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Coefficients of an AR(k) fit with constant (statsmodels ``AutoReg``, OLS via pinv).

    tsfresh's quirks: for fewer than 2k + 1 values AutoReg raises and the k coefficients 0..k-1
    are NaN while coefficient k is 0 (an IndexError on the k-long NaN list); coeff > k is NaN.
    """
    xp = namespace(x)
    n = x.shape[1]
    nan = full(xp, x, math.nan)
    fits: dict[int, Array | None] = {}
    out = []
    for p in param:
        k, coeff = p["k"], p["coeff"]
        if k not in fits:
            fits[k] = _autoreg_params(xp, x, k) if n >= 2 * k + 1 else None
        params = fits[k]
        if coeff > k:
            values = nan
        elif params is None:
            values = nan if coeff < k else full(xp, x, 0.0)
        else:
            values = params[:, coeff]
        out.append((f"coeff_{coeff}__k_{k}", values))
    return out


# --- Langevin model (Friedrich et al.): quantile-binned drift, polynomial fit ------------------


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _friedrich_design(
    x: np.ndarray, edges: np.ndarray, categories: np.ndarray, m: int
) -> tuple:  # pragma: no cover - numba
    """The least-squares problem of tsfresh's ``_estimate_friedrich_coefficients`` per row of
    ``x`` (numba: pandas' qcut and groupby are sequential per series).

    ``edges`` are ``pd.qcut``'s bin edges (quantiles of x[:-1]) and ``categories`` the category
    of each bin (see ``_qcut_categories``). Reproduced: invalid when edges repeat (qcut's
    ValueError); right-closed bins with the lowest edge included; the mean value and change per
    non-empty category as pandas' groupby computes them (``np.add.reduceat`` when the category
    codes are sorted, else Kahan sums); ``np.polyfit``'s Vandermonde matrix with its columns
    scaled to unit norm. Returns (scaled design padded with zero rows, targets, column scales,
    number of points, valid).
    """
    rows, n = x.shape
    nbins = edges.shape[1] - 1
    order = m + 1
    lhs = np.zeros((rows, nbins, order))
    rhs = np.zeros((rows, nbins))
    scales = np.ones((rows, order))
    points = np.zeros(rows, dtype=np.int64)
    valid = np.zeros(rows, dtype=np.bool_)
    signal = np.empty(n - 1)
    delta = np.empty(n - 1)
    codes = np.empty(n - 1, dtype=np.int64)
    sums = np.empty((2, nbins))
    comp = np.empty((2, nbins))
    counts = np.empty(nbins, dtype=np.int64)
    for row in range(rows):
        e = edges[row]
        duplicate = False
        if nbins + 1 != 2:
            for i in range(nbins + 1):
                for j in range(i + 1, nbins + 1):
                    if e[i] == e[j]:
                        duplicate = True
        if duplicate:
            continue
        for t in range(n - 1):
            signal[t] = x[row, t]
            delta[t] = x[row, t + 1] - x[row, t]
        # searchsorted(edges, v, side="left"), with v == edges[0] put in the first bin
        monotonic = True
        for t in range(n - 1):
            v = signal[t]
            lo = search_left(e, nbins + 1, v)
            if v == e[0]:
                lo = 1
            code = categories[row, lo - 1] if 0 < lo <= nbins else -1
            codes[t] = code
            if t > 0 and code < codes[t - 1]:
                monotonic = False
        counts[:] = 0
        sums[:, :] = 0.0
        comp[:, :] = 0.0
        if monotonic:
            # np.add.reduceat over the runs: the first value plus a pairwise sum of the rest
            start = 0
            while start < n - 1:
                stop = start + 1
                while stop < n - 1 and codes[stop] == codes[start]:
                    stop += 1
                code = codes[start]
                if code >= 0:
                    counts[code] = stop - start
                    sums[0, code] = signal[start] + pairwise_sum(signal, start + 1, stop)
                    sums[1, code] = delta[start] + pairwise_sum(delta, start + 1, stop)
                start = stop
        else:
            for t in range(n - 1):
                code = codes[t]
                if code < 0:
                    continue
                counts[code] += 1
                for k in range(2):
                    val = signal[t] if k == 0 else delta[t]
                    y = val - comp[k, code]
                    s = sums[k, code] + y
                    comp[k, code] = s - sums[k, code] - y
                    if comp[k, code] != comp[k, code]:
                        comp[k, code] = 0.0
                    sums[k, code] = s
        # np.polyfit(means of x, means of change, deg=m): Vandermonde, columns scaled
        i = 0
        for b in range(nbins):
            if counts[b] > 0:
                xs = sums[0, b] / counts[b]
                rhs[row, i] = sums[1, b] / counts[b]
                lhs[row, i, order - 1] = 1.0
                if order > 1:
                    lhs[row, i, order - 2] = xs
                for j in range(order - 3, -1, -1):
                    lhs[row, i, j] = lhs[row, i, j + 1] * xs
                i += 1
        for j in range(order):
            total = 0.0
            for k in range(i):
                total += lhs[row, k, j] * lhs[row, k, j]
            scales[row, j] = np.sqrt(total)
        for k in range(i):
            for j in range(order):
                lhs[row, k, j] /= scales[row, j]
        points[row] = i
        valid[row] = True
    return lhs, rhs, scales, points, valid


def _power_of_ten(n: int) -> float:
    """NumPy's ``power_of_ten`` (the factor ``np.around`` scales by): 1e9 times 10 repeatedly."""
    if n < 9:
        return float(10**n)
    value = 1e9
    for _ in range(n - 9):
        value *= 10.0
    return value


_POWERS_OF_TEN = np.array([_power_of_ten(n) for n in range(340)])


def _round_frac(values: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """pandas' ``_round_frac`` (qcut's label rounding) elementwise: ``np.around`` to
    ``precision`` decimals, or to as many significant digits below 1 (NaN where NumPy's scale
    factor overflows, as for subnormal values)."""
    with np.errstate(all="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
        digits = np.where(np.trunc(values) == 0, precision - 1 - magnitude, precision)
        digits = np.clip(np.where(np.isfinite(digits), digits, 0), 0, len(_POWERS_OF_TEN) - 1)
        factor = _POWERS_OF_TEN[digits.astype(np.int64)]
        rounded = np.rint(values * factor) / factor
    return np.where(~np.isfinite(values) | (values == 0), values, rounded)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Distinct values per row, NaNs counted once (``pd.unique``)."""
    ordered = np.sort(values, axis=1)
    changes = (ordered[:, 1:] != ordered[:, :-1]) & ~np.isnan(ordered[:, 1:])
    return (
        1
        + np.count_nonzero(changes, axis=1)
        + (np.isnan(ordered).any(axis=1) & ~np.isnan(ordered[:, 0]))
    )


def _qcut_categories(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The categories of ``pd.qcut``'s interval labels per bin, and where labelling succeeds.

    qcut labels bins with their edges rounded to the smallest precision from 3 to 19 that keeps
    them distinct (else 3), the first edge lowered by 10**-precision. A NaN label (from tiny
    values) makes Categorical raise (tsfresh: NaN); equal labels share one category, so their
    bins pool in the groupby.
    """
    rows, size = edges.shape
    chosen = np.full(rows, -1)
    # rows without a precision yet (most settle at the first); rows whose edges repeat never
    # do (equal edges round alike), so they get the fallback 3 without the search
    pending = np.flatnonzero(_distinct(edges) == size)
    for precision in range(3, 20):
        if not len(pending):
            break
        rounded = _round_frac(edges[pending], np.full((len(pending), 1), precision))
        unique = _distinct(rounded) == size
        chosen[pending[unique]] = precision
        pending = pending[~unique]
    chosen = np.where(chosen < 0, 3, chosen)
    breaks = _round_frac(edges, chosen[:, None])
    labelled = ~np.isnan(breaks).any(axis=1)
    breaks[:, 0] = breaks[:, 0] - np.array([10.0**-p for p in range(20)])[chosen]
    same = (breaks[:, 1:-1] == breaks[:, :-2]) & (breaks[:, 2:] == breaks[:, 1:-1])
    categories = np.concatenate(
        [np.zeros((rows, 1), dtype=np.int64), np.cumsum(~same, axis=1)], axis=1
    )
    return np.ascontiguousarray(categories), labelled


def _friedrich(x: Array, m: int, r: int) -> np.ndarray:
    """(rows, m + 1) Friedrich coefficients on the host (NaN where tsfresh gives NaN).

    The fit is ``np.polyfit``'s ``lstsq(lhs, rhs, rcond=points * eps)``, batched over the
    series with the same number of points (non-empty bins).
    """
    on_host = np.ascontiguousarray(host(x), dtype=np.float64)
    rows, n = on_host.shape
    out = np.full((rows, m + 1), np.nan)
    if n < 2:  # qcut of no values: all-NaN edges, "not unique"
        return out
    quantiles = np.linspace(0, 1, r + 1)
    # pd.qcut nudges quantiles that are not exact in binary up, then Series.quantile runs
    # np.quantile(values_2d, quantiles, axis=1) (linear interpolation)
    np.putmask(quantiles, r * quantiles != np.arange(r + 1), np.nextafter(quantiles, 1))
    edges = np.ascontiguousarray(quantiles_of_sorted(np.sort(on_host[:, :-1], axis=1), quantiles))
    categories, labelled = _qcut_categories(edges)
    lhs, rhs, scales, points, valid = _friedrich_design(on_host, edges, categories, m)
    valid &= labelled
    with one_blas_thread():
        return _polyfit(out, lhs, rhs, scales, points, valid)


def _shared_friedrich(x: Array, m: int, r: int) -> np.ndarray:
    """``_friedrich``, once per batch for friedrich_coefficients and max_langevin_fixed_point."""
    return shared(x, ("friedrich", m, r), lambda: _friedrich(x, m, r))


def _polyfit(
    out: np.ndarray,
    lhs: np.ndarray,
    rhs: np.ndarray,
    scales: np.ndarray,
    points: np.ndarray,
    valid: np.ndarray,
) -> np.ndarray:
    """Fill ``out`` with ``np.polyfit``'s coefficients of the valid rows of ``_friedrich_design``."""
    if not valid.any():
        return out
    # NaN or infinite entries (e.g. a zero column scaled by 0) make lstsq raise: NaN there
    valid &= np.isfinite(lhs).all(axis=(1, 2)) & np.isfinite(rhs).all(axis=1)
    for count in np.unique(points[valid]):
        members = np.flatnonzero(valid & (points == count))
        rcond = count * np.finfo(np.float64).eps
        coef = _lstsq(lhs[members, :count, :], rhs[members, :count], rcond)
        out[members] = coef / scales[members]
    return out


def _lstsq(a: np.ndarray, b: np.ndarray, rcond: float) -> np.ndarray:
    """``np.linalg.lstsq(a[i], b[i], rcond)[0]`` for a stack of problems (LAPACK ``gelsd``).

    NumPy's ``lstsq`` only takes one matrix, but the gufunc behind it (NumPy 2) broadcasts over
    stacks and runs the same LAPACK call per matrix, so the results are NumPy's to the bit (which
    matters for the roots of nearly-zero leading coefficients in ``max_langevin_fixed_point``);
    failures come back as NaN, as tsfresh's caught LinAlgError. Older NumPy: one call per
    series.
    """
    try:
        from numpy.linalg import _umath_linalg

        with np.errstate(all="ignore"):
            x = _umath_linalg.lstsq(a, b[:, :, None], rcond, signature="ddd->ddid")[0]
        return x[:, :, 0]
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - NumPy 1.x layout
        return np.stack([_lstsq_one(ai, bi, rcond) for ai, bi in zip(a, b, strict=True)])


def _lstsq_one(a: np.ndarray, b: np.ndarray, rcond: float) -> np.ndarray:  # pragma: no cover
    """One ``np.linalg.lstsq``, NaN where it raises (tsfresh catches the LinAlgError)."""
    try:
        return np.linalg.lstsq(a, b, rcond)[0]
    except np.linalg.LinAlgError:
        return np.full(a.shape[1], np.nan)


@combiner
def friedrich_coefficients(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Coefficients of the polynomial drift h(x) of a Langevin model, fitted to the mean change
    per quantile bin of the value (``_estimate_friedrich_coefficients``; numba per series).
    NaN where the r quantile edges are not distinct and for a coefficient index above m."""
    xp = namespace(x)
    fits: dict[tuple[int, int], np.ndarray] = {}
    out = []
    for p in param:
        m, r, coeff = p["m"], p["r"], p["coeff"]
        if (m, r) not in fits:
            fits[(m, r)] = _shared_friedrich(x, m, r)
        coefficients = fits[(m, r)]
        values = coefficients[:, coeff] if coeff <= m else np.full(len(coefficients), np.nan)
        out.append((f"coeff_{coeff}__m_{m}__r_{r}", like(xp, np.ascontiguousarray(values), x)))
    return out


def _max_real_root(coefficients: np.ndarray) -> np.ndarray:
    """``np.max(np.real(np.roots(p)))`` per row of ``coefficients`` (highest power first), NaN
    where tsfresh catches an error: NaN or infinite coefficients (eigvals' LinAlgError), and no
    roots at all (all zero, or a lone non-zero constant: the max of nothing)."""
    rows, size = coefficients.shape
    out = np.full(rows, np.nan)
    nonzero = coefficients != 0
    usable = np.isfinite(coefficients).all(axis=1) & nonzero.any(axis=1)
    first = np.argmax(nonzero, axis=1)
    last = size - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    # np.roots strips leading and trailing zeros; each trailing zero is a root at 0
    for lo, hi in {(int(a), int(b)) for a, b in zip(first[usable], last[usable], strict=True)}:
        members = np.flatnonzero(usable & (first == lo) & (last == hi))
        degree = hi - lo
        if degree == 0:
            best = np.full(len(members), -np.inf)
        else:
            p = coefficients[members, lo : hi + 1]
            companion = np.zeros((len(members), degree, degree))
            companion[:, 0, :] = -p[:, 1:] / p[:, :1]
            below = np.arange(1, degree)
            companion[:, below, below - 1] = 1.0
            best = np.max(np.real(np.linalg.eigvals(companion)), axis=1)
        if hi < size - 1:
            best = np.maximum(best, 0.0)
        out[members] = np.where(np.isneginf(best), np.nan, best)
    return out


@simple
def max_langevin_fixed_point(x: Array, r: int, m: int) -> Array:
    """Largest real part of the roots of the fitted Langevin drift polynomial (the Friedrich
    coefficients of degree m over r quantile bins), as ``np.roots`` computes them; NaN where
    tsfresh catches the error."""
    xp = namespace(x)
    return like(xp, _max_real_root(_shared_friedrich(x, m, r)), x)


@combiner
def query_similarity_count(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """How many subsequences lie within ``threshold`` (z-normalised, or plain with
    ``normalize=False``, Euclidean distance) of ``query``; NaN without a query of 3+ values
    (tsfresh's default settings pass ``query=None``, so always NaN there).

    A given query is matched with ``stumpy.core.mass`` series by series, exactly as tsfresh
    does (not vectorised: only for settings that pass a query).
    """
    xp = namespace(x)
    out = []
    for p in param:
        query = np.asarray(p.get("query"), dtype=float)
        values = np.full(x.shape[0], np.nan)
        if query.size >= 3:
            import stumpy

            mass = stumpy.core.mass if p.get("normalize", True) else stumpy.core.mass_absolute
            threshold = p.get("threshold", 0.0)
            for i, row in enumerate(host(x)):
                values[i] = np.sum(mass(query, np.asarray(row, dtype=float)) <= threshold)
        out.append((param_suffix(p), like(xp, values, x)))
    return out


# --- augmented Dickey-Fuller test (statsmodels adfuller, regression="c") ------------------------


def _ols_fits(
    design: np.ndarray, target: np.ndarray, llf: bool, tvalue: int | None
) -> dict[str, Any]:
    """What statsmodels' ``OLS(target, design).fit()`` (``method="pinv"``) yields for a stack of
    regressions on the host, in its order of operations: ``pinv_extended``'s SVD (singular values
    below 1e-15 * max dropped), rank as ``matrix_rank`` of the singular values, the profile
    log-likelihood from ``sum(resid**2)`` (if ``llf``), scale ``dot(resid, resid) / (nobs -
    rank)``, and the t value ``params / sqrt(diag(pinv @ pinv.T) * scale)`` of the parameter
    ``tvalue`` (unless None): only what the caller uses is computed."""
    nobs = design.shape[1]
    u, s, vt = np.linalg.svd(design, full_matrices=False)
    cutoff = 1e-15 * np.max(s, axis=1, keepdims=True)
    inverse = np.where(s > cutoff, 1.0 / np.where(s > cutoff, s, 1.0), 0.0)
    pinv = np.matmul(np.swapaxes(vt, 1, 2), inverse[:, :, None] * np.swapaxes(u, 1, 2))
    params = np.matmul(pinv, target[:, :, None])[:, :, 0]
    rank = np.count_nonzero(
        s > np.max(s, axis=1, keepdims=True) * s.shape[1] * np.finfo(np.float64).eps, axis=1
    )
    resid = target - np.matmul(design, params[:, :, None])[:, :, 0]
    out: dict[str, Any] = {"rank": rank.astype(np.float64), "nobs": nobs}
    if llf:
        ssr = np.sum(resid**2, axis=1)
        half = nobs / 2.0
        out["llf"] = -half * np.log(2 * np.pi) - half * np.log(ssr / nobs) - half
    if tvalue is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.matmul(resid[:, None, :], resid[:, :, None])[:, 0, 0] / (nobs - rank)
            row = pinv[:, tvalue, :]  # one row of diag(pinv @ pinv.T), summed as the whole
            out["tvalue"] = params[:, tvalue] / np.sqrt(np.sum(row * row, axis=1) * scale)
    return out


def _ols_blocks(
    columns: list[np.ndarray], target: np.ndarray, llf: bool, tvalue: int | None
) -> dict[str, Any]:
    """``_ols_fits`` of the design stacked from ``columns`` (each (rows, nobs)), in row blocks."""
    rows, nobs = target.shape
    block = max(1, _BLOCK // (nobs * len(columns)))
    parts = []
    for start in range(0, rows, block):
        stop = start + block
        design = np.stack([c[start:stop] for c in columns], axis=2)
        parts.append(_ols_fits(design, target[start:stop], llf, tvalue))
    if len(parts) == 1:
        return parts[0]
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key != "nobs"}
    merged["nobs"] = nobs
    return merged


def _changes(v: np.ndarray) -> np.ndarray:
    """c[:, i] = number of j < i with v[:, j + 1] != v[:, j] (NaN counts as a change), so
    v[:, a:b] (b - a >= 2) is constant where c[:, b - 1] == c[:, a]."""
    counts = np.cumsum(v[:, 1:] != v[:, :-1], axis=1)
    return np.concatenate([np.zeros((v.shape[0], 1), dtype=counts.dtype), counts], axis=1)


def _has_constant_lags(
    x: np.ndarray, xdiff: np.ndarray, x_changes: np.ndarray, d_changes: np.ndarray, lags: int
) -> np.ndarray:
    """Rows where ``add_trend(..., has_constant="skip")`` finds a non-zero constant column among
    ``_adf_lag_columns(x, xdiff, lags)``'s regressors (it then adds no constant), from the
    prefix counts of changes of ``x`` and ``xdiff`` (``_changes``): O(1) per column."""
    n = x.shape[1]
    m = xdiff.shape[1]
    # the level x[:, lags : n - 1], then xdiff[:, lags - j : m - j] for j = 1..lags
    found = (x_changes[:, n - 2] == x_changes[:, lags]) & (x[:, lags] != 0)
    for j in range(1, lags + 1):
        a, b = lags - j, m - j
        found |= (d_changes[:, b - 1] == d_changes[:, a]) & (xdiff[:, a] != 0)
    return found


def _adf_lag_columns(x: np.ndarray, xdiff: np.ndarray, lags: int) -> tuple[list, np.ndarray]:
    """adfuller's regressors without trend: the lagged level and ``lags`` lagged differences
    (``lagmat(xdiff, lags, trim="both", original="in")`` with column 0 replaced by the level)
    and the target differences."""
    m = xdiff.shape[1]
    columns = [x[:, lags:-1]] + [xdiff[:, lags - j : m - j] for j in range(1, lags + 1)]
    return columns, xdiff[:, lags:]


def _lag_scores(method: str, llf: Any, rank: Any, nobs: int, last_t: Any) -> Any:
    """adfuller's lag-selection score: AIC, BIC or |t| of the last lag (for "t-stat")."""
    if method == "aic":
        return -2 * llf + 2 * rank
    if method == "bic":
        return -2 * llf + np.log(nobs) * rank
    return np.abs(last_t)


def _pick_lag(method: str, table: np.ndarray, maxlag: int) -> np.ndarray:
    """The lag adfuller's ``_autolag`` picks from the scores of lags 0..maxlag (columns)."""
    if method == "t-stat":  # the highest lag whose last t value is significant, else 0
        significant = table >= _T_STOP
        highest = maxlag - np.argmax(significant[:, ::-1], axis=1)
        return np.where(significant.any(axis=1), highest, 0)
    return np.argmin(table, axis=1)  # smallest criterion, ties to the shorter lag


_T_STOP = 1.6448536269514722  # statsmodels' norm.ppf(0.95)


def _select_lag_exact(rhs: list, target: np.ndarray, method: str, maxlag: int) -> np.ndarray:
    """adfuller's ``_autolag``: a statsmodels-identical OLS fit per candidate lag."""
    start = len(rhs) - maxlag
    scores = []
    for lag in range(start, start + maxlag + 1):
        t_stat = method == "t-stat"
        fit = _ols_blocks(rhs[:lag], target, llf=not t_stat, tvalue=-1 if t_stat else None)
        scores.append(
            _lag_scores(method, fit.get("llf"), fit["rank"], fit["nobs"], fit.get("tvalue"))
        )
    return _pick_lag(method, np.stack(scores, axis=1), maxlag)


def _select_lag_fast(
    rhs: list, target: np.ndarray, method: str, maxlag: int, gram: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``_autolag``'s choice from one triangular factor per series, and where that choice is
    doubtful.

    The candidate designs are nested (the first ``lag`` columns of one design), so the R of
    [design | target] gives every candidate's residual sum of squares (the tail sums of the
    squared rotated target) and last t value. R comes from a QR of the stacked design, or, with
    ``gram`` (its cross products, from ``_adf_gram``), from a Cholesky factorisation of their
    correlations: O(k²) per series after the O(n k) products instead of O(n k²), at the cost of
    squaring the design's condition, so its doubt is wider. Doubtful, and refitted the
    statsmodels way: nearly collinear or badly scaled designs (where its rank may drop), (nearly)
    perfect fits, and scores within reach of their rounding of a tie or of the t threshold.
    """
    rows, nobs = target.shape
    k = len(rhs)
    start = k - maxlag
    if nobs <= k:  # the full design fits exactly: no residual to rank the lags by
        return np.zeros(rows, dtype=np.int64), np.ones(rows, dtype=bool)
    failed = np.zeros(rows, dtype=bool)
    if gram is not None:
        r, failed = _cholesky_factor(gram)
    else:
        r = _qr_factor(rhs, target)
    diagonal = np.abs(np.diagonal(r, axis1=1, axis2=2))[:, :k]
    rotated = r[:, :k, k]
    residual = r[:, k, k] ** 2
    # ssr of the first L columns: the full residual plus the rotated target beyond column L
    tails = np.cumsum((rotated**2)[:, ::-1], axis=1)[:, ::-1]
    lags = np.arange(start, k + 1)
    ssr = residual[:, None] + np.concatenate([tails[:, start:], np.zeros((rows, 1))], axis=1)
    half = nobs / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        llf = -half * np.log(2 * np.pi) - half * np.log(ssr / nobs) - half
        last_t = rotated[:, start - 1 : k] / np.sqrt(ssr / (nobs - lags))
        table = _lag_scores(method, llf, lags.astype(np.float64), nobs, last_t)
        scale = np.sqrt(np.sum(r[:, : k + 1, :] ** 2, axis=1))  # column norms of the design
        relative = diagonal / np.where(scale[:, :k] > 0, scale[:, :k], 1.0)
        squares = np.sum(target * target, axis=1)
        # Cholesky's relative rounding of the residual sums: the design's condition squared,
        # over the share of the target left unexplained (with a wide safety factor)
        rounding = (
            np.zeros(rows)
            if gram is None
            else 1e-12 / relative.min(axis=1) ** 2 * squares / ssr.min(axis=1)
        )
    doubtful = failed | ~np.isfinite(table).all(axis=1)
    doubtful |= relative.min(axis=1) < (_QR_RELATIVE if gram is None else 1e-4)
    # statsmodels' rank counts singular values of the unscaled design above max * k * eps
    doubtful |= diagonal.min(axis=1) <= _QR_RANK * diagonal.max(axis=1)
    doubtful |= ssr.min(axis=1) <= (_QR_RESIDUAL if gram is None else 1e-6) * squares
    with np.errstate(invalid="ignore"):
        if method == "t-stat":
            near = np.abs(table - _T_STOP) <= (1e-8 + rounding * nobs)[:, None] * _T_STOP
            doubtful |= near.any(axis=1)
        else:
            ordered = np.sort(table, axis=1)
            gap = ordered[:, 1] - ordered[:, 0] if table.shape[1] > 1 else np.full(rows, np.inf)
            margin = 1e-8 * (1.0 + np.abs(ordered[:, 0])) + rounding * nobs
            doubtful |= ~(gap > margin)
    return _pick_lag(method, np.where(np.isfinite(table), table, 0.0), maxlag), doubtful


def _qr_factor(rhs: list, target: np.ndarray) -> np.ndarray:
    """R of the QR of each series' [design | target] (columns scaled to unit norm for the
    factorisation, then scaled back), in row blocks."""
    rows, nobs = target.shape
    k = len(rhs)
    block = max(1, _BLOCK // (nobs * (k + 1)))
    factors = []
    for first in range(0, rows, block):
        stacked = np.stack([c[first : first + block] for c in (*rhs, target)], axis=2)
        norms = np.sqrt(np.sum(stacked * stacked, axis=1, keepdims=True))
        factors.append(np.linalg.qr(stacked / np.where(norms > 0, norms, 1.0), mode="r"))
        factors[-1] *= norms  # undo the column scaling of R
    return np.concatenate(factors) if len(factors) > 1 else factors[0]


def _cholesky_factor(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R (upper, R'R = gram) from the Cholesky factor of the correlations, and the series
    where it failed (a zero column, or not positive definite in floating point)."""
    norms = np.sqrt(np.diagonal(gram, axis1=1, axis2=2))
    failed = (norms == 0).any(axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    correlation = gram / safe[:, :, None] / safe[:, None, :]
    correlation[failed] = np.eye(gram.shape[1])
    try:
        lower = np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:  # one series spoils the stack: factor them one by one
        lower = np.zeros_like(correlation)
        for i, matrix in enumerate(correlation):
            try:
                lower[i] = np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                failed[i] = True
                lower[i] = np.eye(len(matrix))
    return np.swapaxes(lower, 1, 2) * safe[:, None, :], failed


@numba.njit(cache=True, nogil=True)
def _adf_gram(x: np.ndarray, xdiff: np.ndarray, lags: int) -> np.ndarray:  # pragma: no cover
    """Cross products of adfuller's autolag regression with a constant: the columns
    [1, level, xdiff lagged 1..lags, target] (``_adf_lag_columns``), per series, in O(n lags).

    The level is shifted by the series' mean first (with the constant among the regressors
    that changes no fit, and keeps the products away from cancellation); the products of two
    lagged differences are windows of one lagged product's prefix sums.
    """
    rows, n = x.shape
    m = n - 1
    nobs = m - lags
    size = lags + 3
    gram = np.empty((rows, size, size))
    prefix = np.empty(m + 1)
    column = np.empty(lags + 1, dtype=np.int64)  # lag 0 (the target), then lags 1..lags
    column[0] = size - 1
    for j in range(1, lags + 1):
        column[j] = j + 1
    for r in range(rows):
        d = xdiff[r]
        shift = x[r].mean()
        level_sum = 0.0
        level_squares = 0.0
        for s in range(lags, m):
            v = x[r, s] - shift
            level_sum += v
            level_squares += v * v
        gram[r, 0, 0] = nobs
        gram[r, 0, 1] = gram[r, 1, 0] = level_sum
        gram[r, 1, 1] = level_squares
        for h in range(lags + 1):  # lags j >= l = j - h: the sum over s of d[s] d[s + h]
            prefix[0] = 0.0
            for u in range(m - h):
                prefix[u + 1] = prefix[u] + d[u] * d[u + h]
            for j in range(h, lags + 1):
                a, b = column[j], column[j - h]
                gram[r, a, b] = gram[r, b, a] = prefix[m - j] - prefix[lags - j]
        for j in range(lags + 1):  # with the constant and the level
            total = 0.0
            cross = 0.0
            for t in range(nobs):
                v = d[lags - j + t]
                total += v
                cross += (x[r, lags + t] - shift) * v
            gram[r, 0, column[j]] = gram[r, column[j], 0] = total
            gram[r, 1, column[j]] = gram[r, column[j], 1] = cross
    return gram


# MacKinnon (1994) p-value approximation for the ADF test with a constant, N = 1, as
# statsmodels.tsa.adfvalues tabulates it (same scalings, so the same floats); written out here
# because importing statsmodels costs each worker about a second.
_MACKINNON_MAX, _MACKINNON_MIN, _MACKINNON_STAR = 2.74, -18.83, -1.61
_MACKINNON_SMALL = (np.array([2.1659, 1.4412, 3.8269]) * np.array([1, 1, 1e-2]))[::-1]
_MACKINNON_LARGE = (np.array([1.7339, 9.3202, -1.2745, -1.0368]) * np.array([1, 1e-1, 1e-1, 1e-2]))[
    ::-1
]


def _adfuller(x: np.ndarray, autolag: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(teststat, pvalue, usedlag) of ``adfuller(row, autolag=autolag)`` for every row."""
    rows, n = x.shape
    stat, used = np.full(rows, np.nan), np.full(rows, np.nan)
    method = autolag.lower() if autolag is not None else None
    maxlag = int(np.ceil(12.0 * np.power(n / 100.0, 1 / 4.0)))
    maxlag = min(n // 2 - 2, maxlag)
    usable = np.max(x, axis=1) != np.min(x, axis=1)  # adfuller raises for a constant series
    if maxlag < 0 or method not in (None, "aic", "bic", "t-stat") or not usable.any():
        return stat, np.full(rows, np.nan), used
    xdiff = x[:, 1:] - x[:, :-1]
    x_changes, d_changes = _changes(x), _changes(xdiff)
    if method is None:
        used[usable] = maxlag
    else:
        skip = _has_constant_lags(x, xdiff, x_changes, d_changes, maxlag)
        for constant in (True, False):
            group = np.flatnonzero(usable & (skip != constant))
            if not len(group):
                continue
            # the lag columns are views of the group's rows: one copy of x, not one per lag
            rows_x, rows_d = (x, xdiff) if len(group) == rows else (x[group], xdiff[group])
            rhs, target = _adf_lag_columns(rows_x, rows_d, maxlag)
            if constant:
                rhs = [np.ones_like(rhs[0]), *rhs]
            gram = _adf_gram(rows_x, rows_d, maxlag) if constant else None
            chosen, doubtful = _select_lag_fast(rhs, target, method, maxlag, gram)
            # differences all zero over the fit (a series flat after its first values): every
            # lag fits exactly, its criterion is -inf (t values NaN), and statsmodels keeps the
            # shortest lag, as the exact fits would after 15 SVDs
            still = ~target.any(axis=1)
            chosen[still] = 0
            doubtful &= ~still
            if doubtful.any():
                again = np.flatnonzero(doubtful)
                rhs = [c[again] for c in rhs]
                chosen[again] = _select_lag_exact(rhs, target[again], method, maxlag)
            used[group] = chosen
    stat, trusted = _adf_qr(x, xdiff, np.where(usable, used, -1).astype(np.int64))
    again = usable & ~trusted  # fitted as statsmodels does, one group per lag and constant
    for lag in np.unique(used[again]).astype(int):
        skip = _has_constant_lags(x, xdiff, x_changes, d_changes, int(lag))
        for constant in (True, False):
            group = np.flatnonzero(again & (used == lag) & (skip != constant))
            if not len(group):
                continue
            rhs, target = _adf_lag_columns(x[group], xdiff[group], int(lag))
            if constant:
                rhs = [*rhs, np.ones_like(rhs[0])]
            stat[group] = _ols_blocks(rhs, target, llf=False, tvalue=0)["tvalue"]
    # mackinnonp(stat, regression="c", N=1); norm.cdf is scipy.special.ndtr
    with np.errstate(invalid="ignore"):
        small = stat <= _MACKINNON_STAR
        pvalue = scipy.special.ndtr(
            np.where(small, np.polyval(_MACKINNON_SMALL, stat), np.polyval(_MACKINNON_LARGE, stat))
        )
        pvalue = np.where(stat > _MACKINNON_MAX, 1.0, pvalue)
        pvalue = np.where(stat < _MACKINNON_MIN, 0.0, pvalue)
    return stat, np.where(np.isnan(stat), np.nan, pvalue), used


@combiner
def augmented_dickey_fuller(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Augmented Dickey-Fuller test (statsmodels ``adfuller``, constant, lag order by
    ``autolag``, default AIC): the test statistic, MacKinnon's p-value or the lag used.

    On the host: every candidate lag is an OLS over the stacked series, through the same LAPACK
    SVD statsmodels uses, so the lag choice agrees even in near ties. NaN where adfuller raises
    (constant or too short series), as tsfresh catches it; NaN for an unknown attr.
    """
    xp = namespace(x)
    on_host = np.ascontiguousarray(host(x), dtype=np.float64)
    tests: dict[str | None, tuple[np.ndarray, ...]] = {}
    out = []
    for p in param:
        autolag = p.get("autolag", "AIC")
        if autolag not in tests:
            with one_blas_thread():
                tests[autolag] = _adfuller(on_host, autolag)
        position = {"teststat": 0, "pvalue": 1, "usedlag": 2}.get(p["attr"])
        values = tests[autolag][position] if position is not None else np.full(len(on_host), np.nan)
        out.append((f'attr_"{p["attr"]}"__autolag_"{autolag}"', like(xp, values, x)))
    return out
