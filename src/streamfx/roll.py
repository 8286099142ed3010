"""``streamfx.roll_time_series``: tsfresh's rolled windows, all at once with polars.

tsfresh rolls one shift at a time, a pandas ``groupby.apply`` each, which is the bottleneck of
forecasting set-ups. Here the windows are computed as numbers: the series (one per id, or per
kind and id) are sorted once, each window is a (series, shift) pair with its first row and
length, and the result is one gather of the input's rows. Rows, ids, order and index are
tsfresh's (its ``MapDistributor`` order, its layout of columns under pandas 3).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from .api import N_JOBS
from .errors import InvalidInput
from .frames import Kind, from_pandas, to_polars

_POS, _ID, _KIND, _SORT = "__sfx_pos", "__sfx_id", "__sfx_kind", "__sfx_sort"


def roll_time_series(
    df_or_dict: Any,
    column_id: str | None,
    column_sort: str | None = None,
    column_kind: str | None = None,
    rolling_direction: int = 1,
    max_timeshift: int | None = None,
    min_timeshift: int = 0,
    chunksize: int | None = None,
    n_jobs: int = N_JOBS,
    show_warnings: bool = False,
    disable_progressbar: bool = False,
    distributor: Any = None,
) -> Any:
    """Sub-windows of every series, like ``tsfresh.utilities.dataframe_functions.roll_time_series``
    (same arguments, same order, same result).

    Each series (the rows of an id, or of a kind and an id, in ``column_sort`` order or the
    given one) is cut into windows of at most ``max_timeshift + 1`` rows (None: growing from
    the first row), one per shift of ``abs(rolling_direction)`` rows, forward in time when
    ``rolling_direction`` is positive, backward when negative; windows of ``min_timeshift``
    rows or fewer are dropped. Shifts are counted from the longest series, as tsfresh does.
    Every row of a window becomes a row with the new id ``(id, time)``: the sort value of
    the window's last row (first, rolling backward), or its shift number without
    ``column_sort``. Rows come sorted by new id, then sort value.

    ``df_or_dict``: a pandas, polars or pyarrow frame, or a dict of them (rolled one by one,
    returned as a dict). The result is the same kind of frame: pandas with tuple ids in
    ``id`` (tsfresh's), polars or pyarrow with a struct ``{id, time}``. Without
    ``column_sort`` a ``sort`` column numbers the input's rows, as in tsfresh (the input
    itself is left alone). ``chunksize``, ``n_jobs``, ``show_warnings``,
    ``disable_progressbar`` and ``distributor`` are accepted for tsfresh's scripts and change
    nothing: the rolling is one vectorized pass.
    """
    if rolling_direction == 0:
        raise InvalidInput("Rolling direction of 0 is not possible")
    if max_timeshift is not None and max_timeshift <= 0:
        raise InvalidInput("max_timeshift needs to be positive!")
    if min_timeshift < 0:
        raise InvalidInput("min_timeshift needs to be positive or zero!")
    window = {
        "column_id": column_id,
        "column_sort": column_sort,
        "direction": rolling_direction,
        "max_timeshift": max_timeshift,
        "min_timeshift": min_timeshift,
    }
    if isinstance(df_or_dict, Mapping):
        if column_kind is not None:
            raise InvalidInput(
                "You passed in a dictionary and gave a column name for the kind. "
                "Both are not possible."
            )
        return {key: _roll(frame, None, **window) for key, frame in df_or_dict.items()}
    return _roll(df_or_dict, column_kind, **window)


def _roll(
    container: Any,
    column_kind: str | None,
    *,
    column_id: str | None,
    column_sort: str | None,
    direction: int,
    max_timeshift: int | None,
    min_timeshift: int,
) -> Any:
    import pandas as pd

    pandas = isinstance(container, pd.DataFrame)
    frame, kind = (container, "pandas") if pandas else to_polars(container, "df_or_dict")
    if len(frame) <= 1:
        raise InvalidInput(
            "Your time series container has zero or one rows!. Can not perform rolling."
        )
    if column_id is None:
        raise InvalidInput(
            "You have to set the column_id which contains the ids of the different time series"
        )
    for argument, column in (
        ("column_id", column_id),
        ("column_sort", column_sort),
        ("column_kind", column_kind),
    ):
        if column is not None and column not in frame.columns:
            raise InvalidInput(f"{argument}={column!r} is not a column of the input")
    named = {_ID: column_id, _KIND: column_kind, _SORT: column_sort}
    used = {internal: column for internal, column in named.items() if column is not None}
    keys = (
        from_pandas(container[list(dict.fromkeys(used.values()))], "df_or_dict")
        if pandas
        else frame
    )
    keys = keys.select(pl.col(c).alias(i) for i, c in used.items()).with_row_index(_POS)
    rows, ids = _windows(keys, column_sort is not None, direction, max_timeshift, min_timeshift)
    grouper = [column_kind, column_id] if column_kind else [column_id]
    if pandas:
        return _pandas_result(container, rows, ids, grouper, column_id, column_sort)
    return _polars_result(frame, kind, rows, ids, grouper, column_sort)


def _windows(
    keys: pl.DataFrame,
    sorted_by_column: bool,
    direction: int,
    max_timeshift: int | None,
    min_timeshift: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The result's rows, in tsfresh's final order: each one's input row (``_POS``), its
    place in tsfresh's concatenation (``index``) and its window (``window``, a row of the
    second frame: the window's id ``_ID``, its ``time``, and the input rows holding them,
    ``id_row`` and ``time_row``)."""
    group = [_KIND, _ID] if _KIND in keys.columns else [_ID]
    order = _SORT if sorted_by_column else _POS
    if sorted_by_column:
        values = keys.get_column(_SORT)
        if values.null_count() or (values.dtype.is_float() and values.is_nan().any()):
            raise InvalidInput("You have NaN values in your sort column.")
    # pandas' groupby: groups sorted by their keys, each in the order of the sorted frame
    series = keys.sort([*group, order], maintain_order=True)
    if sorted_by_column and (series[_SORT].dtype.is_numeric() or series[_SORT].dtype.is_temporal()):
        _warn_if_not_uniform(series, group)
    series = series.with_row_index("at").with_columns(
        row=pl.int_range(pl.len()).over(group), length=pl.len().over(group)
    )
    groups = (
        series.filter(pl.col("row") == 0)
        .select(*group, start=pl.col("at").cast(pl.Int64), length="length", id_row=_POS)
        .with_row_index("group")
    )
    steps = int(groups["length"].max())  # type: ignore[arg-type]
    span = (max_timeshift or steps) + 1  # a window's rows at most
    amount, length, shift = abs(direction), pl.col("length"), pl.col("shift")
    if span < min_timeshift + 1:
        shifts = pl.int_ranges(0, 0)
    elif direction > 0:  # the shifts steps, steps - amount, ... down to 1: each ends a window
        low = max(1, min_timeshift + 1)
        shifts = pl.int_ranges(low + (steps - low) % amount, length + 1, amount)
    else:  # the shifts 1, 1 + amount, ...: each starts a window
        shifts = pl.int_ranges(1, length - min_timeshift + 1, amount)
    if direction > 0:
        first = pl.max_horizontal(shift - span, 0)
        size = shift - first
    else:
        first = shift - 1
        size = pl.min_horizontal(pl.lit(span, pl.Int64), length - shift + 1)
    windows = (
        groups.with_columns(shift=shifts)
        .explode("shift")
        .drop_nulls("shift")
        .with_columns(first=pl.col("start") + first, size=size)
        .with_columns(stamp=pl.col("start") + shift - 1)
        # tsfresh concatenates shift after shift, groups in order, rows in order: the index
        .sort(["shift", "group"])
        .with_columns(offset=pl.col("size").cum_sum() - pl.col("size"))
    )
    stamps = series.get_column(order).gather(windows["stamp"])
    time = stamps if sorted_by_column else windows["shift"] - 1
    windows = (
        windows.with_columns(time=time, time_row=series.get_column(_POS).gather(windows["stamp"]))
        # ... then sorts by new id (id, time) and sort value, stably
        .sort([_ID, "time", "shift", "group"])
    )
    ids = windows.select(_ID, "time", "id_row", "time_row")
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    rows = windows.select(
        window=index.repeat_by("size"),
        row=pl.int_ranges("first", pl.col("first") + pl.col("size")),
        index=pl.int_ranges("offset", pl.col("offset") + pl.col("size")),
    ).explode(["window", "row", "index"])
    rows = rows.select(
        "window",
        "index",
        series.get_column(_POS).gather(rows["row"]),
        series.get_column(order).gather(rows["row"]).alias("order"),
    )
    if ids.select(_ID, "time").n_unique() < ids.height:  # kinds share new ids: interleave
        key = ids.select(pl.struct(_ID, "time").rle_id())[_ID]
        rows = rows.with_columns(key=key.gather(rows["window"])).sort(
            ["key", "order"], maintain_order=True
        )
    return rows.select("window", "index", _POS), ids


