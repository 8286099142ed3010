"""The caller's frames: pandas, polars or pyarrow in, polars inside, the caller's kind out.

tsfresh's users hand over pandas frames, sometimes with tuple ids (the ``(id, time)`` of
``roll_time_series``); polars and pyarrow users hand over their own. Inside, the API works on
polars: a tuple id becomes a struct (sortable, one-to-one), and back in pandas a
``MultiIndex``, as tsfresh gives.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from .errors import InvalidInput

#: What a frame was handed over as: the result goes back as the same.
Kind = Literal["pandas", "polars", "arrow"]


def to_polars(container: Any, where: str = "timeseries_container") -> tuple[pl.DataFrame, Kind]:
    """``container`` as a polars DataFrame, and what it was."""
    if isinstance(container, pl.LazyFrame):
        container = container.collect()
    if isinstance(container, pl.DataFrame):
        return container, "polars"
    if isinstance(container, pa.RecordBatch):
        container = pa.Table.from_batches([container])
    if isinstance(container, pa.Table):
        frame = pl.from_arrow(container)
        assert isinstance(frame, pl.DataFrame)
        return frame, "arrow"

    import pandas as pd

    if isinstance(container, pd.DataFrame):
        return from_pandas(container, where), "pandas"
    raise InvalidInput(
        f"{where} must be a polars DataFrame, a pyarrow Table or a pandas DataFrame, "
        f"not {type(container).__name__}"
    )


def from_pandas(frame: Any, where: str = "timeseries_container") -> pl.DataFrame:
    """A pandas frame in polars; a column of tuples (tsfresh's rolled ids) as a struct."""
    if not all(isinstance(c, str) for c in frame.columns):
        raise InvalidInput(f"{where}: pandas column names must be strings")
    tuples = [c for c in frame.columns if frame[c].dtype == object and _holds_tuples(frame[c])]
    try:
        converted = pl.from_pandas(frame.drop(columns=tuples))
        structs = [_struct(frame[c]) for c in tuples]
    except Exception as exc:
        raise InvalidInput(f"{where}: the pandas frame could not be read: {exc}") from exc
    return converted.with_columns(structs).select(frame.columns) if tuples else converted


def _holds_tuples(column: Any) -> bool:
    return len(column) > 0 and isinstance(column.iloc[0], tuple)


def _struct(column: Any) -> pl.Series:
    """A column of equal-length tuples as a struct, fields ``0``, ``1``, ... in order."""
    import pandas as pd

    parts = pd.DataFrame(column.tolist())
    parts.columns = [str(i) for i in parts.columns]
    return pl.from_pandas(parts).to_struct(str(column.name))


def pandas_index(ids: pl.Series, dtype: Any = None) -> Any:
    """``ids`` as a pandas index, unnamed as tsfresh's: a struct as a ``MultiIndex`` (tsfresh's
    index of tuple ids), anything else with ``dtype`` where given (the input's id type)."""
    import pandas as pd

    if isinstance(ids.dtype, pl.Struct):
        levels = ids.struct.unnest().to_pandas()
        return pd.MultiIndex.from_frame(levels, names=[None] * levels.shape[1])
    index = pd.Index(ids.to_pandas())
    if dtype is not None:
        index = index.astype(dtype)
    index.name = None
    return index


def python_ids(ids: pl.Series) -> list[Any]:
    """The ids as Python values, a struct's as tuples (what a pandas index of them holds)."""
    if isinstance(ids.dtype, pl.Struct):
        fields = ids.struct.unnest()
        return list(zip(*(fields.get_column(c).to_list() for c in fields.columns), strict=True))
    return ids.to_list()


def keep_ids(frame: pl.DataFrame, column: str, ids: Collection[Any]) -> pl.DataFrame:
    """The rows of ``frame`` whose ``column`` is among ``ids`` (Python values; tuples for a
    struct column)."""
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Struct):
        wanted = pl.DataFrame(list(ids), schema=list(dtype.to_schema()), orient="row")
        wanted = wanted.cast(dict(dtype.to_schema())).to_struct(column).to_frame()
        return frame.join(wanted.unique(), on=column, how="semi", maintain_order="left")
    return frame.filter(pl.col(column).is_in(pl.Series(list(ids), dtype=dtype)))


def restrict(container: Any, column: str, ids: Collection[Any]) -> Any:
    """``container`` (a frame of any kind, or a dict of them) with only the rows of ``ids``;
    pandas frames as tsfresh's ``restrict_input_to_index`` does it (it says when none is left)."""
    import pandas as pd

    if isinstance(container, pd.DataFrame):
        from tsfresh.utilities.dataframe_functions import restrict_input_to_index

        return restrict_input_to_index(container, column, ids)
    if isinstance(container, dict):
        return {kind: restrict(frame, column, ids) for kind, frame in container.items()}
    frame, kind = to_polars(container)
    if column not in frame.columns:
        raise InvalidInput(f"column_id={column!r} is not a column of the input")
    kept = keep_ids(frame, column, ids)
    return kept.to_arrow() if kind == "arrow" else kept


def container_ids(container: Any, column: str) -> set[Any]:
    """The ids in ``container`` (a frame of any kind, or a dict of them), as Python values."""
    import pandas as pd

    if isinstance(container, dict):
        return set().union(*(container_ids(frame, column) for frame in container.values()))
    if isinstance(container, pd.DataFrame):
        return set(container[column])
    frame, _ = to_polars(container)
    if column not in frame.columns:
        raise InvalidInput(f"column_id={column!r} is not a column of the input")
    return set(python_ids(frame.get_column(column).unique()))


def indexed_by_id(features: Any) -> Any:
    """A feature matrix as tsfresh's pandas frame: a pandas one as is, a polars or pyarrow
    one (ids first, as ``extract_features`` gives them) indexed by its ids."""
    import pandas as pd

    if isinstance(features, pd.DataFrame):
        return features
    frame, _ = to_polars(features, "features")
    ids = frame.to_series(0)
    matrix = frame.drop(ids.name).to_pandas()
    matrix.index = pandas_index(ids)
    return matrix
