"""Spectral calculators: Fourier coefficients and their aggregates, Welch power spectral densities
and their entropy, Mexican hat wavelet transform coefficients and wavelet peaks."""

from __future__ import annotations

import math
from functools import cache, lru_cache
from typing import Any

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import Array, blas_ddot, combiner, full, host, like, namespace, shared
from .statistics import histogram_entropy

_RAD_TO_DEG = 180 / math.pi  # np.angle(deg=True) multiplies by this constant
_WELCH_MAX_SEGMENT = 256  # tsfresh's nperseg = min(len(x), 256)


def _to_host(x: Array) -> np.ndarray:
    """``x`` as a C-contiguous float64 NumPy array (what the compiled kernels take)."""
    return np.ascontiguousarray(host(x), dtype=np.float64)


# --- Fourier transform ------------------------------------------------------------------------


def _rfft(x: Array) -> Array:
    """The rfft of every row, once per batch (see ``shared``)."""
    return shared(x, "rfft", lambda: namespace(x).fft.rfft(x, axis=1))


@combiner
def fft_coefficient(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Real part, imaginary part, absolute value or angle (degrees) of the rfft coefficients.

    One rfft per series; coefficients beyond the rfft's length (L // 2 + 1) are NaN.
    """
    xp = namespace(x)
    if any(config["coeff"] < 0 for config in param):
        raise ValueError("Coefficients must be positive or zero.")
    spectrum = _rfft(x)
    n_freq = spectrum.shape[1]
    parts: dict[str, Array] = {}

    def part(attr: str) -> Array:
        if attr not in parts:
            if attr == "real":
                parts[attr] = xp.real(spectrum)
            elif attr == "imag":
                parts[attr] = xp.imag(spectrum)
            elif attr == "abs":
                parts[attr] = xp.abs(spectrum)
            elif attr == "angle":
                parts[attr] = xp.atan2(xp.imag(spectrum), xp.real(spectrum)) * _RAD_TO_DEG
            else:
                raise ValueError('Attribute must be "real", "imag", "angle" or "abs"')
        return parts[attr]

    result = []
    nan = full(
        xp, x, math.nan
    )  # one array for every coefficient beyond the rfft (columns are read-only)
    for config in param:
        coeff, attr = config["coeff"], config["attr"]
        values = part(attr)[:, coeff] if coeff < n_freq else nan
        result.append((f'attr_"{attr}"__coeff_{coeff}', values))
    return result


@combiner
def fft_aggregated(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Centroid, variance, skew and kurtosis of the absolute rfft spectrum as a distribution.

    tsfresh's formulas, quirks included: moments are taken about the frequency index and
    normalised by the spectrum's sum (NaN for an all-zero series); skew and kurtosis are NaN
    when the variance is below 0.5; the kurtosis subtracts ``3 * centroid`` (not its 4th power).
    """
    xp = namespace(x)
    aggtypes = [config["aggtype"] for config in param]
    if not set(aggtypes) <= {"centroid", "variance", "skew", "kurtosis"}:
        raise ValueError('Attribute must be "centroid", "variance", "skew", "kurtosis"')
    y = xp.abs(_rfft(x))
    index = np.arange(y.shape[1], dtype=np.float64)
    powers = like(xp, np.stack([index**m for m in (1, 2, 3, 4)], axis=1), x)
    moments = xp.matmul(y, powers) / xp.sum(y, axis=1)[:, None]
    m1, m2, m3, m4 = (moments[:, i] for i in range(4))
    centroid = m1
    variance = m2 - centroid**2
    small = variance < 0.5  # NaN variance is not small: its skew and kurtosis stay NaN
    values = {"centroid": centroid, "variance": variance}
    if "skew" in aggtypes:
        skew = (m3 - 3 * centroid * variance - centroid**3) / variance**1.5
        values["skew"] = xp.where(small, math.nan, skew)
    if "kurtosis" in aggtypes:
        kurtosis = (m4 - 4 * centroid * m3 + 6 * m2 * centroid**2 - 3 * centroid) / variance**2
        values["kurtosis"] = xp.where(small, math.nan, kurtosis)
    return [(f'aggtype_"{aggtype}"', values[aggtype]) for aggtype in aggtypes]


# --- Welch power spectral density ---------------------------------------------------------------


@cache
def _psd_window(nperseg: int) -> np.ndarray:
    """scipy's periodic Hann window scaled to a density (fs = 1), as ShortTimeFFT scales it.

    The window as ``scipy.signal.get_window("hann", nperseg)`` computes it (general_cosine on
    nperseg + 1 points, the last dropped): importing scipy.signal costs each worker ~2 s.
    """
    if nperseg == 1:
        window = np.ones(1)  # scipy's guard for one-point windows
    else:
        fac = np.linspace(-np.pi, np.pi, nperseg + 1)
        window = np.zeros(nperseg + 1)
        for k, a in enumerate((0.5, 0.5)):
            window += a * np.cos(k * fac)
        window = window[:-1]
    scaled = window * (1 / np.sqrt(sum(window.real**2 + window.imag**2) / 1.0))
    scaled.setflags(write=False)
    return scaled


def _welch(x: Array) -> Array:
    """scipy.signal.welch(x, nperseg=min(L, 256)) for every series: shape (series, frequencies).

    Hann window, half-overlapping segments (no padding, no boundary extension), each detrended
    by its mean, one-sided density (all but the DC and, for even segments, the Nyquist term
    doubled), averaged over the segments.
    """
    xp = namespace(x)
    length = x.shape[1]
    nperseg = min(length, _WELCH_MAX_SEGMENT)
    hop = nperseg - nperseg // 2
    n_segments = (length - nperseg // 2) // hop
    segments = xp.stack(
        [x[:, k * hop : k * hop + nperseg] for k in range(n_segments)], axis=1
    )  # (series, segments, nperseg)
    detrended = segments - xp.mean(segments, axis=2, keepdims=True)
    spectrum = xp.fft.rfft(detrended * like(xp, _psd_window(nperseg), x), axis=2)
    power = xp.real(spectrum) ** 2 + xp.imag(spectrum) ** 2
    n_freq = power.shape[2]
    onesided = np.ones(n_freq)
    onesided[1 : n_freq - 1 if nperseg % 2 == 0 else n_freq] = 2.0
    return xp.mean(power * like(xp, onesided, x), axis=1)


@combiner
def spkt_welch_density(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Welch power spectral density (nperseg = min(L, 256)) at the frequency indices ``coeff``.

    NaN for indices beyond the number of frequencies (nperseg // 2 + 1). As in tsfresh, when
    some are beyond, the available values come first and the NaNs last, in ``param`` order.
    """
    xp = namespace(x)
    pxx = shared(x, "welch", lambda: _welch(x))
    n_freq = pxx.shape[1]
    coeffs = [config["coeff"] for config in param]
    names = [f"coeff_{coeff}" for coeff in coeffs]
    if n_freq <= max(coeffs):
        present = [coeff for coeff in coeffs if n_freq > coeff]
        values = [pxx[:, coeff] for coeff in present]
        values += [full(xp, x, math.nan) for _ in range(len(coeffs) - len(present))]
    else:
        values = [pxx[:, coeff] for coeff in coeffs]
    return list(zip(names, values, strict=True))


@combiner
def fourier_entropy(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Binned entropy (``bins`` equal-width bins) of the Welch density divided by its maximum.

    One Welch density per series for all ``bins``; NaN when the density is all zero (a
    constant series: tsfresh divides 0 by 0).
    """
    xp = namespace(x)
    pxx = shared(x, "welch", lambda: _welch(x))
    top = xp.max(pxx, axis=1, keepdims=True)
    bad = ~xp.isfinite(top) | (top == 0)
    normalized = xp.where(bad, math.nan, pxx / xp.where(bad, 1.0, top))
    return [
        (f"bins_{config['bins']}", histogram_entropy(normalized, config["bins"]))
        for config in param
    ]


# --- Mexican hat (pywt "mexh") continuous wavelet transform ------------------------------------


@cache
def _mexh_kernel(scale: float) -> np.ndarray:
    """The integrated Mexican hat wavelet at ``scale``, as pywt.cwt convolves the data with."""
    import pywt

    int_psi, grid = pywt.integrate_wavelet(pywt.ContinuousWavelet("mexh"), precision=12)
    int_psi = np.asarray(int_psi, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    step = grid[1] - grid[0]
    j = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
    if j[-1] >= int_psi.size:
        j = np.extract(j < int_psi.size, j)
    kernel = np.ascontiguousarray(int_psi[j][::-1])
    if kernel.size < 2:
        raise ValueError(f"Selected scale of {scale} too small.")
    kernel.setflags(write=False)
    return kernel


def _mexh_cwt(x: Array, scale: float, coeffs: list[int]) -> Array:
    """pywt.cwt(row, scale, "mexh") at positions ``coeffs`` (each < L) for every row.

    pywt convolves with the integrated wavelet (full mode), takes -sqrt(scale) times the
    consecutive differences and keeps the centred L values; only the requested outputs are
    formed, each as two dot products with the data (a small matrix product).
    """
    xp = namespace(x)
    weights = _mexh_weights(scale, tuple(coeffs), x.shape[1])
    conv = xp.matmul(x[:, : weights.shape[0]], like(xp, weights, x))
    return -math.sqrt(scale) * (conv[:, 1::2] - conv[:, 0::2])


@lru_cache(maxsize=128)
def _mexh_weights(scale: float, coeffs: tuple[int, ...], length: int) -> np.ndarray:
    """The (rows, 2 * len(coeffs)) matrix of ``_mexh_cwt``'s dot products, per (scale,
    positions, series length): the same settings come back for every bucket."""
    kernel = _mexh_kernel(scale)
    size = kernel.size
    half = (size - 2) / 2  # pywt trims floor(half) values on the left
    offset = math.floor(half) if half > 0 else 0
    positions = [p for c in coeffs for p in (offset + c, offset + c + 1)]
    rows = min(length, max(positions) + 1)
    weights = np.zeros((rows, len(positions)))
    k = np.arange(rows)
    for column, position in enumerate(positions):
        lag = position - k
        valid = (lag >= 0) & (lag < size)
        weights[valid, column] = kernel[lag[valid]]
    weights.setflags(write=False)
    return weights


@combiner
def cwt_coefficients(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Coefficient ``coeff`` of the Mexican hat continuous wavelet transform at width ``w``.

    Matches tsfresh, which calls pywt.cwt(x, scales=widths, wavelet="mexh") (``w`` must be one
    of ``widths``); NaN when ``coeff`` is not below the series length, counted from the end
    when negative.
    """
    xp = namespace(x)
    length = x.shape[1]

    def position(coeff: int) -> int:  # tsfresh indexes the transform: negative from the end
        if coeff < -length:
            raise IndexError(f"coefficient {coeff} out of range for length {length}")
        return coeff + length if coeff < 0 else coeff

    wanted: dict[Any, list[int]] = {}
    for config in param:
        widths, w, coeff = tuple(config["widths"]), config["w"], config["coeff"]
        scale = widths[widths.index(w)]
        if coeff < length and position(coeff) not in wanted.setdefault(scale, []):
            wanted[scale].append(position(coeff))
    table: dict[tuple[Any, int], Array] = {}
    for scale, positions in wanted.items():
        if positions:
            values = _mexh_cwt(x, scale, positions)
            for i, at in enumerate(positions):
                table[scale, at] = values[:, i]
    result = []
    for config in param:
        widths, w, coeff = tuple(config["widths"]), config["w"], config["coeff"]
        scale = widths[widths.index(w)]
        values = table[scale, position(coeff)] if coeff < length else full(xp, x, math.nan)
        result.append((f"coeff_{coeff}__w_{w}__widths_{widths}", values))
    return result


# --- scipy.signal.find_peaks_cwt with the Ricker wavelet -----------------------------------------


def _ricker(points: int, a: Any) -> np.ndarray:
    """The Ricker wavelet, as tsfresh (and scipy's find_peaks_cwt) computes it."""
    amplitude = 2 / (np.sqrt(3 * a) * (np.pi**0.25))
    wsq = a**2
    vec = np.arange(0, points) - (points - 1.0) / 2
    xsq = vec**2
    mod = 1 - xsq / wsq
    gauss = np.exp(-xsq / (2 * wsq))
    return amplitude * mod * gauss


def _convolve_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``np.convolve(row, kernel, "same")`` for every row, bit for bit (kernel no longer than L).

    NumPy correlates with the reversed kernel: partial dot products at both edges and, in
    between, full-length dot products, or for kernels of at most 11 taps a plain running sum.
    Its dot products go through NumPy's dot function (BLAS ddot), as matmul's row-by-column
    products do, so those are formed with matmul. Ties between wavelet responses decide peaks,
    so the rounding must be NumPy's own (the parity tests compare bit-sensitive cases).
    """

    def dots(a: np.ndarray, v: np.ndarray) -> np.ndarray:  # a[..., :] . v, one ddot each
        return np.matmul(a[..., None, :], v[:, None])[..., 0, 0]

    rows, length = x.shape
    taps = kernel.size
    reversed_kernel = np.ascontiguousarray(kernel[::-1])
    left = taps // 2
    middle = length - taps + 1
    out = np.empty((rows, length))
    _convolve_edges(blas_ddot(), np.ascontiguousarray(x, dtype=np.float64), reversed_kernel, out)
    if taps <= 11:
        total = np.zeros((rows, middle))
        for j in range(taps):
            total += x[:, j : j + middle] * reversed_kernel[j]
        out[:, left : left + middle] = total
    else:
        windows = sliding_window_view(x, taps, axis=1)
        out[:, left : left + middle] = dots(windows, reversed_kernel)
    return out


@numba.njit(cache=True, nogil=True)
def _convolve_edges(
    ddot: Any, x: np.ndarray, reversed_kernel: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``_convolve_same``'s partial dot products at both edges of every row, one ``ddot``
    (``blas_ddot``) each, as NumPy forms them: from NumPy, each edge column is a call of its
    own, which on short buckets costs more than the transform."""
    rows, length = x.shape
    taps = reversed_kernel.size
    left = taps // 2
    middle = length - taps + 1
    size, step = np.empty(1, np.int32), np.ones(1, np.int32)
    for r in range(rows):
        row = x[r]
        for i in range(left):
            size[0] = taps - left + i
            tail = reversed_kernel[taps - size[0] :]
            out[r, i] = ddot(size.ctypes, row.ctypes, step.ctypes, tail.ctypes, step.ctypes)
        for i in range(taps - left - 1):
            size[0] = taps - 1 - i
            end = row[length - size[0] :]
            out[r, left + middle + i] = ddot(
                size.ctypes, end.ctypes, step.ctypes, reversed_kernel.ctypes, step.ctypes
            )


def _ricker_cwt(x: np.ndarray, n: int) -> np.ndarray:
    """scipy's find_peaks_cwt transform for widths 1..n: shape (series, n, L)."""
    rows, length = x.shape
    out = np.empty((rows, n, length))
    for width in np.arange(1, n + 1):
        points = min(10 * int(width), length)
        kernel = np.conj(_ricker(points, width)[::-1])
        out[:, width - 1, :] = _convolve_same(x, kernel)
    return out


@numba.njit(cache=True, nogil=True)
def _row_maxima(row: np.ndarray, out: np.ndarray) -> int:  # pragma: no cover - compiled
    count = 0
    for c in range(1, row.size - 1):
        if row[c] > row[c - 1] and row[c] > row[c + 1]:
            out[count] = c
            count += 1
    return count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _noise_floors(rows: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """find_peaks_cwt's noise: scipy.stats.scoreatpercentile(row[c - half : c + half + odd],
    10) for every row and column c, in a window of ceil(length / 20) columns clipped to the
    row (NaN sorts last, as in NumPy's sort).

    The window slides along the row as counts in a Fenwick tree over the row's value ranks,
    so each column costs two updates and two order-statistic lookups, O(log length), rather
    than a selection over the whole window; windows of at most ``_SORTED_WINDOW`` values are
    kept sorted instead (``_sorted_window_floors``), cheaper than ranking the row."""
    series, length = rows.shape
    size = math.ceil(length / 20)
    half, odd = size // 2, size % 2
    if size <= _SORTED_WINDOW:
        return _sorted_window_floors(rows, half, odd)
    top = 1
    while top * 2 <= length:
        top *= 2
    out = np.empty((series, length))
    tree = np.zeros(length + 1, np.int64)
    rank = np.empty(length, np.int64)
    values = np.empty(length)
    for s in range(series):
        row = rows[s]
        order = np.argsort(row)
        for i in range(length):  # loops, not fancy indexing: less to compile
            rank[order[i]] = i
            values[i] = row[order[i]]
            tree[i] = 0
        tree[length] = 0
        count, low, high = 0, 0, 0  # row[low:high] is counted in the tree
        for c in range(length):
            while high < min(c + half + odd, length):
                r = rank[high] + 1
                while r <= length:
                    tree[r] += 1
                    r += r & -r
                count += 1
                high += 1
            while low < max(c - half, 0):
                r = rank[low] + 1
                while r <= length:
                    tree[r] -= 1
                    r += r & -r
                count -= 1
                low += 1
            idx = 0.1 * (count - 1)
            i = int(idx)
            a = values[_kth(tree, top, length, i)]
            b = a if i == idx else values[_kth(tree, top, length, i + 1)]
            out[s, c] = _tenth_percentile(a, b, idx)
    return out


@numba.njit(cache=True, nogil=True)
def _tenth_percentile(a: float, b: float, idx: float) -> float:  # pragma: no cover - compiled
    """scoreatpercentile's value at ``idx`` = 0.1 (count - 1) between the order statistics
    a = v[int(idx)] and b = v[int(idx) + 1], in its arithmetic (a alone at a whole index)."""
    i = int(idx)
    if i == idx:
        return a
    lower = (i + 1) - idx
    upper = idx - i
    return (a * lower + b * upper) / (lower + upper)


_SORTED_WINDOW = 64  # values: above, the Fenwick tree's O(log length) steps are cheaper


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sorted_window_floors(
    rows: np.ndarray, half: int, odd: int
) -> np.ndarray:  # pragma: no cover - compiled
    """``_noise_floors`` with the window's values kept sorted (NaN last) as it slides: an
    insertion and a removal of O(window) per column."""
    series, length = rows.shape
    out = np.empty((series, length))
    window = np.empty(2 * half + odd + 1)
    for s in range(series):
        row = rows[s]
        count, low, high = 0, 0, 0  # window[:count] holds row[low:high], sorted
        for c in range(length):
            while high < min(c + half + odd, length):
                value = row[high]
                at = count
                while at > 0 and (math.isnan(window[at - 1]) or window[at - 1] > value):
                    if math.isnan(value):
                        break
                    window[at] = window[at - 1]
                    at -= 1
                window[at] = value
                count += 1
                high += 1
            while low < max(c - half, 0):
                value = row[low]
                at = 0
                while not (window[at] == value or (math.isnan(value) and math.isnan(window[at]))):
                    at += 1
                for j in range(at, count - 1):
                    window[j] = window[j + 1]
                count -= 1
                low += 1
            idx = 0.1 * (count - 1)
            i = int(idx)
            out[s, c] = _tenth_percentile(window[i], window[min(i + 1, count - 1)], idx)
    return out


@numba.njit(cache=True, nogil=True)
def _kth(tree: np.ndarray, top: int, length: int, k: int) -> int:  # pragma: no cover
    """The rank of the k-th (0-based) counted value in a Fenwick tree of counts."""
    position, remaining, step = 0, k + 1, top
    while step > 0:
        following = position + step
        if following <= length and tree[following] < remaining:
            position = following
            remaining -= tree[following]
        step //= 2
    return position


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _count_cwt_peaks(
    cwt: np.ndarray, noise: np.ndarray, n: int
) -> np.ndarray:  # pragma: no cover - compiled
    """scipy's ridge lines over rows 0..n-1 of each series' transform, filtered and counted.

    Lines start at the relative maxima of the highest row holding any and run down the rows;
    each maximum joins the line (in list order, first on ties) whose last column is nearest,
    if within (row + 1) / 4, else starts a line; a line that goes more than one row without a
    new maximum is closed. A line counts if it has ceil(n / 4) points or more and its lowest point's
    response over the noise there is not below 1 (``noise``: ``_noise_floor`` of each
    series' row 0, the width-1 response).
    """
    series, length = cwt.shape[0], cwt.shape[2]
    out = np.zeros(series)
    min_length = math.ceil(n / 4)
    gap_thresh = 1  # ceil(widths[0])
    capacity = n * length + 1
    last_col = np.empty(capacity, np.int64)
    last_row = np.empty(capacity, np.int64)
    gap = np.empty(capacity, np.int64)
    size = np.empty(capacity, np.int64)
    active = np.empty(capacity, np.int64)
    previous = np.empty(capacity, np.int64)
    first_at = np.full(length, -1, np.int64)  # first list position of a line ending at a column
    maxima = np.empty(length, np.int64)
    for s in range(series):
        m = cwt[s]
        start = -1
        for r in range(n - 1, -1, -1):
            if _row_maxima(m[r], maxima) > 0:
                start = r
                break
        if start < 0:
            continue
        lines = 0
        n_active = 0
        found = _row_maxima(m[start], maxima)
        for q in range(found):
            last_col[lines], last_row[lines], gap[lines], size[lines] = maxima[q], start, 0, 1
            active[n_active] = lines
            n_active += 1
            lines += 1
        accepted = 0
        for row in range(start - 1, -2, -1):
            if row >= 0:
                n_previous = n_active
                for a in range(n_previous - 1, -1, -1):
                    gap[active[a]] += 1
                    previous[a] = last_col[active[a]]
                    first_at[previous[a]] = a
                found = _row_maxima(m[row], maxima)
                max_distance = (row + 1) / 4.0
                for q in range(found):
                    col = maxima[q]
                    best = -1
                    distance = 0
                    while best < 0 and distance <= max_distance:
                        if col - distance >= 0:
                            best = first_at[col - distance]
                        if col + distance < length:
                            other = first_at[col + distance]
                            if other >= 0 and (best < 0 or other < best):
                                best = other
                        distance += 1
                    if best >= 0:
                        line = active[best]
                        last_col[line], last_row[line], gap[line] = col, row, 0
                        size[line] += 1
                    else:
                        last_col[lines], last_row[lines], gap[lines], size[lines] = col, row, 0, 1
                        active[n_active] = lines
                        n_active += 1
                        lines += 1
                for a in range(n_previous):
                    first_at[previous[a]] = -1
            kept = 0
            for a in range(n_active):
                line = active[a]
                if row >= 0 and gap[line] <= gap_thresh:
                    active[kept] = line
                    kept += 1
                elif size[line] >= min_length:
                    c = last_col[line]
                    if not abs(m[last_row[line], c] / noise[s, c]) < 1:
                        accepted += 1
            n_active = kept
        out[s] = accepted
    return out


@combiner
def number_cwt_peaks(x: Array, param: list[dict[str, Any]]) -> list[tuple[str, Array]]:
    """Number of peaks found by scipy.signal.find_peaks_cwt with Ricker widths 1..n.

    Ridge lines of relative maxima across the widths, kept when at least ceil(n / 4) long and
    with a signal-to-noise ratio of at least 1 (noise: 10th percentile of the width-1 response
    in a window of ceil(L / 20)). Ties between responses decide peaks, so the transform
    reproduces NumPy's convolution rounding exactly; the ridge tracking is sequential, compiled
    with numba and run on the host (CuPy input is copied there and the result copied back).
    One transform for all ``n``.
    """
    xp = namespace(x)
    host = _to_host(x)
    ns = [int(config["n"]) for config in param]
    n_max = max(ns)
    counts = {n: np.empty(host.shape[0]) for n in ns}
    chunk = max(1, (1 << 23) // max(1, n_max * host.shape[1]))  # ~64 MiB of transform
    for lo in range(0, host.shape[0], chunk):
        cwt = _ricker_cwt(host[lo : lo + chunk], n_max)
        noise = _noise_floors(cwt[:, 0, :])
        for n in counts:
            counts[n][lo : lo + chunk] = _count_cwt_peaks(cwt, noise, n)
    return [(f"n_{n}", like(xp, counts[n], x)) for n in ns]
