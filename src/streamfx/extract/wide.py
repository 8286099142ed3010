"""Long features (a key, a feature name, a value per row) as one dense matrix, by index.

A dense keys × names matrix filled by position: polars' generic pivot takes seconds for the
thousands of columns a feature table has, this takes milliseconds. The Parquet sink's wide file
is built with it (``streamfx.extract_features`` goes further: integer codes, see ``api._to_wide``).
"""

from __future__ import annotations

import numpy as np
import polars as pl


def scatter(
    long: pl.DataFrame, key: str, rows: pl.Series, columns: pl.Series
) -> tuple[np.ndarray, np.ndarray]:
    """``long``'s ``value`` at (its ``key`` among ``rows``, its ``name`` among ``columns``).

    Returns the float64 matrix (NaN where there is no value) and its validity (False where
    ``long`` has no such cell or a null value), both rows × columns in the given orders.
    Rows of ``long`` whose key or name is not listed are left out.
    """
    index = long.join(
        pl.DataFrame({key: rows, "__row": pl.int_range(rows.len(), eager=True)}), on=key
    ).join(
        pl.DataFrame({"name": columns, "__col": pl.int_range(columns.len(), eager=True)}),
        on="name",
    )
    matrix = np.full((rows.len(), columns.len()), np.nan)
    valid = np.zeros(matrix.shape, dtype=bool)
    row, col = index["__row"].to_numpy(), index["__col"].to_numpy()
    matrix[row, col] = index["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    valid[row, col] = index["value"].is_not_null().to_numpy()
    return matrix, valid
