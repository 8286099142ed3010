"""Run plugin feature calculators beside an extractor, isolated per (era, sensor, calculator).

Series calculators are called once per (era, sensor) series; batch calculators once per bucket
of equal-length series (the buckets the native kernels get), one value per row. A calculator
that raises gives NaN for that feature of that series and a warning (``on_error="nan"``, the
default), or fails the era (``on_error="fail"``); a batch call that raises is redone row by
row, so only the series it fails on get NaN.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from array_api_compat import numpy as array_numpy

from ..errors import StreamfxError
from ..model import FEATURES_SCHEMA
from .calculators import CALCULATORS, param_suffix
from .extractor import FeatureCalculator
from .feature_sets import TSFRESH_CALCULATORS, FCParameters, feature_set
from .series import buckets, sorted_series

log = logging.getLogger(__name__)

_SCHEMA = {"era_id": pl.String, "sensor": pl.String, "feature": pl.String, "value": pl.Float64}


class CalculatorFailed(Exception):
    """A plugin calculator raised and the pipeline asked to fail the era."""


def _features(name: str, params: list[dict[str, Any]] | None) -> Iterator[tuple[str, dict]]:
    """(feature name, parameter set) for each parameter set of a calculator (tsfresh's names)."""
    for param in params or [{}]:
        yield (f"{name}__{param_suffix(param)}" if param else name), param


class _Failures:
    """What to do when a calculator raises: NaN and a warning, or fail the era."""

    def __init__(self, on_error: str, warnings_out: list[str] | None) -> None:
        self.on_error = on_error
        self.warnings_out = warnings_out

    def value(
        self, where: tuple[str, str, str], function: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> float:
        """``function(*args, **kw)`` as a float; NaN (or the era failed) when it raises.
        ``where`` is (calculator, era_id, sensor)."""
        try:
            return float(function(*args, **kw))
        except Exception as exc:
            self.failed(exc, *where)
            return float("nan")

    def failed(self, exc: Exception, name: str, era_id: str, sensor: str) -> None:
        message = (
            f"calculator {name!r} failed on era {era_id}, sensor {sensor}: "
            f"{type(exc).__name__}: {exc}"
        )
        if self.on_error == "fail":
            raise CalculatorFailed(message) from exc
        log.warning(message)
        if self.warnings_out is not None:
            self.warnings_out.append(message)


def run_plugin_calculators(
    readings: pa.Table,
    settings: Mapping[str, FCParameters],
    calculators: Mapping[str, FeatureCalculator],
    *,
    on_error: str = "nan",
    warnings_out: list[str] | None = None,
) -> pa.Table:
    """FEATURES_SCHEMA rows of plugin calculators for each (era, sensor) series."""
    if not settings or readings.num_rows == 0:
        return FEATURES_SCHEMA.empty_table()
    by_kind: dict[str, dict[str, dict[str, Any]]] = {"series": {}, "batch": {}}
    for sensor, wanted in settings.items():
        for name, params in wanted.items():
            calculator = calculators[name]
            chosen = by_kind[calculator.kind].setdefault(sensor, {})
            chosen[name] = params if params is not None else calculator.params
    readings = readings.filter(pc.is_in(readings["sensor"], pa.array(list(settings))))
    frame, series = sorted_series(readings)
    run = _Run(frame, series, calculators, _Failures(on_error, warnings_out))
    parts = run.per_series(by_kind["series"]) + run.batched(by_kind["batch"])
    if not parts:
        return FEATURES_SCHEMA.empty_table()
    return pl.concat(parts).to_arrow().cast(FEATURES_SCHEMA)


class _Run:
    """One pass's series (sorted readings and their layout) and the calculators to run on them."""

    def __init__(
        self,
        frame: pl.DataFrame,
        series: pl.DataFrame,
        calculators: Mapping[str, FeatureCalculator],
        failures: _Failures,
    ) -> None:
        self.frame = frame
        self.series = series
        self.values = frame["value"].to_numpy()
        self.calculators = calculators
        self.failures = failures

    def per_series(self, settings: Mapping[str, Mapping[str, Any]]) -> list[pl.DataFrame]:
        """Series calculators: one call per (era, sensor) series, with its times."""
        if not settings:
            return []
        values, times = self.values, self.frame["time"].dt.replace_time_zone(None).to_numpy()
        rows: dict[str, list[Any]] = {"era_id": [], "sensor": [], "feature": [], "value": []}
        wanted = self.series.filter(pl.col("sensor").is_in(list(settings)))
        for era_id, sensor, offset, length in wanted.select(
            "era_id", "sensor", "offset", "length"
        ).iter_rows():
            x, t = values[offset : offset + length], times[offset : offset + length]
            for name, params in settings[sensor].items():
                function = self.calculators[name].function
                for feature, param in _features(name, params):
                    rows["era_id"].append(era_id)
                    rows["sensor"].append(sensor)
                    rows["feature"].append(feature)
                    where = (name, era_id, sensor)
                    rows["value"].append(self.failures.value(where, function, x, t, **param))
        return [pl.DataFrame(rows, schema=_SCHEMA)] if rows["era_id"] else []

    def batched(self, settings: Mapping[str, Mapping[str, Any]]) -> list[pl.DataFrame]:
        """Batch calculators: one call per bucket of equal-length series wanting a feature."""
        features: dict[tuple[str, str], tuple[dict[str, Any], list[str]]] = {}
        for sensor, wanted in settings.items():  # which sensors want each (calculator, params)
            for name, params in wanted.items():
                for feature, param in _features(name, params):
                    features.setdefault((name, feature), (param, []))[1].append(sensor)
        parts = []
        for (name, feature), (param, sensors) in features.items():
            function = self.calculators[name].function
            members = self.series.filter(pl.col("sensor").is_in(sensors))
            for _, bucket, x in buckets(members, self.values, array_numpy):
                column = _batch_values(function, x, param, name, bucket, self.failures)
                parts.append(
                    bucket.select("era_id", "sensor").with_columns(
                        pl.lit(feature).alias("feature"),
                        pl.Series("value", column, dtype=pl.Float64),
                    )
                )
        return parts


def _batch_values(
    function: Callable[..., Any],
    x: np.ndarray,
    param: dict[str, Any],
    name: str,
    bucket: pl.DataFrame,
    failures: _Failures,
) -> np.ndarray:
    """One value per row of ``x``; when the call raises, each row alone (NaN where it fails)."""
    try:
        column = np.asarray(function(x, **param), dtype=np.float64).reshape(-1)
        if column.shape == (x.shape[0],):
            return column
        problem: Exception = ValueError(
            f"returned {column.shape[0]} values for {x.shape[0]} series"
        )
    except CalculatorFailed:
        raise
    except Exception as exc:
        problem = exc
    if x.shape[0] == 1:
        era_id, sensor = bucket.row(0)[:2]
        failures.failed(problem, name, era_id, sensor)
        return np.full(1, np.nan)
    keys = bucket.select("era_id", "sensor").iter_rows()
    return np.array(
        [
            failures.value((name, era_id, sensor), _first, function, x[i : i + 1], **param)
            for i, (era_id, sensor) in enumerate(keys)
        ]
    )


def _first(function: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """The one value a batch calculator returns for a batch of one series."""
    return np.asarray(function(*args, **kw)).reshape(-1)[0]


#: Keys tsfresh's combiners read with a default, which its parameter grids leave out.
_OPTIONAL_KEYS = {
    "augmented_dickey_fuller": {"autolag"},
    "query_similarity_count": {"query", "threshold", "normalize"},
}


def calculator_parameters(
    name: str, plugin: FeatureCalculator | None
) -> tuple[frozenset[str], frozenset[str]] | None:
    """(allowed, required) parameter names of a calculator; None when it takes any.

    A plugin's and a simple tsfresh calculator's are their function's keyword parameters
    (after the series arguments); a tsfresh combiner takes one list of dicts, whose keys are
    those of tsfresh's own comprehensive grid for it (plus the few it reads with a default)."""
    if plugin is None:
        return _tsfresh_parameters(name)
    return _keyword_parameters(plugin.function, 2 if plugin.kind == "series" else 1)


@functools.cache
def _tsfresh_parameters(name: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """``calculator_parameters`` of a tsfresh calculator (once per process: the API checks its
    settings on every call)."""
    from tsfresh.feature_extraction import feature_calculators as tsfresh

    function = getattr(tsfresh, name)
    if getattr(function, "fctype", "simple") == "combiner":
        grid = feature_set("comprehensive").get(name) or [{}]
        optional = _OPTIONAL_KEYS.get(name, set())
        allowed = frozenset().union(*grid) | optional
        return allowed, frozenset.intersection(*map(frozenset, grid)) - optional
    return _keyword_parameters(function, 1)


def _keyword_parameters(function: Any, skip: int) -> tuple[frozenset[str], frozenset[str]] | None:
    """(allowed, required) keyword parameters of ``function`` after its ``skip`` series
    arguments; None when it takes any."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return frozenset(p.name for p in named), frozenset(
        p.name for p in named if p.default is p.empty
    )


def _check_parameters(
    name: str, params: Any, defaults: Any, plugin: FeatureCalculator | None, where: str
) -> None:
    """Each parameter set names only parameters the calculator has, and all it needs (else
    every era would fail the same way, after ``validate`` said the file was fine). ``null``
    means a plugin's default grid, and no parameters for a tsfresh calculator."""
    if params is None:
        params = defaults or [{}]
    expected = calculator_parameters(name, plugin)
    if expected is None:
        return
    allowed, required = expected
    for i, param in enumerate(params):
        unknown = sorted(set(param) - allowed)
        missing = sorted(required - set(param))
        known = f"(parameters: {', '.join(sorted(allowed)) or 'none'})"
        if unknown:
            raise StreamfxError(
                f"{where}.{name}[{i}]: calculator {name!r} has no parameter {unknown[0]!r} {known}"
            )
        if missing:
            raise StreamfxError(
                f"{where}.{name}[{i}]: calculator {name!r} needs parameter {missing[0]!r} {known}"
            )


#: (calculator, parameter set) pairs known to be accepted by tsfresh: its own grids, and
#: what ``_check_values`` has seen it accept in this process.
_ACCEPTED: set[tuple[str, str]] = set()


def _accepted_key(name: str, param: Mapping[str, Any]) -> tuple[str, str]:
    return name, repr(sorted(param.items(), key=lambda item: item[0]))


def _check_values(name: str, params: Any, where: str) -> None:
    """Each parameter set's values are ones tsfresh accepts: tsfresh's own calculator runs on
    a probe series (a random walk of 100 values) and what it raises is the error, as
    ``tsfresh.extract_features`` would raise it for every series. tsfresh's own grids are
    known good; calculators tsfresh skips (SKIPPED_BY_TSFRESH) are not probed."""
    import warnings

    from tsfresh.feature_extraction import feature_calculators as tsfresh

    from .calculators import SKIPPED_BY_TSFRESH

    if not params or name in SKIPPED_BY_TSFRESH:
        return
    if not _ACCEPTED:
        for known, grid in feature_set("comprehensive").items():
            _ACCEPTED.update(_accepted_key(known, p) for p in grid or [])
    function = getattr(tsfresh, name)
    probe = np.random.default_rng(0).normal(size=100).cumsum()
    for i, param in enumerate(params):
        key = _accepted_key(name, param)
        if key in _ACCEPTED:
            continue
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if getattr(function, "fctype", "simple") == "combiner":
                    list(function(probe, param=[param]))
                else:
                    function(probe, **param)
        except Exception as exc:  # whatever tsfresh raises is the user's error
            raise StreamfxError(
                f"{where}.{name}[{i}]: tsfresh refuses {dict(param)}: "
                f"{type(exc).__name__}: {str(exc).strip() or 'invalid value'}"
            ) from exc
        _ACCEPTED.add(key)


@functools.cache
def _tsfresh_grids() -> dict[str, Any]:
    """tsfresh's parameter grids by calculator (ComprehensiveFCParameters')."""
    return dict(feature_set("comprehensive"))


def _is_tsfresh_grid(name: str, params: Any) -> bool:
    """Whether ``params`` is tsfresh's own grid for ``name`` (an array among the values, as
    a query, cannot be compared: not the grid)."""
    try:
        return bool(params == _tsfresh_grids().get(name, ()))
    except (ValueError, TypeError):
        return False


def check_calculators(settings: Mapping[Any, Any], where: str) -> None:
    """Every calculator name is tsfresh's, a native kernel's or a plugin's, and every
    parameter set fits the calculator's parameters."""
    from ..plugins.manager import feature_calculators

    plugin = feature_calculators()
    for name, params in settings.items():
        if callable(name):
            continue
        if name in plugin:
            _check_parameters(name, params, plugin[name].params, plugin[name], where)
        elif isinstance(name, str) and name in TSFRESH_CALCULATORS:
            if _is_tsfresh_grid(name, params):
                continue  # as tsfresh's own settings pass it: known good
            _check_parameters(name, params, None, None, where)  # null: called without any
            _check_values(name, params, where)
        elif name not in CALCULATORS:
            raise StreamfxError(f"{where}: unknown feature calculator {name!r}")
