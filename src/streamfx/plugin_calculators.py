"""Run plugin feature calculators beside an extractor, isolated per (era, sensor, calculator).

A plugin calculator that raises on one series gives NaN for that feature of that era and a
warning (``on_error="nan"``, the default), or fails the era (``on_error="fail"``); the other
features are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from .calculators import param_suffix
from .errors import StreamfxError
from .extract import Extractor, FCParameters, FeatureCalculator, split_plugin_calculators
from .model import FEATURES_SCHEMA

log = logging.getLogger(__name__)


class CalculatorFailed(Exception):
    """A plugin calculator raised and the pipeline asked to fail the era."""


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
    frame = (
        pl.from_arrow(readings)
        .filter(pl.col("sensor").is_in(list(settings)) & pl.col("value").is_not_nan())
        .sort("era_id", "sensor", "time")
    )
    rows: dict[str, list[Any]] = {"era_id": [], "sensor": [], "feature": [], "value": []}
    for (era_id, sensor), series in frame.group_by("era_id", "sensor", maintain_order=True):
        values = series["value"].to_numpy()
        times = series["time"].dt.replace_time_zone(None).to_numpy()
        for name, params in settings[sensor].items():
            calculator = calculators[name]
            for param in params or [{}]:
                feature = f"{name}__{param_suffix(param)}" if param else name
                try:
                    if calculator.kind == "batch":
                        value = float(np.asarray(calculator.function(values[None, :], **param))[0])
                    else:
                        value = float(calculator.function(values, times, **param))
                except Exception as exc:
                    message = (
                        f"calculator {name!r} failed on era {era_id}, sensor {sensor}: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    if on_error == "fail":
                        raise CalculatorFailed(message) from exc
                    log.warning(message)
                    if warnings_out is not None:
                        warnings_out.append(message)
                    value = float("nan")
                rows["era_id"].append(era_id)
                rows["sensor"].append(sensor)
                rows["feature"].append(feature)
                rows["value"].append(value)
    return pa.table(rows, schema=FEATURES_SCHEMA)


def extract_all(
    extractor: Extractor,
    readings: pa.Table,
    fc_parameters: Mapping[str, FCParameters],
    *,
    n_jobs: int = 0,
    on_error: str = "nan",
    warnings_out: list[str] | None = None,
) -> pa.Table:
    """The extractor's features plus the plugin calculators named in the same settings."""
    from .plugins import feature_calculators

    calculators = feature_calculators()
    builtin, plugin = split_plugin_calculators(fc_parameters, calculators)
    parts = []
    if builtin:
        parts.append(extractor.extract(readings, builtin, n_jobs=n_jobs))
    if plugin:
        parts.append(
            run_plugin_calculators(
                readings, plugin, calculators, on_error=on_error, warnings_out=warnings_out
            )
        )
    if not parts:
        return FEATURES_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def check_calculators(settings: Mapping[Any, Any], where: str) -> None:
    """Every calculator name is tsfresh's or a plugin's."""
    from .feature_sets import TSFRESH_CALCULATORS
    from .plugins import feature_calculators

    plugin = feature_calculators()
    for name in settings:
        if callable(name) or name in plugin:
            continue
        if not (isinstance(name, str) and name in TSFRESH_CALCULATORS):
            raise StreamfxError(f"{where}: unknown feature calculator {name!r}")
