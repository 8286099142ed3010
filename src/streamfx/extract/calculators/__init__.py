"""streamfx's own feature calculators: tsfresh's, vectorized over many series at once.

Modeled on tsfresh's ``feature_calculators`` module: one documented function per calculator,
named as tsfresh names it, giving tsfresh's values. Each takes ``x``, a 2-D array of shape
(series, samples) holding equal-length series (the extractor buckets series by length), from
NumPy or CuPy, and is written once against the array API (``xp = array_namespace(x)``), so the
CPU (NumPy) and the GPU (CuPy) run the same code.

- ``@simple`` calculators return one value per series, shape (series,); parametrised ones take
  the parameters as keyword arguments, one call per parameter set, like tsfresh's.
- ``@combiner`` calculators take ``param`` (the list of parameter sets) and return a list of
  (name suffix, values) pairs, like tsfresh's combiners.

``CALCULATORS`` maps each ported calculator's name to it; anything else falls back to tsfresh.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numba
from array_api_compat import array_namespace, is_numpy_array

Array = Any  # a NumPy or CuPy array


@dataclass(frozen=True)
class Calculator:
    name: str
    fctype: Literal["simple", "combiner"]
    function: Callable[..., Any]
    #: Which parameter sets the kernel computes (None: all that tsfresh accepts).
    accepts: Callable[[Mapping[str, Any]], bool] | None = None

    def computes(self, params: list[dict[str, Any]] | None) -> bool:
        """Whether the kernel computes every one of ``params``; if not, tsfresh computes the
        calculator (all its parameter sets, so the columns keep tsfresh's order)."""
        return self.accepts is None or not params or all(self.accepts(p) for p in params)


CALCULATORS: dict[str, Calculator] = {}
Accepts = Callable[[Mapping[str, Any]], bool]


def simple(function: Callable[..., Array]) -> Callable[..., Array]:
    """Register a calculator that returns one value per series."""
    CALCULATORS[function.__name__] = Calculator(function.__name__, "simple", function)
    return function


def combiner(
    function: Callable[..., list[tuple[str, Array]]] | None = None,
    *,
    accepts: Accepts | None = None,
) -> Any:
    """Register a calculator that returns (name suffix, values) pairs for a parameter list
    (``accepts``: see Calculator)."""

    def register(function: Callable[..., list[tuple[str, Array]]]) -> Callable[..., Any]:
        CALCULATORS[function.__name__] = Calculator(
            function.__name__, "combiner", function, accepts
        )
        return function

    return register(function) if function is not None else register


_SUFFIXES: dict[int, tuple[Mapping[str, Any], dict[str, Any], str]] = {}


def param_suffix(param: Mapping[str, Any]) -> str:
    """tsfresh's column suffix for one parameter set: sorted ``key_value`` joined by ``__``.

    Remembered per parameter-set object (and its contents, should it change): the same
    settings come back for every bucket.
    """
    entry = _SUFFIXES.get(id(param))
    if entry is not None and entry[0] is param and entry[1] == param:
        return entry[2]
    suffix = _param_suffix(param)
    if len(_SUFFIXES) > 100_000:
        _SUFFIXES.clear()
    _SUFFIXES[id(param)] = (param, dict(param), suffix)
    return suffix


def _param_suffix(param: Mapping[str, Any]) -> str:
    return "__".join(
        f'{key}_"{value}"' if isinstance(value, str) else f"{key}_{value}"
        for key, value in sorted(param.items())
    )


#: Intermediates shared by the calculators of the batch ``compute`` is working on, by id of
#: the batch: (the batch itself, {key: value}, its settings). See ``shared``.
_SHARED: dict[int, tuple[Array, dict[Any, Any], Mapping[str, Any]]] = {}


def shared(x: Array, key: Any, make: Callable[[], Any]) -> Any:
    """``make()``, computed once per batch while ``compute`` runs over ``x``.

    Calculators that need the same intermediate (sorted rows, the mean, an FFT, a fitted model)
    ask for it under the same ``key``; outside ``compute`` (a calculator called on its own)
    it is simply computed. Shared values must be treated as read-only.
    """
    entry = _SHARED.get(id(x))
    if entry is None or entry[0] is not x:
        return make()
    cache = entry[1]
    if key not in cache:
        cache[key] = make()
    return cache[key]


def batch_settings(x: Array) -> Mapping[str, Any]:
    """The settings ``compute`` is running over ``x`` with (empty outside it): a calculator
    that can serve another's parameters from the same pass (see ``shared``) looks them up."""
    entry = _SHARED.get(id(x))
    return entry[2] if entry is not None and entry[0] is x else {}


def compute(
    x: Array, fc_parameters: Mapping[str, list[dict[str, Any]] | None]
) -> Iterator[tuple[str, Array]]:
    """Yield (feature name without the sensor prefix, values per series) for ported calculators.

    Calculators in ``fc_parameters`` that are not ported are skipped; see ``split_settings``.
    Intermediates requested through ``shared`` are computed once for the whole batch.
    """
    _SHARED[id(x)] = (x, {}, fc_parameters)
    try:
        for name, params in fc_parameters.items():
            calculator = CALCULATORS.get(name)
            if calculator is None:
                continue
            if calculator.fctype == "combiner":
                for suffix, values in calculator.function(x, param=params):
                    yield f"{name}__{suffix}", values
            elif params:
                for param in params:
                    yield f"{name}__{param_suffix(param)}", calculator.function(x, **param)
            else:
                yield name, calculator.function(x)
    finally:
        _SHARED.pop(id(x), None)


#: tsfresh computes these only for series with a DatetimeIndex, which its long-format input
#: never has, so tsfresh.extract_features (and therefore streamfx) yields nothing for them.
SKIPPED_BY_TSFRESH = frozenset({"linear_trend_timewise"})

Settings = dict[Any, list[dict[str, Any]] | None]


def split_settings(
    fc_parameters: Mapping[Any, list[dict[str, Any]] | None], plugin: Collection[str] = ()
) -> tuple[Settings, Settings, Settings]:
    """The one splitter of a sensor's settings: (native kernels, ``plugin`` calculators, left
    to tsfresh), each in the settings' order. A calculator with a parameter set its kernel
    does not compute (``Calculator.computes``) is left to tsfresh. Calculators tsfresh skips
    (SKIPPED_BY_TSFRESH) are in none of them."""
    native: Settings = {}
    plugins: Settings = {}
    rest: Settings = {}
    for name, params in fc_parameters.items():
        if isinstance(name, str) and name in plugin:
            plugins[name] = params
        elif name in CALCULATORS and CALCULATORS[name].computes(params):
            native[name] = params
        elif name not in SKIPPED_BY_TSFRESH:
            rest[name] = params
    return native, plugins, rest


_CONTROLLER: list[Any] = []  # threadpoolctl's controller, found once (a scan of the libraries)
_LIMITED = [0]  # contexts of one_blas_thread open now: the limit is the process's


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """A context in which BLAS and LAPACK run on one thread.

    The calculators' matrix products and stacked factorisations are small (series × samples,
    a few dozen columns): OpenBLAS's threads only spin on them, several times slower than one
    thread (tens of times on a busy machine). The libraries are looked up once per process (a
    ``threadpool_limits`` per call would scan them each time, which costs more than the small
    problems themselves), and a context opened inside another (a calculator's, within the
    extractor's) does nothing: setting the limit again costs 0.1 ms. A no-op without
    threadpoolctl.
    """
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with tsfresh's scikit-learn
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    controller = _CONTROLLER[0]
    if controller is None or _LIMITED[0]:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        _LIMITED[0] += 1
        try:
            yield
        finally:
            _LIMITED[0] -= 1


_NAMESPACES: dict[type, Any] = {}  # by array type: the namespace depends on nothing else


def namespace(x: Array) -> Any:
    """The array-API namespace of ``x`` (NumPy's or CuPy's), looked up once per array type
    (every calculator asks for it: ``array_namespace`` costs microseconds per call)."""
    xp = _NAMESPACES.get(type(x))
    if xp is None:
        xp = _NAMESPACES[type(x)] = array_namespace(x)
    return xp


def host(x: Array) -> Any:
    """``x`` as a NumPy array, its dtype kept (CuPy arrays copy back with ``.get()``)."""
    get = getattr(x, "get", None)
    return get() if callable(get) else x


@numba.njit(cache=True, nogil=True)
def search_left(edges: Any, count: int, value: float) -> int:  # pragma: no cover - compiled
    """``np.searchsorted(edges[:count], value, side="left")`` inside numba kernels: numba's own
    takes ``side`` as a string, and compiling its string support cost 2-3 s per machine."""
    low, high = 0, count
    while low < high:
        middle = (low + high) // 2
        if edges[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


@numba.njit(cache=True, nogil=True)
def linspace_into(edges: Any, first: float, last: float) -> None:  # pragma: no cover - compiled
    """``np.linspace(first, last, len(edges))`` into ``edges``, operation for operation (its
    path for a step too small to be non-zero included): histogram and binning edges as
    NumPy's, to the bit."""
    bins = len(edges) - 1
    delta = last - first
    step = delta / bins
    for b in range(bins):
        edges[b] = ((b / bins) * delta if step == 0 else b * step) + first
    edges[bins] = last


@functools.cache
def blas_ddot() -> Any:
    """BLAS ``ddot`` (SciPy's OpenBLAS, the build NumPy's dot calls) as a ctypes function, for
    compiled kernels to call with pointers where NumPy's (and so statsmodels' and SciPy's)
    results come from dot products: passed as an argument rather than read as a global, so
    that the kernels stay cacheable."""
    import ctypes

    from numba.extending import get_cython_function_address

    size, values = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double)
    function = ctypes.CFUNCTYPE(ctypes.c_double, size, values, size, values, size)
    return function(get_cython_function_address("scipy.linalg.cython_blas", "ddot"))


def to_host(array: Array) -> Any:
    """A float64 NumPy array of ``array`` (the extractors' way off the device)."""
    import numpy as np

    return np.asarray(host(array), dtype=np.float64)


def like(xp: Any, values: Any, x: Array) -> Array:
    """Host ``values`` in ``x``'s namespace (back on ``x``'s device for CuPy)."""
    return values if is_numpy_array(x) else xp.asarray(values)


def as_float(xp: Any, a: Array) -> Array:
    """``a`` as float64 (booleans as 0.0 and 1.0, counts and indexes as floats)."""
    return xp.astype(a, xp.float64)


def full(xp: Any, x: Array, value: float) -> Array:
    """One float64 ``value`` per series of ``x``."""
    return xp.full((x.shape[0],), value, dtype=xp.float64)


# Importing the families registers their calculators.
for _module in ("statistics", "changes", "spectral", "models"):
    importlib.import_module(f"{__name__}.{_module}")
