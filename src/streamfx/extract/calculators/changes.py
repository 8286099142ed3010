"""Changes along a series: differences, strikes, extreme locations, crossings, peaks,
autocorrelations and complexity measures."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from array_api_compat import is_numpy_array

from . import (
    Array,
    as_float,
    batch_settings,
    blas_ddot,
    combiner,
    full,
    host,
    like,
    linspace_into,
    namespace,
    param_suffix,
    search_left,
    shared,
    simple,
)
from .statistics import pairwise_sum, quantiles_of_sorted, sorted_rows, sorted_runs


def _diff(x: Array) -> Array:
    return x[:, 1:] - x[:, :-1]


@simple
def mean_abs_change(x: Array) -> Array:
    """Mean of the absolute consecutive differences (NaN for a single value)."""
    xp = namespace(x)
    if x.shape[1] < 2:
        return full(xp, x, math.nan)
    return xp.mean(xp.abs(_diff(x)), axis=1)


@simple
def mean_change(x: Array) -> Array:
    """Mean consecutive difference, (x[-1] - x[0]) / (n - 1); NaN for a single value."""
    xp = namespace(x)
    n = x.shape[1]
    if n < 2:
        return full(xp, x, math.nan)
    return (x[:, -1] - x[:, 0]) / (n - 1)


@simple
def mean_second_derivative_central(x: Array) -> Array:
    """tsfresh's telescoped mean central second derivative; NaN for fewer than 3 values."""
    xp = namespace(x)
    n = x.shape[1]
    if n < 3:
        return full(xp, x, math.nan)
    return (x[:, -1] - x[:, -2] - x[:, 1] + x[:, 0]) / (2 * (n - 2))


@simple
def absolute_sum_of_changes(x: Array) -> Array:
    """Sum of the absolute consecutive differences (0 for a single value)."""
    xp = namespace(x)
    return xp.sum(xp.abs(_diff(x)), axis=1)


def _longest_run(xp: Any, flags: Array) -> Array:
    """Longest run of True per row, from cumulative sums (no sequential scan).

    With c the running count of True, the runs are the gaps between the values of c at the
    False positions (plus 0 before the start and the total after the end). Those values are
    nondecreasing, so sorting them (True positions replaced by the total) lines them up.
    """
    counts = xp.cumulative_sum(as_float(xp, flags), axis=1)
    total = counts[:, -1:]
    marks = xp.where(flags, total, counts)
    marks = xp.concat([xp.zeros_like(total), marks, total], axis=1)
    marks = xp.sort(marks, axis=1, stable=False)
    return xp.max(_diff(marks), axis=1)


@simple
def longest_strike_below_mean(x: Array) -> Array:
    """Length of the longest run of consecutive values below the mean."""
    xp = namespace(x)
    return _longest_run(xp, x < xp.mean(x, axis=1)[:, None])


@simple
def longest_strike_above_mean(x: Array) -> Array:
    """Length of the longest run of consecutive values above the mean."""
    xp = namespace(x)
    return _longest_run(xp, x > xp.mean(x, axis=1)[:, None])


@simple
def last_location_of_maximum(x: Array) -> Array:
    """Relative position just after the last maximum, 1 - argmax(reversed) / n."""
    xp = namespace(x)
    return 1.0 - as_float(xp, xp.argmax(xp.flip(x, axis=1), axis=1)) / x.shape[1]


@simple
def first_location_of_maximum(x: Array) -> Array:
    """Relative position of the first maximum, argmax / n."""
    xp = namespace(x)
    return as_float(xp, xp.argmax(x, axis=1)) / x.shape[1]


@simple
def last_location_of_minimum(x: Array) -> Array:
    """Relative position just after the last minimum, 1 - argmin(reversed) / n."""
    xp = namespace(x)
    return 1.0 - as_float(xp, xp.argmin(xp.flip(x, axis=1), axis=1)) / x.shape[1]


@simple
def first_location_of_minimum(x: Array) -> Array:
    """Relative position of the first minimum, argmin / n."""
    xp = namespace(x)
    return as_float(xp, xp.argmin(x, axis=1)) / x.shape[1]


@simple
def time_reversal_asymmetry_statistic(x: Array, lag: int) -> Array:
    """Mean of x[i+2lag]^2 x[i+lag] - x[i+lag] x[i]^2; 0 when 2 lag >= n (tsfresh's rule)."""
    xp = namespace(x)
    n = x.shape[1]
    if 2 * lag >= n:
        return full(xp, x, 0.0)
    x0, x1, x2 = x[:, : n - 2 * lag], x[:, lag : n - lag], x[:, 2 * lag :]
    return xp.mean(x2 * x2 * x1 - x1 * x0 * x0, axis=1)


