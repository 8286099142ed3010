"""The ``native`` extractor: streamfx's own vectorized calculators, tsfresh for the rest.

Readings are sorted into (era, sensor) series and bucketed by length; each bucket is one
2-D array (series × samples) handed to every ported calculator at once, so there is no Python
loop per series. Calculators not yet ported (see ``streamfx plugins --features``) are computed
by tsfresh for the same series, so the result always holds the full feature set.
The same class runs on the GPU with CuPy as the array module (see ``extractors.gpu``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from array_api_compat import numpy as array_numpy

from ...model import FEATURES_SCHEMA
from ...plugins.hookspecs import hookimpl
from ..calculators import compute, one_blas_thread, split_settings, to_host
from ..extractor import Costs, Device, FeatureBlock, long_table
from ..feature_sets import FCParameters
from ..series import buckets, series_layout
from ..warmup import warm_up_once
from .tsfresh import TsfreshExtractor

#: Seconds per series (fixed, per reading) of the native kernels, by feature set, on one core
#: (measured with NativeExtractor on random walks of 144 and 1,152 readings). Comprehensive:
#: efficient's fixed cost, and its entropies' pass over template pairs as about 2.3x the cost
#: per reading (comprehensive / efficient measured 1.2x at 144 readings, 2.2x at 1,000).
NATIVE_COSTS: Costs = {
    "minimal": (7e-5, 2e-7),
    "efficient": (4e-4, 3.5e-6),
    "comprehensive": (4e-4, 8e-6),
}


class NativeExtractor:
    """Runs streamfx's calculators with an array module (NumPy here, CuPy on the GPU)."""

    name = "native"
    description = "streamfx's vectorized calculators (NumPy), tsfresh for calculators not ported"
    device: Device = "cpu"
    costs: Costs = NATIVE_COSTS

    def __init__(self, xp: ModuleType = array_numpy) -> None:
        self.xp = xp

    def array_namespace(self) -> Any:
        return self.xp

    def warm_up(self) -> None:
        """Compile the numba kernels once per machine, before the workers need them."""
        warm_up_once(self)

    def to_device(self, values: np.ndarray) -> Any:
        """Host values -> the array module's memory (a no-op for NumPy)."""
        return self.xp.asarray(values)

    def extract(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> pa.Table:
        """FEATURES_SCHEMA rows for every (era, sensor) series in ``readings``."""
        blocks, rest = self.extract_blocks(readings, fc_parameters, n_jobs=n_jobs)
        if not blocks:
            return rest
        long = long_table(blocks)
        return long if rest.num_rows == 0 else pa.concat_tables([long, rest])

    def extract_blocks(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> tuple[list[FeatureBlock], pa.Table]:
        """The kernels' features as one block per bucket of equal-length series with the same
        settings, and FEATURES_SCHEMA rows of the calculators left to tsfresh."""
        wanted = {s: p for s, p in fc_parameters.items() if p}
        rest_table = FEATURES_SCHEMA.empty_table()
        if readings.num_rows == 0 or not wanted:
            return [], rest_table
        series, values = series_layout(readings)
        series = series.filter(pl.col("sensor").is_in(list(wanted)))
        device_values = self.to_device(values)
        blocks: list[FeatureBlock] = []
        fallback: dict[str, FCParameters] = {}
        # sensors sharing the same settings share every calculator call (a few groups: the
        # same object is matched at once, an equal one by comparing the dicts)
        groups: list[tuple[FCParameters, list[str]]] = []
        for sensor in series["sensor"].unique(maintain_order=True).to_list():
            settings = wanted[sensor]
            for known, members in groups:
                if known is settings or known == settings:
                    members.append(sensor)
                    break
            else:
                groups.append((settings, [sensor]))
        for settings, sensors in groups:
            native, _, rest = split_settings(settings)
            if rest:
                fallback.update(dict.fromkeys(sensors, rest))
            if native:
                members = series.filter(pl.col("sensor").is_in(sensors))
                blocks += self._compute(members, device_values, native, n_jobs)
        if fallback:
            subset = readings.filter(pc.is_in(readings["sensor"], pa.array(list(fallback))))
            extracted = TsfreshExtractor().extract(subset, fallback, n_jobs=n_jobs)
            rest_table = pl.from_arrow(extracted).to_arrow().cast(FEATURES_SCHEMA)
        return blocks, rest_table

    def _compute(
        self, series: pl.DataFrame, values: Any, settings: dict[str, Any], n_jobs: int = 0
    ) -> list[FeatureBlock]:
        """One block per bucket: its series (era_id, sensor), the feature names and a
        (features, series) host matrix.

        A bucket is computed in row chunks of at most ``CHUNK_VALUES`` values, so the
        calculators' intermediates stay bounded whatever the input's size. With ``n_jobs`` > 1
        the chunks of buckets large enough to split run on that many threads (NumPy, LAPACK and
        the numba kernels release the GIL; threads share the input where processes would copy
        it and import the libraries again).
        """
        jobs = [
            (bucket, [partial(self._matrix, batch, settings, rows) for rows in chunks], batch.size)
            for _, bucket, batch in buckets(series, values, self.xp)
            for chunks in [_row_chunks(batch.shape, max(n_jobs, 1))]
        ]
        # a small bucket holds the GIL most of its time (NumPy's per-call cost): on a thread
        # it stalls the others, so such buckets run here, before the rest
        alone = [len(chunks) == 1 and size < SMALL_BUCKET_VALUES for _, chunks, size in jobs]
        pooled = [c for (_, chunks, _), a in zip(jobs, alone, strict=True) if not a for c in chunks]
        with (
            ThreadPoolExecutor(n_jobs)
            if n_jobs > 1 and len(pooled) > 1
            else contextlib.nullcontext() as pool,
            warnings.catch_warnings(),  # the filters are the process's: set once for all threads
            one_blas_thread(),
        ):
            warnings.simplefilter("ignore", RuntimeWarning)
            here = iter([chunks[0]() for (_, chunks, _), a in zip(jobs, alone, strict=True) if a])
            results = iter(list(pool.map(_call, pooled)) if pool else [call() for call in pooled])
        out = []
        for (bucket, chunks, _), a in zip(jobs, alone, strict=True):
            done = [next(here)] if a else [next(results) for _ in chunks]
            matrix = done[0][1] if len(done) == 1 else np.concatenate([m for _, m in done], 1)
            out.append(FeatureBlock(bucket[["era_id", "sensor"]], done[0][0], matrix))
        return out

    def _matrix(
        self, batch: Any, settings: dict[str, Any], rows: slice
    ) -> tuple[list[str], np.ndarray]:
        """The feature names and a (features, series) host matrix of ``batch[rows]``."""
        xp = self.xp
        names, columns = [], []
        with np.errstate(all="ignore"):  # NumPy's error state is per thread
            for name, column in compute(batch[rows], settings):
                names.append(name)
                columns.append(column)
        matrix = xp.stack(columns)  # features × series
        if matrix.dtype != xp.float64:
            matrix = xp.astype(matrix, xp.float64)
        return names, to_host(matrix)


#: Values (series × samples) per chunk the calculators get at once: their intermediates are a
#: few times this (8 MiB of float64), and the per-call overhead is spread over enough series.
CHUNK_VALUES = 1 << 20
#: A bucket is split across threads only into chunks of at least this many values, or of
#: ``MIN_CHUNK_ROWS`` series: a split repeats the calculators' fixed cost per call (about 1,500
#: NumPy calls, holding the GIL), which 255 celle5 days of 144 points (37 k values) do not
#: earn back on 2 threads (measured: 25 ms slower), where 2 x 2,000 series of 12 points do.
MIN_CHUNK_VALUES = 1 << 16
MIN_CHUNK_ROWS = 1_000
#: A bucket of fewer values runs in the calling thread, before the others: its NumPy calls
#: are on arrays too small to release the GIL, so on a thread it would stall the rest.
SMALL_BUCKET_VALUES = 1 << 14


def _row_chunks(shape: tuple[int, int], jobs: int) -> list[slice]:
    """Row slices of a (series, samples) bucket: at most ``CHUNK_VALUES`` values each, and
    ``jobs`` of them where each still gets ``MIN_CHUNK_VALUES`` values or ``MIN_CHUNK_ROWS``
    series."""
    rows, length = shape
    by_size = -(-rows * length // CHUNK_VALUES)
    worth = max(rows * length // MIN_CHUNK_VALUES, rows // MIN_CHUNK_ROWS)
    count = max(by_size, min(jobs, worth, rows), 1)
    step = -(-rows // count)
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def _call(function: Any) -> Any:
    return function()


@hookimpl
def register_extractors() -> list[NativeExtractor]:
    return [NativeExtractor()]