def _warn_if_not_uniform(series: pl.DataFrame, group: list[str]) -> None:
    steps = series.select(pl.col(_SORT).diff().over(group))[_SORT].drop_nulls()
    if len(steps) and steps.min() != steps.max():
        warnings.warn(
            "Your time stamps are not uniformly sampled, which makes rolling "
            "nonsensical in some domains.",
            stacklevel=5,
        )


def _layout(columns: list[str], grouper: list[str]) -> list[str]:
    """tsfresh's columns under pandas 3: the others, then the grouping ones (which pandas
    leaves out of a group and tsfresh puts back); ``id`` replaces its column or comes last."""
    return [c for c in columns if c not in grouper] + grouper


def _pandas_result(
    container: Any,
    rows: pl.DataFrame,
    ids: pl.DataFrame,
    grouper: list[str],
    column_id: str,
    column_sort: str | None,
) -> Any:
    import pandas as pd

    positions = rows.get_column(_POS).to_numpy()
    out = container.take(positions)
    if column_sort is None:
        out["sort"] = positions.astype(np.int64)
    out = out[_layout(list(out.columns), grouper)]
    window_id = container[column_id].iloc[ids.get_column("id_row").to_numpy()]
    stamp = (
        container[column_sort].iloc[ids.get_column("time_row").to_numpy()]
        if column_sort
        else ids.get_column("time").to_numpy()
    )
    tuples = pd.MultiIndex.from_arrays([window_id, stamp]).to_flat_index()
    out["id"] = np.asarray(tuples, dtype=object).take(rows.get_column("window").to_numpy())
    out.index = pd.Index(rows.get_column("index").to_numpy())
    return out


def _polars_result(
    frame: pl.DataFrame,
    kind: Kind,
    rows: pl.DataFrame,
    ids: pl.DataFrame,
    grouper: list[str],
    column_sort: str | None,
) -> Any:
    positions = rows.get_column(_POS)
    out = frame.select(pl.all().gather(positions))
    if column_sort is None:
        out = out.with_columns(positions.cast(pl.Int64).alias("sort"))
    window = ids.select(pl.struct(pl.col(_ID).alias("id"), "time").alias("id"))["id"]
    out = out.select(_layout(out.columns, grouper)).with_columns(window.gather(rows["window"]))
    return out.to_arrow() if kind == "arrow" else out