@simple
def c3(x: Array, lag: int) -> Array:
    """Mean of x[i+2lag] x[i+lag] x[i]; 0 when 2 lag >= n (tsfresh's rule)."""
    xp = namespace(x)
    n = x.shape[1]
    if 2 * lag >= n:
        return full(xp, x, 0.0)
    x0, x1, x2 = x[:, : n - 2 * lag], x[:, lag : n - lag], x[:, 2 * lag :]
    return xp.mean(x2 * x1 * x0, axis=1)


@simple
def cid_ce(x: Array, normalize: bool) -> Array:
    """Complexity estimate sqrt(sum(diff^2)), optionally on the z-scored series (std ddof 0;
    0 when the std is 0)."""
    xp = namespace(x)
    if normalize:
        s = xp.std(x, axis=1)
        ok = s != 0
        z = (x - xp.mean(x, axis=1)[:, None]) / xp.where(ok, s, 1.0)[:, None]
        d = _diff(z)
        return xp.where(ok, xp.sqrt(xp.sum(d * d, axis=1)), 0.0)
    d = _diff(x)
    return xp.sqrt(xp.sum(d * d, axis=1))


@simple
def number_crossing_m(x: Array, m: float) -> Array:
    """Number of times the series crosses m (changes between <= m and > m)."""
    xp = namespace(x)
    above = x > m
    return xp.sum(as_float(xp, above[:, 1:] != above[:, :-1]), axis=1)


@simple
def number_peaks(x: Array, n: int) -> Array:
    """Number of values larger than their n neighbours on each side (both n-wide sliding
    maxima from a doubling table of running maxima, so O(L log n) rather than O(L n))."""
    xp = namespace(x)
    length = x.shape[1]
    if length <= 2 * n:
        return full(xp, x, 0.0)
    level = n.bit_length() - 1  # 2**level <= n < 2**(level + 1)
    running = x  # running[:, a] = max(x[:, a : a + 2**k])
    for k in range(level):
        width = 1 << k
        running = xp.maximum(running[:, :-width], running[:, width:])
    count, shift = length - 2 * n, n - (1 << level)
    left = xp.maximum(running[:, :count], running[:, shift : shift + count])
    right = xp.maximum(
        running[:, n + 1 : n + 1 + count], running[:, n + 1 + shift : n + 1 + shift + count]
    )
    centre = x[:, n : length - n]
    return xp.sum(as_float(xp, (centre > left) & (centre > right)), axis=1)


