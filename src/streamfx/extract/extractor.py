"""What an extractor is, what it may declare about itself, and what a plugin calculator is.

An extractor turns long readings (``model.READINGS_SCHEMA``, any number of eras) into long
features (``model.FEATURES_SCHEMA``), computing for each sensor the tsfresh-style calculators
of its feature set. Extractors register through the ``register_extractors`` hook, the built-in
ones (``extract/extractors/``) exactly like a third party's. What the run needs to know about
an extractor it declares: the device it runs on and its array namespace in :class:`Extractor`
itself, a device memory cap and a cost model in the optional protocols below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import polars as pl
import pyarrow as pa

from ..model import FEATURES_SCHEMA
from .feature_sets import FCParameters

#: Where an extractor computes: the lane its eras are routed to.
Device = Literal["cpu", "gpu"]

#: Seconds per series, as (fixed, per reading), by feature set name: what packing balances on.
Costs = Mapping[str, tuple[float, float]]


@runtime_checkable
class Extractor(Protocol):
    """Computes features for every (era, sensor) series in a batch of readings."""

    name: str
    description: str
    #: "gpu": it serves the GPU lane (the first registered one does); "cpu": the CPU lane.
    device: Device

    def array_namespace(self) -> Any:
        """The array namespace its kernels run on (NumPy's, CuPy's); rolling windows run there
        too, so on the GPU their series stay on the device."""
        ...

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


@dataclass(frozen=True)
class FeatureBlock:
    """The features of series computed together: ``values[f, s]`` is feature ``names[f]``
    (without the sensor prefix) of the series in row ``s`` of ``series`` (era_id, sensor)."""

    series: pl.DataFrame
    names: list[str]
    values: np.ndarray  # float64, (features, series), on the host


def long_table(blocks: list[FeatureBlock]) -> pa.Table:
    """FEATURES_SCHEMA rows of ``blocks``, in order: in a block, feature f of series s at row
    f * series + s. The strings are gathered by polars (no Python strings per cell)."""
    keys = pl.concat([block.series for block in blocks]).select(
        pl.col("era_id", "sensor").cast(pl.String)
    )
    names = [name for block in blocks for name in block.names]
    key_index, name_index = [], []
    key_start = name_start = 0
    for block in blocks:
        height = block.series.height
        rows = np.arange(key_start, key_start + height, dtype=np.int64)
        features = np.arange(name_start, name_start + len(block.names), dtype=np.int64)
        key_index.append(np.tile(rows, len(block.names)))
        name_index.append(np.repeat(features, height))
        key_start += height
        name_start += len(block.names)
    frame = keys[np.concatenate(key_index)].with_columns(
        pl.Series("feature", names, dtype=pl.String).gather(np.concatenate(name_index)),
        pl.Series(
            "value", np.concatenate([b.values.reshape(-1) for b in blocks]), dtype=pl.Float64
        ),
    )
    return frame.to_arrow().cast(FEATURES_SCHEMA)


@runtime_checkable
class BlockExtractor(Protocol):
    """An extractor that can give its features as matrices: a consumer that wants one row per
    series (the Python API) then skips building one row per value and pivoting it back. The
    blocks hold what ``extract`` returns: a subclass that changes one changes both (the
    native extractor's ``extract`` is its blocks' rows)."""

    def extract_blocks(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> tuple[list[FeatureBlock], pa.Table]:
        """``extract``'s features as blocks, and FEATURES_SCHEMA rows of those it computed
        otherwise (a calculator left to tsfresh)."""
        ...


@runtime_checkable
class MemoryBounded(Protocol):
    """An extractor whose device memory is capped (``executor.gpu_memory_limit_gb``)."""

    def with_memory_limit(self, gigabytes: float) -> Extractor:
        """A copy of this extractor using at most ``gigabytes`` of device memory."""
        ...


@runtime_checkable
class Warmable(Protocol):
    """An extractor with kernels to compile (or load from a cache) once per run, before the
    workers start, so that they do not each compile them (see ``extract.warmup``)."""

    def warm_up(self) -> None: ...


@runtime_checkable
class Costed(Protocol):
    """An extractor that states its costs; others are balanced with the native kernels' (only
    the ratios between eras matter for packing)."""

    costs: Costs


@dataclass(frozen=True)
class FeatureCalculator:
    """A feature calculator contributed by a plugin (``register_feature_calculators`` hook).

    Use its ``name`` in any feature set like a tsfresh calculator (in pipeline.yaml sensor
    rules, or in ``streamfx.extract_features`` settings dicts); ``params`` is the default
    parameter grid when a set names it without parameters.

    - ``kind="series"``: ``function(values, times, **param) -> float`` on one series (float64
      values and datetime64[us] UTC times, sorted by time).
    - ``kind="batch"``: ``function(x, **param) -> array`` on a 2-D array of equal-length series
      (NumPy), one value per row; it is called once per bucket of series of the same length.

    Feature names follow tsfresh: ``name`` or ``name__key_value__...`` for each parameter set.
    """

    name: str
    function: Callable[..., Any]
    params: list[dict[str, Any]] | None = None
    kind: Literal["series", "batch"] = "series"
    description: str = ""
