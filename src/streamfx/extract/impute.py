"""tsfresh's ``impute``, on a feature matrix and on ``features.parquet`` (``stages.extract.impute``).

``tsfresh.utilities.dataframe_functions.impute`` replaces, column by column, ``+inf`` with the
column's largest finite value, ``-inf`` with its smallest and NaN with its median, and a column
without any finite value with 0. Its statistics come from one column at a time, so computing
them a batch of columns at a time gives the same figures: that is how a Parquet file larger
than memory is imputed. The statistics are computed with tsfresh's own NumPy calls
(``np.ma.median`` of the finite values), so the values equal tsfresh's to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: What features.parquet's schema metadata says when its features were imputed.
IMPUTE_KEY = "streamfx.impute"

Ranges = tuple[np.ndarray, np.ndarray, np.ndarray]  # per column: max, min, median


def column_ranges(matrix: np.ndarray) -> Ranges:
    """Each column's finite max, min and median, 0 for a column with no finite value (as
    tsfresh's ``get_range_values_per_column``)."""
    masked = np.ma.masked_invalid(matrix)
    empty = masked.mask.sum(axis=0) == masked.data.shape[0]
    masked.data[:, empty] = 0
    masked.mask[:, empty] = False
    return (
        np.ma.getdata(np.max(masked, axis=0)).astype(np.float64),
        np.ma.getdata(np.min(masked, axis=0)).astype(np.float64),
        np.ma.getdata(np.ma.median(masked, axis=0)).astype(np.float64),
    )


def apply_ranges(matrix: np.ndarray, ranges: Ranges) -> None:
    """Replace ``matrix``'s +inf, -inf and NaN in place with its columns' max, min, median."""
    top, bottom, middle = ranges
    np.copyto(matrix, top, where=matrix == np.inf)
    np.copyto(matrix, bottom, where=matrix == -np.inf)
    np.copyto(matrix, middle, where=np.isnan(matrix))


def impute_matrix(matrix: np.ndarray) -> None:
    """tsfresh's ``impute`` on a rows × features float64 matrix, in place (no rows: nothing)."""
    if matrix.shape[0]:
        apply_ranges(matrix, column_ranges(matrix))


def _values(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """``columns`` of ``table`` as a rows × columns float64 matrix, null as NaN."""
    by_column = np.empty((len(columns), table.num_rows))
    for j, name in enumerate(columns):
        by_column[j] = table.column(name).to_numpy()  # a float64 null reads as NaN
    return by_column.T


def impute_parquet(
    source: pa.NativeFile,
    out: pa.NativeFile,
    columns: Sequence[str],
    values: int,
    **writer_options: Any,
) -> None:
    """Write ``source`` (a Parquet file) to ``out`` with ``columns`` imputed as tsfresh's
    ``impute`` would the whole table (a null counts as NaN); a file without rows as it is.

    Memory holds about ``values`` values, whatever the file's size: the first pass reads the
    columns a batch at a time, every row of them (a median needs the whole column), for their
    statistics; the second writes one row group at a time. ``writer_options`` go to
    ``pq.ParquetWriter`` (compression, dictionaries), so the file keeps its encodings; its
    schema metadata gains ``streamfx.impute: tsfresh``.
    """
    reader = pq.ParquetFile(source)
    rows = reader.metadata.num_rows
    width = max(1, values // max(rows, 1))
    batches = [columns[i : i + width] for i in range(0, len(columns), width)] if rows else []
    figures = [column_ranges(_values(reader.read(columns=list(b)), b)) for b in batches]
    empty = np.empty(0)
    top, bottom, middle = [np.concatenate(f) for f in zip(*figures, strict=True)] or [empty] * 3
    schema = reader.schema_arrow
    schema = schema.with_metadata({**(schema.metadata or {}), IMPUTE_KEY: "tsfresh"})
    place = {name: j for j, name in enumerate(columns)}
    with pq.ParquetWriter(out, schema, **writer_options) as writer:
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group)
            if table.num_rows == 0:
                continue
            matrix = _values(table, columns)
            apply_ranges(matrix, (top, bottom, middle))
            arrays = [
                pa.array(matrix[:, place[f.name]]) if f.name in place else table[f.name]
                for f in schema
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
