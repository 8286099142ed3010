"""Readings as series, and series as buckets of equal length: the layout every kernel runs on.

The native kernels, batch plugin calculators and rolling windows all take a 2-D array of
equal-length series (series × samples). :func:`series_layout` sorts a pass's readings into
series once; :func:`buckets` then gathers each length's series into one such array.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

Array = Any  # a NumPy or CuPy array


def sorted_series(readings: pa.Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The readings sorted into series (NaN values dropped), and per series (era_id, sensor,
    offset, length, interval_us: the median spacing of its timestamps)."""
    frame = (
        pl.from_arrow(readings)
        .lazy()
        .filter(pl.col("value").is_not_nan())
        .sort("era_id", "sensor", "time")
        .collect()
    )
    series = (
        frame.with_row_index("row")
        .group_by("era_id", "sensor", maintain_order=True)
        .agg(
            pl.col("row").first().alias("offset"),
            pl.len().alias("length"),
            pl.col("time").diff().dt.total_microseconds().median().alias("interval_us"),
        )
    )
    return frame, series


def series_layout(readings: pa.Table) -> tuple[pl.DataFrame, np.ndarray]:
    """The series of ``readings`` (see :func:`sorted_series`) and all their values, in order."""
    frame, series = sorted_series(readings)
    return series, frame["value"].to_numpy()


def gather(xp: Any, values: Array, offsets: Any, length: int) -> Array:
    """The equal-length series starting at ``offsets`` in ``values``, as (series, length)."""
    index = xp.asarray(offsets)[:, None] + xp.arange(length)[None, :]
    return xp.reshape(xp.take(values, xp.reshape(index, (-1,)), axis=0), index.shape)


def buckets(
    series: pl.DataFrame, values: Array, xp: Any, by: tuple[str, ...] = ("length",)
) -> Iterator[tuple[tuple[int, ...], pl.DataFrame, Array]]:
    """Per group of ``series`` with equal ``by`` columns (``length`` first): the group's key,
    its rows and its series as one (series, length) array, in first-seen order."""
    for key, bucket in series.group_by(*by, maintain_order=True):
        length = int(key[0])
        yield (
            tuple(int(k) for k in key),
            bucket,
            gather(xp, values, bucket["offset"].to_numpy(), length),
        )
