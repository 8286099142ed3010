"""The features of one pass of eras: the extractor's, the plugin calculators', rolling windows'.

This is where the extract stage comes together. A worker hands it a pass's readings; the
sensor classes say which calculators each sensor gets (its feature set plus its rules' extra
calculators) and which get rolling windows (the GPU-suitable ones). Gaps are filled first when
``stages.extract.fill`` asks (:func:`fill_gaps`). Built-in calculators go to the extractor,
plugin calculators run beside it, and rolling windows run on the extractor's array namespace,
so on the GPU lane they stay on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from ..model import FEATURES_SCHEMA, READINGS_SCHEMA
from .calculators import split_settings
from .extractor import BlockExtractor, Extractor, FeatureBlock
from .feature_sets import FCParameters
from .plugin_calculators import run_plugin_calculators
from .rolling import rolling_features

if TYPE_CHECKING:
    from ..classify.classifier import Classifier


def fill_gaps(readings: pa.Table, fill: str) -> pa.Table:
    """Each sensor's readings on its era's time grid, gaps filled (``stages.extract.fill``).

    The grid is the union of the era's timestamps over its sensors, as the reference pivoted an
    era to one row per timestamp: a sensor without a reading where another sensor has one has a
    gap there (so has a null or NaN reading the source dropped). ``ffill`` carries each sensor's
    last reading forward, so the grid's timestamps before its first reading stay without one;
    ``ffill_bfill`` then carries its first reading back over them. A sensor without readings in
    an era stays without. Rows keep READINGS_SCHEMA's order: era (as given), sensor, time.
    """
    if fill == "none" or readings.num_rows == 0:
        return readings
    frame = pl.from_arrow(readings)
    assert isinstance(frame, pl.DataFrame)
    eras = frame.select(pl.col("era_id").unique(maintain_order=True)).with_row_index("order")
    grid = (
        frame.select("era_id", "sensor")
        .unique()
        .join(frame.select("era_id", "time").unique(), on="era_id")
        .join(eras, on="era_id")
    )
    value = pl.col("value").forward_fill()
    if fill == "ffill_bfill":
        value = value.backward_fill()
    filled = (
        grid.join(frame, on=["era_id", "sensor", "time"], how="left")
        .sort("order", "sensor", "time")
        .with_columns(value.over("era_id", "sensor"))
        .drop_nulls("value")
    )
    return filled.select(READINGS_SCHEMA.names).to_arrow().cast(READINGS_SCHEMA)


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
    _, table = _extract(
        extractor, readings, fc_parameters, n_jobs, on_error, warnings_out, as_blocks=False
    )
    return table


def extract_all_blocks(
    extractor: Extractor,
    readings: pa.Table,
    fc_parameters: Mapping[str, FCParameters],
    *,
    n_jobs: int = 0,
    on_error: str = "nan",
    warnings_out: list[str] | None = None,
) -> tuple[list[FeatureBlock], pa.Table]:
    """``extract_all``'s features as the extractor's blocks, where it gives them (a
    BlockExtractor), and FEATURES_SCHEMA rows of the rest (its other features and the plugin
    calculators'): for a consumer that wants one row per series."""
    return _extract(
        extractor, readings, fc_parameters, n_jobs, on_error, warnings_out, as_blocks=True
    )


def _extract(
    extractor: Extractor,
    readings: pa.Table,
    fc_parameters: Mapping[str, FCParameters],
    n_jobs: int,
    on_error: str,
    warnings_out: list[str] | None,
    *,
    as_blocks: bool,
) -> tuple[list[FeatureBlock], pa.Table]:
    builtin, plugin, calculators = _split_plugins(fc_parameters)
    blocks: list[FeatureBlock] = []
    parts = []
    if builtin and as_blocks and isinstance(extractor, BlockExtractor):
        blocks, extracted = extractor.extract_blocks(readings, builtin, n_jobs=n_jobs)
        parts.append(extracted)
    elif builtin:
        parts.append(extractor.extract(readings, builtin, n_jobs=n_jobs))
    if plugin:
        parts.append(
            run_plugin_calculators(
                readings, plugin, calculators, on_error=on_error, warnings_out=warnings_out
            )
        )
    parts = [part for part in parts if part.num_rows]
    if not parts:
        return blocks, FEATURES_SCHEMA.empty_table()
    return blocks, parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _split_plugins(
    fc_parameters: Mapping[str, FCParameters],
) -> tuple[dict[str, FCParameters], dict[str, FCParameters], dict[str, Any]]:
    """Each sensor's settings without the plugin calculators, those alone, and the plugin
    calculators registered."""
    from ..plugins.manager import feature_calculators

    calculators = feature_calculators()
    builtin: dict[str, FCParameters] = {}
    plugin: dict[str, FCParameters] = {}
    for sensor, settings in fc_parameters.items():
        _, mine, _ = split_settings(settings, calculators)
        rest = {k: v for k, v in settings.items() if k not in mine}
        if rest:
            builtin[sensor] = rest
        if mine:
            plugin[sensor] = mine
    return builtin, plugin, calculators


class EraFeatures:
    """Computes a pass's features for one worker: its extractor, its sensor classes, its options."""

    def __init__(
        self,
        extractor: Extractor,
        classifier: Classifier,
        *,
        rolling_windows: Sequence[str],
        on_calculator_error: str,
        n_jobs: int = 0,
        fill: str = "none",
    ) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.rolling_windows = list(rolling_windows)
        self.on_calculator_error = on_calculator_error
        self.n_jobs = n_jobs
        self.fill = fill
        self.warnings: list[str] = []  # a plugin calculator that raised, era by era

    def __call__(self, readings: pa.Table) -> pa.Table:
        """Features of every (era, sensor) series in ``readings`` (gaps filled as configured),
        rolling windows included."""
        readings = fill_gaps(readings, self.fill)
        sensors = pl.from_arrow(readings.select(["sensor"]))["sensor"].unique().sort().to_list()
        if not sensors:
            return FEATURES_SCHEMA.empty_table()
        features = extract_all(
            self.extractor,
            readings,
            self.classifier.fc_parameters(sensors),
            n_jobs=self.n_jobs,
            on_error=self.on_calculator_error,
            warnings_out=self.warnings,
        )
        rolled = self.classifier.rolling_sensors(sensors)
        if self.rolling_windows and rolled:
            extra = rolling_features(
                readings, rolled, self.rolling_windows, self.extractor.array_namespace()
            )
            features = pa.concat_tables([features, extra])
        return features