@numba.njit(cache=True, nogil=True)
def _corridor_stats(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """(mean, var, mean of |.|, var of |.|) of the changes between consecutive values that both
    lie in [lo, hi], per corridor (rows of lo, hi) and series: shape (4, corridors, series);
    0 where no change lies in the corridor. Two passes (the mean, then the squared deviations).
    """
    rows, n = x.shape
    corridors = lo.shape[0]
    out = np.zeros((4, corridors, rows))
    for r in range(rows):
        row = x[r]
        for c in range(corridors):
            a, b = lo[c, r], hi[c, r]
            count = 0
            total = 0.0
            total_abs = 0.0
            previous = row[0] >= a and row[0] <= b
            for t in range(1, n):
                current = row[t] >= a and row[t] <= b
                if previous and current:
                    d = row[t] - row[t - 1]
                    count += 1
                    total += d
                    total_abs += abs(d)
                previous = current
            if count == 0:
                continue
            mean = total / count
            mean_abs = total_abs / count
            squares = 0.0
            squares_abs = 0.0
            previous = row[0] >= a and row[0] <= b
            for t in range(1, n):
                current = row[t] >= a and row[t] <= b
                if previous and current:
                    d = row[t] - row[t - 1]
                    squares += (d - mean) * (d - mean)
                    squares_abs += (abs(d) - mean_abs) * (abs(d) - mean_abs)
                previous = current
            out[0, c, r] = mean
            out[1, c, r] = squares / count
            out[2, c, r] = mean_abs
            out[3, c, r] = squares_abs / count
    return out


@combiner(accepts=lambda p: p["f_agg"] in ("mean", "var", "std"))
def change_quantiles(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Mean, variance or standard deviation (``f_agg``: NumPy's ``mean``, ``var``, ``std``;
    tsfresh computes the calculator for any other NumPy function) of the (absolute) changes between consecutive values that both lie in the corridor
    [quantile ql, quantile qh] (pandas.qcut's bin 0, both ends included, also when the two
    quantiles coincide); 0 when ql >= qh or no change lies in the corridor.

    All corridors at once: (corridor, series, change) arrays, each row summed as before."""
    xp = namespace(x)
    corridors = list(dict.fromkeys((p["ql"], p["qh"]) for p in param if p["ql"] < p["qh"]))
    index = {corridor: i for i, corridor in enumerate(corridors)}
    aggregates: dict[tuple[bool, str], Array] = {}
    if corridors:
        ordered = sorted_rows(x)
        bounds = quantiles_of_sorted(ordered, [q for corridor in corridors for q in corridor])
        lo = xp.permute_dims(bounds[:, 0::2], (1, 0))[:, :, None]
        hi = xp.permute_dims(bounds[:, 1::2], (1, 0))[:, :, None]
    if corridors and is_numpy_array(x):
        # one compiled pass per series and corridor instead of a dozen array operations
        table = _corridor_stats(
            np.ascontiguousarray(x, dtype=np.float64),
            np.ascontiguousarray(lo[:, :, 0]),
            np.ascontiguousarray(hi[:, :, 0]),
        )
        for i, key in enumerate(((False, "mean"), (False, "var"), (True, "mean"), (True, "var"))):
            aggregates[key] = table[i]
    elif corridors:
        inside = (x[None, :, :] >= lo) & (x[None, :, :] <= hi)
        pairs = inside[:, :, 1:] & inside[:, :, :-1]  # (corridor, series, change)
        count = xp.sum(as_float(xp, pairs), axis=2)
        safe = xp.where(count > 0, count, 1.0)
        diff = _diff(x)
        wanted = {(bool(p["isabs"]), p["f_agg"]) for p in param if p["ql"] < p["qh"]}
        wanted |= {(isabs, "var") for isabs, f_agg in wanted if f_agg == "std"}
        for isabs in sorted({isabs for isabs, _ in wanted}):
            values = (xp.abs(diff) if isabs else diff)[None, :, :]
            mean = xp.sum(xp.where(pairs, values, 0.0), axis=2) / safe
            aggregates[isabs, "mean"] = xp.where(count > 0, mean, 0.0)
            if (isabs, "var") in wanted:
                dev = xp.where(pairs, values - mean[:, :, None], 0.0)
                var = xp.sum(dev * dev, axis=2) / safe
                aggregates[isabs, "var"] = xp.where(count > 0, var, 0.0)
    result = []
    for p in param:
        ql, qh = p["ql"], p["qh"]
        if ql >= qh:
            result.append((param_suffix(p), full(xp, x, 0.0)))
        else:
            f_agg = "var" if p["f_agg"] == "std" else p["f_agg"]
            agg = aggregates[bool(p["isabs"]), f_agg][index[ql, qh]]
            result.append((param_suffix(p), xp.sqrt(agg) if p["f_agg"] == "std" else agg))
    return result


@combiner
def energy_ratio_by_chunks(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Share of the total energy (sum of squares) in chunk ``segment_focus`` of
    ``num_segments`` (np.array_split's chunks); NaN when the total energy is 0."""
    xp = namespace(x)
    n = x.shape[1]
    squares = x**2
    total = xp.sum(squares, axis=1)
    zero = total == 0
    safe = xp.where(zero, 1.0, total)
    result = []
    for p in param:
        segments, focus = p["num_segments"], p["segment_focus"]
        assert 0 <= focus < segments
        size, extra = divmod(n, segments)
        start = focus * size + min(focus, extra)
        stop = start + size + (1 if focus < extra else 0)
        energy = xp.sum(squares[:, start:stop], axis=1)
        result.append((param_suffix(p), xp.where(zero, math.nan, energy / safe)))
    return result


@combiner
def autocorrelation(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Autocorrelation at each lag: sum((x[t] - mean)(x[t+lag] - mean)) / ((n - lag) var);
    NaN when lag > n or var is close to 0 (|var| <= 1e-8, np.isclose) or lag == n."""
    xp = namespace(x)
    n = x.shape[1]
    centred = x - xp.mean(x, axis=1)[:, None]  # the same subtraction as tsfresh's, once
    var = xp.var(x, axis=1)
    flat = xp.abs(var) <= 1e-8
    safe = xp.where(flat, 1.0, var)
    result = []
    for p in param:
        lag = p["lag"]
        if lag >= n:
            result.append((param_suffix(p), full(xp, x, math.nan)))
            continue
        product = xp.sum(centred[:, : n - lag] * centred[:, lag:], axis=1)
        result.append((param_suffix(p), xp.where(flat, math.nan, product / ((n - lag) * safe))))
    return result


def _autocovariances(x: Array, max_lag: int) -> Array:
    """statsmodels' adjusted autocovariances of lags 0..max_lag as (series, lags), demeaned and
    divided by n - k, as ``acovf(fft=False)`` forms them: on the host one BLAS dot product per
    lag (``np.correlate``'s, so statsmodels' values to the bit, and 3-20x faster than an FFT
    of every lag up to ``_DIRECT_LAGS``), on the device ``_autocovariances_xp``."""
    if not is_numpy_array(x):
        return _autocovariances_xp(namespace(x), x, max_lag)
    centred = np.ascontiguousarray(x - np.mean(x, axis=1)[:, None], dtype=np.float64)
    return _lagged_products(blas_ddot(), centred, max_lag)


@numba.njit(cache=True, nogil=True)
def _lagged_products(
    ddot: Any, centred: np.ndarray, max_lag: int
) -> np.ndarray:  # pragma: no cover - compiled
    """sum(centred[:, k:] * centred[:, :n - k]) / (n - k) for k = 0..max_lag, one ``ddot``
    (``blas_ddot``) per series and lag."""
    rows, n = centred.shape
    out = np.empty((rows, max_lag + 1))
    size, step = np.empty(1, np.int32), np.ones(1, np.int32)
    for r in range(rows):
        row = centred[r]
        for k in range(max_lag + 1):
            size[0] = n - k
            later = row[k:]
            products = ddot(size.ctypes, row.ctypes, step.ctypes, later.ctypes, step.ctypes)
            out[r, k] = products / (n - k)
    return out


def _autocovariances_xp(xp: Any, x: Array, max_lag: int) -> Array:
    """``_autocovariances`` in array operations (the device's): a sum of products per lag."""
    n = x.shape[1]
    xo = x - xp.mean(x, axis=1)[:, None]
    lags = [xp.sum(xo[:, k:] * xo[:, : n - k], axis=1) / (n - k) for k in range(max_lag + 1)]
    return xp.stack(lags, axis=1)


def _fft_autocovariances(xp: Any, x: Array, max_lag: int) -> Array:
    """``_autocovariances`` of every lag from one FFT, for more than ``_DIRECT_LAGS`` lags."""
    n = x.shape[1]
    xo = x - xp.mean(x, axis=1)[:, None]
    size = 1 << (2 * n - 1).bit_length()  # >= 2n - 1: no circular wrap-around
    spectrum = xp.fft.rfft(xo, n=size, axis=1)
    power = xp.real(spectrum) ** 2 + xp.imag(spectrum) ** 2
    products = xp.fft.irfft(power, n=size, axis=1)[:, : max_lag + 1]
    return products / xp.asarray([n - k for k in range(max_lag + 1)], dtype=xp.float64)


#: Up to this many lags a dot product per lag costs less than one FFT of every lag (measured
#: from 144 to 100,000 points: 3-22x less at 40 lags, about even at 500-1,000).
_DIRECT_LAGS = 512


_ACF_AGGREGATES: dict[str, Any] = {
    "mean": lambda xp, a: xp.mean(a, axis=1),
    "median": None,  # sorted rows, below
    "var": lambda xp, a: xp.var(a, axis=1),
    "std": lambda xp, a: xp.std(a, axis=1),
    "sum": lambda xp, a: xp.sum(a, axis=1),
    "max": lambda xp, a: xp.max(a, axis=1),
    "min": lambda xp, a: xp.min(a, axis=1),
}


@combiner(accepts=lambda p: p["f_agg"] in _ACF_AGGREGATES)
def agg_autocorrelation(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """NumPy's ``f_agg`` (mean, median, var, std, sum, max or min; tsfresh computes any other)
    of statsmodels' adjusted ACF over lags 1..maxlag (at most n-1);
    all zeros for a single value or when var < 1e-10 (tsfresh's rule). The lags are statsmodels'
    direct sums (``_autocovariances``), which it uses below n = 1250 (an FFT above: the same
    values but for rounding), or one FFT beyond ``_DIRECT_LAGS`` lags."""
    xp = namespace(x)
    n = x.shape[1]
    max_maxlag = max(int(p["maxlag"]) for p in param)
    lags = min(max_maxlag, n - 1)
    if n == 1 or lags <= 0:
        acf = xp.zeros((x.shape[0], n if n == 1 else 0), dtype=xp.float64)
    else:
        acov = (
            _autocovariances(x, lags) if lags <= _DIRECT_LAGS else _fft_autocovariances(xp, x, lags)
        )
        flat = xp.abs(xp.var(x, axis=1)) < 1e-10
        acf = acov[:, 1:] / xp.where(flat, 1.0, acov[:, 0])[:, None]
        acf = xp.where(flat[:, None], 0.0, acf)
    result = []
    for p in param:
        f_agg = p["f_agg"]
        part = acf[:, : int(p["maxlag"])]
        count = part.shape[1]
        if count == 0:
            values = full(xp, x, math.nan)
        elif f_agg == "median":
            ordered = xp.sort(part, axis=1, stable=False)
            mid = count // 2
            values = ordered[:, mid] if count % 2 else (ordered[:, mid - 1] + ordered[:, mid]) / 2
        else:
            values = _ACF_AGGREGATES[f_agg](xp, part)
        result.append((param_suffix(p), values))
    return result


@combiner
def partial_autocorrelation(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """statsmodels' pacf(method="ld"): Levinson-Durbin on the adjusted autocovariances,
    vectorized across series. Lags are limited to n // 2 - 1 (NaN beyond, and NaN for every
    lag, lag 0 included, when that limit is below 1); lag 0 is 1.0 otherwise."""
    xp = namespace(x)
    n = x.shape[1]
    max_demanded = max(p["lag"] for p in param)
    max_lag = n // 2 - 1 if max_demanded >= n // 2 else max_demanded
    nan = full(xp, x, math.nan)
    if n <= 1 or max_lag <= 0:
        return [(param_suffix(p), nan) for p in param]
    acov = _autocovariances(x, max_lag)
    s = [acov[:, k] for k in range(max_lag + 1)]
    # phi[k][j] is statsmodels' phi[j, k]
    phi: list[list[Array]] = [[], [None, s[1] / s[0]]]
    sig = s[0] - phi[1][1] * s[1]
    for k in range(2, max_lag + 1):
        dot = phi[k - 1][1] * s[k - 1]
        for j in range(2, k):
            dot = dot + phi[k - 1][j] * s[k - j]
        kk = (s[k] - dot) / sig
        row = [None] + [phi[k - 1][j] - kk * phi[k - 1][k - j] for j in range(1, k)] + [kk]
        phi.append(row)
        sig = sig * (1 - kk**2)
    coefficients = [full(xp, x, 1.0)] + [phi[k][k] for k in range(1, max_lag + 1)]
    return [
        (param_suffix(p), coefficients[p["lag"]] if p["lag"] <= max_lag else nan) for p in param
    ]


@numba.njit(cache=True, nogil=True)
def _lempel_ziv(x: np.ndarray, bins: int) -> np.ndarray:  # pragma: no cover - compiled
    rows, n = x.shape
    out = np.empty(rows)
    alphabet = bins + 1
    # the trie's child slots, each valid only for the row that wrote it (owner): no slot is
    # cleared, which for 100 bins cost more than the parse
    children = np.empty((n + 1) * alphabet, dtype=np.int32)
    owner = np.full((n + 1) * alphabet, -1, dtype=np.int32)
    edges = np.empty(bins + 1)
    upper = edges[1:]  # np.linspace(lo, hi, bins + 1)[1:]
    sequence = np.empty(n, dtype=np.int64)
    for r in range(rows):
        row = x[r]
        linspace_into(edges, row.min(), row.max())
        for i in range(n):  # np.searchsorted(upper, row, side="left")
            sequence[i] = search_left(upper, bins, row[i])
        # LZ78 parsing with a trie: the set of words is prefix-closed
        nodes = 1
        words = 0
        node = 0
        ind = 0
        inc = 1
        while ind + inc <= n:
            slot = node * alphabet + sequence[ind + inc - 1]
            if owner[slot] == r:
                node = children[slot]
                inc += 1
            else:
                children[slot] = nodes
                owner[slot] = r
                nodes += 1
                words += 1
                ind += inc
                inc = 1
                node = 0
        out[r] = words / n
    return out


@simple
def lempel_ziv_complexity(x: Array, bins: int) -> Array:
    """Lempel-Ziv (LZ78) word count / n of the series binned into ``bins`` equal-width bins
    (np.linspace edges, searchsorted left). The parse is sequential, so it is compiled with
    numba and runs on the host (CuPy input is copied there and the result copied back)."""
    xp = namespace(x)
    on_host = np.ascontiguousarray(host(x), dtype=np.float64)
    return like(xp, _lempel_ziv(on_host, int(bins)), x)


_TABLE_MAX_DIMENSION = 7  # order-type codes below dimension**dimension: 823543 for 7
_PATTERN_TABLES: dict[int, np.ndarray] = {}  # per dimension: code -> pattern, -1 = not yet


def _pattern_table(codes: np.ndarray, d: int) -> np.ndarray:
    """A table mapping order-type codes to the ordinal pattern NumPy's argsort gives them,
    filled in for every code in ``codes`` (and kept, per process, for the next call).

    An order type is coded by its min-ranks r (r[j] = number of values below value j, so ties
    share a rank) as sum(r[j] d**j); its pattern is coded as sum(p[j] d**j) for
    p = np.argsort(np.argsort(r)). NumPy's default argsort is unstable on CPUs with SIMD
    sorting, but it compares values only, so its order of a window is its order of the
    window's min-ranks: one host argsort per order type replaces one per window. Only the
    order types that occur are computed, so a process pays for what its data holds.
    """
    table = _PATTERN_TABLES.setdefault(d, np.full(d**d, -1, dtype=np.int32))
    missing = np.unique(codes[table[codes] < 0])
    if len(missing):
        powers = d ** np.arange(d, dtype=np.int64)
        ranks = (missing.astype(np.int64)[:, None] // powers) % d
        patterns = np.argsort(np.argsort(ranks.astype(np.float64), axis=1), axis=1) @ powers
        table[missing] = patterns
    return table


def _entropy_of_labels(xp: Any, labels: Array) -> Array:
    """Shannon entropy of the label frequencies of each row (runs of the sorted labels)."""
    rows, size = labels.shape
    ordered = xp.sort(labels, axis=1, stable=False)
    change = ordered[:, 1:] != ordered[:, :-1]
    ends = xp.where(change, xp.arange(1, size, dtype=xp.int64)[None, :], size)
    ends = xp.sort(ends, axis=1, stable=False)
    bounds = xp.concat(
        [xp.zeros((rows, 1), dtype=xp.int64), ends, xp.full((rows, 1), size, dtype=xp.int64)],
        axis=1,
    )
    probs = as_float(xp, bounds[:, 1:] - bounds[:, :-1]) / size  # run lengths, then zeros
    return -xp.sum(probs * xp.log(xp.where(probs > 0, probs, 1.0)), axis=1)


def _window_values(a: Array, j: int, tau: int, windows: int) -> Array:
    """Value j of every window (windows of consecutive values, one starting every tau)."""
    return a[:, j : j + tau * (windows - 1) + 1 : tau]


def _order_codes_xp(x: Array, d: int, tau: int, windows: int) -> Array:
    """``_order_codes`` with array operations (the device's path)."""
    xp = namespace(x)
    codes = xp.zeros((x.shape[0], windows), dtype=xp.int32)
    for offset in range(1, d):
        later, earlier = x[:, offset:], x[:, :-offset]
        # pair (j, j + offset) adds d**j [x_{j+offset} < x_j] + d**(j+offset) [x_j < x_{j+offset}]
        pair = xp.astype(later < earlier, xp.int32) + xp.astype(later > earlier, xp.int32) * (
            d**offset
        )
        inner = _window_values(pair, d - 1 - offset, tau, windows)
        for j in range(d - 2 - offset, -1, -1):  # Horner over j
            inner = inner * d + _window_values(pair, j, tau, windows)
        codes = codes + inner
    return codes


@numba.njit(cache=True, nogil=True)
def _order_codes(x: np.ndarray, d: int, tau: int, windows: int) -> np.ndarray:  # pragma: no cover
    """The order-type code sum(r[j] d**j) of every window (r[j]: the window's values below its
    value j), compiled: the CPU's version of ``_order_codes_xp``."""
    rows = x.shape[0]
    out = np.zeros((rows, windows), dtype=np.int32)
    span = tau * (windows - 1) + 1
    for r in range(rows):
        row, codes = x[r], out[r]
        power = 1
        for j in range(d):
            for k in range(d):
                if k == j:
                    continue
                if tau == 1:  # contiguous: the loop vectorizes
                    _add_below(codes, row[k : k + windows], row[j : j + windows], power)
                else:
                    _add_below(codes, row[k : k + span : tau], row[j : j + span : tau], power)
            power *= d
    return out


@numba.njit(cache=True, nogil=True)
def _add_below(
    codes: np.ndarray, other: np.ndarray, value: np.ndarray, power: int
) -> None:  # pragma: no cover - compiled
    """codes[w] += power where other[w] < value[w]."""
    for w in range(len(codes)):
        codes[w] += np.int32(other[w] < value[w]) * power


@numba.njit(cache=True, nogil=True)
def _sorted_label_entropy(ordered: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Shannon entropy of the label frequencies of each sorted row, summed pairwise over the
    distinct labels in order (``np.sum`` of tsfresh's probabilities)."""
    rows, size = ordered.shape
    out = np.empty(rows)
    terms = np.empty(size)
    firsts = np.empty(size, dtype=np.int64)
    lengths = np.empty(size, dtype=np.int64)
    for r in range(rows):
        runs = sorted_runs(ordered[r], firsts, lengths)
        for i in range(runs):
            share = lengths[i] / size
            terms[i] = share * math.log(share)
        out[r] = -pairwise_sum(terms, 0, runs)
    return out


@simple
def permutation_entropy(x: Array, tau: int, dimension: int) -> Array:
    """Shannon entropy of the ordinal patterns (np.argsort(np.argsort(window))) of windows of
    ``dimension`` values starting every ``tau`` values; NaN when no window fits.

    Tied values are ordered by NumPy's default (unstable) argsort, as tsfresh does: on CPUs
    where NumPy sorts with SIMD that order is not the stable one. Up to dimension 7 each
    window's order type is coded from pairwise comparisons (a compiled pass per series on the
    CPU, array operations on the device) and looked up in a table of NumPy's patterns (see
    ``_pattern_table``); above, the windows are argsorted by NumPy on the host (CuPy input is
    copied there)."""
    xp = namespace(x)
    n = x.shape[1]
    d = int(dimension)
    windows = max(0, (n - d) // tau + 1)
    if windows == 0:
        return full(xp, x, math.nan)
    if d <= _TABLE_MAX_DIMENSION and is_numpy_array(x):
        codes = _order_codes(np.ascontiguousarray(x, dtype=np.float64), d, tau, windows)
        labels = _pattern_table(codes.reshape(-1), d)[codes]
        return _sorted_label_entropy(np.sort(labels, axis=1))
    if d <= _TABLE_MAX_DIMENSION:
        flat = xp.reshape(_order_codes_xp(x, d, tau, windows), (-1,))
        table = like(xp, _pattern_table(host(flat), d), x)
        labels = xp.reshape(xp.take(table, flat), (x.shape[0], windows))
    else:
        stacked = xp.stack([_window_values(x, j, tau, windows) for j in range(d)], axis=-1)
        order = like(xp, np.argsort(host(stacked), axis=-1), x)
        ranks = xp.astype(xp.argsort(order, axis=-1), xp.int64)
        weights = xp.asarray([d**j for j in range(d)], dtype=xp.int64)
        labels = xp.sum(ranks * weights, axis=-1)
    return _entropy_of_labels(xp, labels)


# --- template-matching entropies (O(n²) per series: compiled, on the host) ---------------------


@numba.njit(cache=True, nogil=True)
def _template_matches(
    x: np.ndarray, m: int, tolerances: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Matches of the length-m and length-(m + 1) templates of each row, for each tolerance
    ``tolerances[row, t]``: a template matches another within the tolerance in Chebyshev
    distance (max |x[i + k] - x[j + k]| <= tolerance), itself included.

    Returns (pairs, logs), each (t, 2, rows): the number of ordered matching pairs (i, j),
    i != j, and sum_i log(matches_i / templates), for length m (index 0, n - m + 1 templates)
    and m + 1 (index 1, n - m templates).

    The templates are visited in the order of their first values: the others within a
    tolerance of one on the first value are then the next ones in that order, up to a bound
    per tolerance that only moves forward. Their distances are computed once for every tolerance and
    both lengths, and counted per tolerance by branch-free loops over slices starting at 0,
    which compile to vector instructions (8x faster than a loop per pair on noise).
    """
    rows, n = x.shape
    count = tolerances.shape[1]
    templates = max(n - m + 1, 0)
    pairs = np.zeros((count, 2, rows), dtype=np.int64)
    logs = np.zeros((count, 2, rows))
    # within[length, t, a]: the templates within tolerance t of template a (in the order of
    # first values), itself included
    within = np.empty((2, count, templates), dtype=np.int32)
    sorted_values = np.empty((m + 1, templates))  # the templates' values, in that order
    distance = np.empty(templates)  # length m, to the later templates
    further = np.empty(templates)  # the value m + 1 alone (NaN: no length m + 1 template)
    position = np.empty(templates, dtype=np.int64)
    for r in range(rows):
        row = x[r]
        order = np.argsort(row[:templates])
        for k in range(m + 1):
            for a in range(templates):  # loops, not fancy indexing: less to compile
                i = order[a] + k
                sorted_values[k, a] = row[i] if i < n else np.nan
        within[:, :, :] = 1
        first, last = sorted_values[0], sorted_values[m]
        ends = np.zeros(count, dtype=np.int64)  # per tolerance, the bound on the first value
        for a in range(templates):
            end = 0
            for t in range(count):
                stop = max(ends[t], a + 1)
                while stop < templates and first[stop] - first[a] <= tolerances[r, t]:
                    stop += 1
                ends[t] = stop
                end = max(end, stop)
            # slices from 0: the compiler then knows no index wraps around (as a negative
            # one would), and vectorizes
            near, near_last = distance[a + 1 : end], further[a + 1 : end]
            values, lasts = first[a + 1 : end], last[a + 1 : end]
            value, value_last = first[a], last[a]
            for b in range(len(near)):
                near[b] = values[b] - value  # >= 0, and |x_i - x_j| as rounded
                near_last[b] = abs(lasts[b] - value_last)
            for k in range(1, m):
                values, value = sorted_values[k, a + 1 : end], sorted_values[k, a]
                for b in range(len(near)):
                    gap = abs(values[b] - value)
                    near[b] = near[b] if near[b] >= gap else gap
            for t in range(count):
                tolerance = tolerances[r, t]
                stop = ends[t]
                short, long = within[0, t, a + 1 : stop], within[1, t, a + 1 : stop]
                matched = matched_longer = 0
                for b in range(len(short)):
                    hit = np.int32(near[b] <= tolerance)
                    hit_longer = hit & np.int32(near_last[b] <= tolerance)
                    short[b] += hit
                    long[b] += hit_longer
                    matched += hit
                    matched_longer += hit_longer
                within[0, t, a] += matched
                within[1, t, a] += matched_longer
        for a in range(templates):
            position[order[a]] = a
        for length in range(2):
            size = max(templates - length, 0)
            for t in range(count):
                total, log_sum = 0, 0.0
                for i in range(size):  # in the templates' own order, as tsfresh sums
                    matches = within[length, t, position[i]]
                    total += matches
                    log_sum += math.log(matches / size)
                pairs[t, length, r] = total - size
                logs[t, length, r] = log_sum
    return pairs, logs


_SAMPLE_ENTROPY_R = 0.2  # tsfresh's tolerance for sample_entropy, times the std


def _template_factors(x: Array, m: int, own: list[float]) -> tuple[float, ...]:
    """The tolerance factors (of the std) of every template entropy of length ``m`` the batch
    computes (``batch_settings``): sample_entropy's 0.2 at m = 2 and approximate_entropy's r,
    with ``own``, so that one pass over the template pairs serves them all."""
    settings = batch_settings(x)
    factors = set(own)
    if m == 2 and "sample_entropy" in settings:
        factors.add(_SAMPLE_ENTROPY_R)
    for p in settings.get("approximate_entropy") or []:
        if int(p["m"]) == m:
            factors.add(float(p["r"]))
    return tuple(sorted(factors))


def _shared_matches(
    x: Array, on_host: np.ndarray, std: np.ndarray, m: int, factors: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``_template_matches`` of length ``m`` for tolerances ``factors`` x std, once per batch."""
    tolerances = np.stack([r * std for r in factors], axis=1)
    return shared(x, ("templates", m, factors), lambda: _template_matches(on_host, m, tolerances))


@simple
def sample_entropy(x: Array) -> Array:
    """Sample entropy with tsfresh's m = 2 and tolerance 0.2 · std: -log(A / B), B the pairs
    of distinct length-2 templates within the tolerance (Chebyshev distance), A the same for
    length 3 (inf when A is 0, NaN when B is too). Counted in approximate_entropy's pass where
    the batch computes both."""
    xp = namespace(x)
    on_host = np.ascontiguousarray(host(x), dtype=np.float64)
    factors = _template_factors(x, 2, [_SAMPLE_ENTROPY_R])
    pairs, _ = _shared_matches(x, on_host, np.std(on_host, axis=1), 2, factors)
    t = factors.index(_SAMPLE_ENTROPY_R)
    with np.errstate(divide="ignore", invalid="ignore"):
        return like(xp, -np.log(pairs[t, 1] / pairs[t, 0]), x)


@combiner
def approximate_entropy(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Approximate entropy |phi(m) - phi(m + 1)| with tolerance r · std, phi(k) the mean log
    share of length-k templates within the tolerance of each one (itself included), as
    tsfresh computes it; 0 for series of at most m + 1 values. A negative r is refused, as
    tsfresh refuses it. Every r of one m (and sample_entropy's, where the batch computes it)
    comes from one pass over the template pairs."""
    xp = namespace(x)
    on_host = np.ascontiguousarray(host(x), dtype=np.float64)
    n = on_host.shape[1]
    std = np.std(on_host, axis=1)
    values: dict[tuple[int, float], np.ndarray] = {}
    for m in dict.fromkeys(int(p["m"]) for p in param):
        rs = list(dict.fromkeys(float(p["r"]) for p in param if int(p["m"]) == m))
        if min(rs) < 0 and (std > 0).any():
            raise ValueError("Parameter r must be positive.")
        if n <= m + 1:
            values.update({(m, r): np.zeros(len(on_host)) for r in rs})
            continue
        factors = _template_factors(x, m, rs)
        _, logs = _shared_matches(x, on_host, std, m, factors)
        for r in rs:
            t = factors.index(r)
            phi = logs[t, 0] / (n - m + 1.0) - logs[t, 1] / (n - m)
            values[m, r] = np.abs(phi)
    return [(param_suffix(p), like(xp, values[int(p["m"]), float(p["r"])], x)) for p in param]
