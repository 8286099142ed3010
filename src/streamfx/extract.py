"""The extractor interface and the feature sets every extractor understands.

An extractor turns long readings (``model.READINGS_SCHEMA``, any number of eras) into long
features (``model.FEATURES_SCHEMA``), computing for each sensor the tsfresh-style calculators
of its feature set. Extractors register through the ``register_extractors`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from .errors import StreamfxError

#: tsfresh's settings format: calculator name -> list of parameter dicts, or None when it takes none.
FCParameters = Mapping[str, list[dict[str, Any]] | None]


@runtime_checkable
class Extractor(Protocol):
    """Computes features for every (era, sensor) series in a batch of readings."""

    name: str
    description: str

    def extract(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> pa.Table:
        """Return FEATURES_SCHEMA rows for ``readings`` (READINGS_SCHEMA).

        ``fc_parameters`` maps each sensor to its calculators; sensors absent from it are
        skipped. ``n_jobs`` is the extractor's own parallelism (0 = in this process).
        """
        ...


def feature_set(spec: str | FCParameters) -> dict[str, list[dict[str, Any]] | None]:
    """Resolve a feature-set name (minimal, efficient, comprehensive) or a tsfresh dict."""
    from .feature_sets import feature_sets

    if not isinstance(spec, str):
        return dict(spec)
    sets = feature_sets()
    if spec not in sets:
        raise StreamfxError(
            f"unknown feature set {spec!r}: expected one of {', '.join(sets)} or a dict of calculators"
        )
    return sets[spec]


@dataclass(frozen=True)
class FeatureCalculator:
    """A feature calculator contributed by a plugin (``register_feature_calculators`` hook).

    Use its ``name`` in any feature set like a tsfresh calculator (in pipeline.yaml sensor
    rules, or in ``streamfx.extract_features`` settings dicts); ``params`` is the default
    parameter grid when a set names it without parameters.

    - ``kind="series"``: ``function(values, times, **param) -> float`` on one series (float64
      values and datetime64[us] UTC times, sorted by time).
    - ``kind="batch"``: ``function(x, **param) -> array`` on a 2-D array of equal-length series
      (NumPy), one value per row.

    Feature names follow tsfresh: ``name`` or ``name__key_value__...`` for each parameter set.
    """

    name: str
    function: Callable[..., Any]
    params: list[dict[str, Any]] | None = None
    kind: Literal["series", "batch"] = "series"
    description: str = ""


def split_plugin_calculators(
    fc_parameters: Mapping[str, FCParameters],
    calculators: Mapping[str, FeatureCalculator],
) -> tuple[dict[str, FCParameters], dict[str, FCParameters]]:
    """Split each sensor's settings into (built-in tsfresh calculators, plugin calculators)."""
    builtin: dict[str, FCParameters] = {}
    plugin: dict[str, FCParameters] = {}
    for sensor, settings in fc_parameters.items():
        mine = {k: v for k, v in settings.items() if isinstance(k, str) and k in calculators}
        rest = {k: v for k, v in settings.items() if k not in mine}
        if rest:
            builtin[sensor] = rest
        if mine:
            plugin[sensor] = {
                k: (v if v is not None else calculators[k].params) for k, v in mine.items()
            }
    return builtin, plugin
