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
import pyarrow.compute as pc

Array = Any  # a NumPy or CuPy array

SERIES_ORDER = ("era_id", "sensor", "time")  # the readings' order within a pass


def sorted_series(
    readings: pa.Table, *, intervals: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The readings sorted into series (NaN values dropped), and per series (era_id, sensor,
    offset, length; with ``intervals`` also interval_us, the median spacing of its timestamps,
    which costs more than the rest).

    A series is a run of equal (era_id, sensor) in the sorted rows: its offset is where the run
    starts, found by comparing neighbours, not by hashing every row's keys."""
    nan = pc.is_nan(readings["value"])
    if pc.any(nan).as_py():
        readings = readings.filter(pc.invert(nan))
    if not _in_order(readings):
        # Arrow's sort: a third of the memory polars' parallel multi-key sort takes (its
        # per-thread buffers grew a 200 x 1,000-point API call's RSS by 45 MiB), and no slower
        order = pc.sort_indices(readings, sort_keys=[(k, "ascending") for k in SERIES_ORDER])
        readings = readings.take(order)
    frame = pl.from_arrow(readings)
    assert isinstance(frame, pl.DataFrame)
    keys = SERIES_ORDER[:2]
    starts = frame.select(
        pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift()) for k in keys).alias("start")
    ).to_series()
    offsets = starts.arg_true().cast(pl.UInt32).alias("offset")
    ends = offsets.shift(-1, fill_value=frame.height)
    series = frame.select(*keys)[offsets].with_columns(offsets, (ends - offsets).alias("length"))
    if intervals:
        spacing = (
            frame.select("time", starts)
            .select(
                pl.col("start").cum_sum().alias("run"),
                pl.when(pl.col("start"))
                .then(None)
                .otherwise(pl.col("time").diff().dt.total_microseconds())
                .alias("step"),
            )
            .group_by("run", maintain_order=True)
            .agg(pl.col("step").median().alias("interval_us"))
        )
        series = series.with_columns(spacing["interval_us"])
    return frame, series


def _in_order(readings: pa.Table) -> bool:
    """Whether the rows already run in ``SERIES_ORDER`` (readings of one series together, in
    time): comparing neighbours costs a fifth of a sort, and the API's input mostly is."""
    n = readings.num_rows
    if n < 2:
        return True
    after = None  # lexicographic: from the last key to the first
    for key in reversed(SERIES_ORDER):
        later, earlier = readings[key].slice(1), readings[key].slice(0, n - 1)
        if after is None:
            after = pc.greater_equal(later, earlier)
        else:
            after = pc.or_(pc.greater(later, earlier), pc.and_(pc.equal(later, earlier), after))
    return bool(pc.all(after).as_py())


def series_layout(
    readings: pa.Table, *, intervals: bool = False
) -> tuple[pl.DataFrame, np.ndarray]:
    """The series of ``readings`` (see :func:`sorted_series`) and all their values, in order."""
    frame, series = sorted_series(readings, intervals=intervals)
    return series, frame["value"].to_numpy()


def gather(xp: Any, values: Array, offsets: Any, length: int) -> Array:
    """The equal-length series starting at ``offsets`` in ``values``, as (series, length)."""
    index = xp.asarray(offsets)[:, None] + xp.arange(length)[None, :]
    return xp.reshape(xp.take(values, xp.reshape(index, (-1,)), axis=0), index.shape)


def buckets(
    series: pl.DataFrame, values: Array, xp: Any, by: tuple[str, ...] = ("length",)
) -> Iterator[tuple[tuple[int, ...], pl.DataFrame, Array]]:
    """Per group of ``series`` with equal ``by`` columns (``length`` first): the group's key,
    its rows and its series as one (series, length) array, in first-seen order.

    The groups come from NumPy on the key columns and each is one gather of rows: polars'
    group_by iteration cost a query per group, more than a short bucket's features."""
    if not series.height:
        return
    keys = np.stack([series[column].to_numpy().astype(np.int64) for column in by], axis=1)
    distinct, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    members = np.argsort(inverse.reshape(-1), kind="stable")  # the groups' rows, in order
    ends = np.cumsum(np.bincount(inverse.reshape(-1), minlength=len(distinct)))
    offsets = series["offset"].to_numpy()
    for group in np.argsort(first):
        rows = members[ends[group - 1] if group else 0 : ends[group]]
        key = tuple(int(k) for k in distinct[group])
        yield key, series[rows], gather(xp, values, offsets[rows], key[0])
