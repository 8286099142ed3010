"""A batch of finished eras as one frame: the form the built-in sinks start from.

A sink's work on a batch is then a few vectorized calls, whatever the number of eras in it;
per-era frame operations cost a millisecond or more each and, at thousands of eras, kept the
sinks' writer busy longer than the workers took to extract.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import StreamfxError
from ..model import FEATURES_SCHEMA, EraResult

#: The column of :func:`batch_features` that says which result a row came from.
ERA = "era"


def batch_features(results: Sequence[EraResult]) -> pl.DataFrame:
    """Every result's ``sensor, feature, value`` rows, in order, after ``era``: the index of
    the row's result in ``results``."""
    tables = [r.features.select(["sensor", "feature", "value"]) for r in results]
    long = pa.concat_tables(
        tables or [FEATURES_SCHEMA.empty_table().select(["sensor", "feature", "value"])],
        promote_options="permissive",  # a plugin's table may differ in nullability
    )
    counts = [table.num_rows for table in tables]
    era = np.repeat(np.arange(len(tables), dtype=np.int32), counts)
    frame = pl.from_arrow(long)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(
        pl.Series(ERA, era, dtype=pl.Int32),
        "sensor",
        "feature",
        pl.col("value").cast(pl.Float64),
    )


def refuse_duplicates(
    frame: pl.DataFrame, key: Sequence[str], results: Sequence[EraResult]
) -> None:
    """Raise when an era of ``frame`` has two rows with the same ``key`` columns, naming the
    era and the first such feature (its key columns joined by ``__``)."""
    repeated = frame.filter(pl.struct(ERA, *key).is_duplicated())
    if repeated.height:
        row = repeated.row(0, named=True)
        name = "__".join(str(row[column]) for column in key)
        raise StreamfxError(f"era {results[row[ERA]].era.key!r}: duplicate feature {name!r}")
