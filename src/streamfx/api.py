"""``streamfx.extract_features``: tsfresh's entry point, on polars, pyarrow or pandas frames.

A tsfresh user switches with one import::

    from streamfx import extract_features  # instead of: from tsfresh import extract_features

    X = extract_features(df, column_id="id", column_sort="time", column_kind="kind",
                         column_value="value")

The arguments keep tsfresh's names and meaning; the result has tsfresh's shape (one row per
id, one ``{kind}__{feature}`` column per feature, in tsfresh's order) in the caller's frame
kind. Internally the input is normalized with polars to ``model.READINGS_SCHEMA`` (id ->
``era_id``, kind -> ``sensor``, sort -> ``time``) and handed to a registered extractor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from .errors import StreamfxError
from .extract.era_features import extract_all
from .extract.feature_sets import FCParameters, feature_set
from .extract.plugin_calculators import check_calculators
from .extract.wide import scatter
from .model import READINGS_SCHEMA
from .plugins.manager import get_extractor

_ID, _ORDER, _KIND, _VALUE, _ERA = "__sfx_id", "__sfx_order", "__sfx_kind", "__sfx_value", "era_id"


def extract_features(
    timeseries_container: Any,
    column_id: str | None = None,
    column_sort: str | None = None,
    column_kind: str | None = None,
    column_value: str | None = None,
    default_fc_parameters: str | FCParameters | None = None,
    kind_to_fc_parameters: Mapping[Any, str | FCParameters] | None = None,
    engine: str = "native",
    n_jobs: int = 0,
) -> Any:
    """Extract features per id, like ``tsfresh.extract_features``.

    ``timeseries_container``: a polars DataFrame (or LazyFrame), a pyarrow Table (or
    RecordBatch) or a pandas DataFrame, in tsfresh's long format (``column_kind`` given: one
    row per id, sort key, kind and value; ``column_value`` guessed when it is the only other
    column) or its wide format (``column_kind`` None: every column other than id and sort is a
    kind, or only ``column_value`` when given). Missing values (null/NaN) are refused, as
    tsfresh does.

    ``column_sort``: the order of each series. None keeps the rows' given order. A timestamp
    (or date) column becomes the readings' ``time`` as is (naive = UTC); any other sortable
    column (numbers, strings, nanosecond times finer than a microsecond) is replaced by its
    ordinal rank, as microseconds after the epoch, so only the ordering is kept.

    ``default_fc_parameters``: "minimal", "efficient", "comprehensive" or a tsfresh settings
    dict. None means "comprehensive" (tsfresh's default), unless ``kind_to_fc_parameters`` is given: then, as in
    tsfresh, only the kinds it names are computed. ``kind_to_fc_parameters`` maps kind ->
    settings (a name or a dict) and overrides the default for those kinds.

    ``engine``: the registered extractor to compute with (``streamfx plugins`` lists them).
    ``n_jobs``: the extractor's worker processes (0 = in this process).

    Returns one row per id that got features, sorted by id, columns ``{kind}__{feature}`` in
    tsfresh's order, float64 (NaN where a feature is undefined or the id lacks that kind):
    pandas in -> pandas DataFrame indexed by the ids (as tsfresh); polars in -> polars
    DataFrame with the id column first; pyarrow in -> pyarrow Table likewise.
    """
    extractor = get_extractor(engine, where="engine")
    frame, output = _to_polars(timeseries_container)
    long, kinds = _to_long(frame, column_id, column_sort, column_kind, column_value)
    fc_parameters = _resolve_parameters(kinds, default_fc_parameters, kind_to_fc_parameters)

    ids = _id_map(long)
    readings = (
        long.join(ids, on=_ID, how="left", maintain_order="left")
        .filter(pl.col(_KIND).is_in(list(fc_parameters)))
        .select(
            pl.col(_ERA),
            pl.col(_KIND).alias("sensor"),
            _time(long),
            pl.col(_VALUE).alias("value"),
        )
        .to_arrow()
        .cast(READINGS_SCHEMA)
    )
    features = extract_all(extractor, readings, fc_parameters, n_jobs=n_jobs)
    present, matrix, names = _to_wide(features, ids, kinds, fc_parameters)
    return output(present.rename(column_id), matrix, names)


# -- input ----------------------------------------------------------------------------------


def _to_polars(container: Any):
    """The input as a polars DataFrame, and a function turning the result into its kind."""
    if isinstance(container, pl.LazyFrame):
        container = container.collect()
    if isinstance(container, pl.DataFrame):
        return container, _polars_output
    if isinstance(container, pa.RecordBatch):
        container = pa.Table.from_batches([container])
    if isinstance(container, pa.Table):
        frame = pl.from_arrow(container)
        assert isinstance(frame, pl.DataFrame)
        return frame, _arrow_output(container.schema)

    import pandas as pd

    if isinstance(container, pd.DataFrame):
        if not all(isinstance(c, str) for c in container.columns):
            raise StreamfxError("pandas input: column names must be strings")
        try:
            frame = pl.from_pandas(container)
        except Exception as exc:
            raise StreamfxError(f"pandas input could not be read: {exc}") from exc
        return frame, _pandas_output(container.dtypes)
    raise StreamfxError(
        "timeseries_container must be a polars DataFrame, a pyarrow Table or a pandas "
        f"DataFrame, not {type(container).__name__}"
    )


def _require(frame: pl.DataFrame, argument: str, column: str | None) -> None:
    if column is not None and column not in frame.columns:
        raise StreamfxError(
            f"{argument}={column!r} is not a column of the input "
            f"(columns: {', '.join(frame.columns)})"
        )


def _to_long(
    frame: pl.DataFrame,
    column_id: str | None,
    column_sort: str | None,
    column_kind: str | None,
    column_value: str | None,
) -> tuple[pl.DataFrame, list[str]]:
    """Columns _ID (original), _ORDER, _KIND (str), _VALUE (float64); kinds in tsfresh's order."""
    if column_id is None:
        raise StreamfxError("column_id is required: the column that tells the series apart")
    for argument, column in (
        ("column_id", column_id),
        ("column_sort", column_sort),
        ("column_kind", column_kind),
        ("column_value", column_value),
    ):
        _require(frame, argument, column)

    order = pl.col(column_sort) if column_sort else pl.int_range(pl.len(), dtype=pl.Int64)
    base = [pl.col(column_id).alias(_ID), order.alias(_ORDER)]
    if column_kind is not None:  # long format
        if column_value is None:
            others = [c for c in frame.columns if c not in (column_id, column_sort, column_kind)]
            if len(others) != 1:
                raise StreamfxError(
                    "column_value is needed: cannot guess the value column among "
                    f"{', '.join(others) or 'no other columns'}"
                )
            column_value = others[0]
        long = frame.select(
            *base, pl.col(column_kind).alias(_KIND), _float(frame, column_value).alias(_VALUE)
        )
        _refuse_missing(long, {_ID: column_id, _ORDER: column_sort, _KIND: column_kind})
        _refuse_missing_values(long, [column_value])
        # tsfresh groups by (id, kind) sorted on their own types and names columns in order of
        # first appearance: kinds of the first id (sorted), then new kinds of the next id, ...
        kinds = (
            long.select(_ID, _KIND)
            .unique()
            .sort([_ID, _KIND])
            .get_column(_KIND)
            .cast(pl.String)
            .unique(maintain_order=True)
            .to_list()
        )
        return long.with_columns(pl.col(_KIND).cast(pl.String)), kinds

    # wide format: every column besides id and sort is one kind, in column order (as tsfresh)
    kinds = (
        [column_value]
        if column_value is not None
        else [c for c in frame.columns if c not in (column_id, column_sort)]
    )
    if not kinds:
        raise StreamfxError(
            "no value columns: the wide format needs columns besides column_id and column_sort"
        )
    wide = frame.select(*base, *(_float(frame, k).alias(k) for k in kinds))
    _refuse_missing(wide, {_ID: column_id, _ORDER: column_sort})
    _refuse_missing_values(wide, kinds)
    long = wide.unpivot(on=kinds, index=[_ID, _ORDER], variable_name=_KIND, value_name=_VALUE)
    return long, kinds


def _float(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not (dtype.is_numeric() or dtype == pl.Boolean):
        raise StreamfxError(f"value column {column!r} holds {dtype}, not numbers")
    return pl.col(column).cast(pl.Float64)


def _refuse_missing(frame: pl.DataFrame, columns: Mapping[str, str | None]) -> None:
    for internal, name in columns.items():
        if name is not None and frame.get_column(internal).null_count():
            raise StreamfxError(f"column {name!r} must not contain missing values")


def _refuse_missing_values(frame: pl.DataFrame, names: Sequence[str]) -> None:
    """Refuse null or NaN values: long frames hold them in _VALUE, wide ones under their names."""
    internals = [_VALUE] if _VALUE in frame.columns else list(names)
    for internal, name in zip(internals, names, strict=True):
        column = frame.get_column(internal)
        if column.null_count() or column.is_nan().any():
            raise StreamfxError(f"column {name!r} must not contain missing values (null or NaN)")


def _id_map(long: pl.DataFrame) -> pl.DataFrame:
    """Each original id (column _ID) and its string era_id, sorted by id."""
    ids = long.select(_ID).unique().sort(_ID)
    era = ids.get_column(_ID).cast(pl.String, strict=False)
    if era.null_count() or era.n_unique() != ids.height:  # not printable one-to-one: number them
        era = pl.Series(_ERA, [str(i) for i in range(ids.height)], dtype=pl.String)
    return ids.with_columns(era.alias(_ERA))


def _time(long: pl.DataFrame) -> pl.Expr:
    """The ``time`` column: real timestamps kept, any other ordering turned into ranks."""
    dtype = long.schema[_ORDER]
    order = pl.col(_ORDER)
    if dtype == pl.Date:
        return order.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("time")
    if isinstance(dtype, pl.Datetime):
        exact = (
            dtype.time_unit != "ns"
            or not (long.get_column(_ORDER).dt.epoch("ns") % 1000 != 0).any()
        )
        if exact:
            utc = (
                order.dt.convert_time_zone("UTC")
                if dtype.time_zone
                else order.dt.replace_time_zone("UTC")
            )
            return utc.dt.cast_time_unit("us").alias("time")
    # ordinal rank: ties keep the rows' order; one microsecond apart from the epoch on
    rank = order.rank("ordinal").cast(pl.Int64)
    return pl.from_epoch(rank, time_unit="us").dt.replace_time_zone("UTC").alias("time")


def _resolve_parameters(
    kinds: Sequence[str],
    default: str | FCParameters | None,
    per_kind: Mapping[Any, str | FCParameters] | None,
) -> dict[str, dict[str, Any]]:
    """Settings of each kind to compute, in tsfresh's rules (kinds without settings are skipped)."""
    if per_kind is not None and not isinstance(per_kind, Mapping):
        raise StreamfxError(
            "kind_to_fc_parameters must map kinds to feature sets, "
            f"not be a {type(per_kind).__name__}"
        )
    overrides = {
        str(k): _settings(v, f"kind_to_fc_parameters[{k!r}]") for k, v in (per_kind or {}).items()
    }
    if default is None:
        default = None if per_kind is not None else "comprehensive"  # as tsfresh
    fallback = _settings(default, "default_fc_parameters") if default is not None else {}
    chosen = {kind: overrides.get(kind, fallback) for kind in kinds}
    return {kind: settings for kind, settings in chosen.items() if settings}


def _settings(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, str | Mapping):
        raise StreamfxError(
            f"{where}: expected minimal, efficient, comprehensive or a dict of calculators, "
            f"not a {type(spec).__name__}"
        )
    try:
        settings = feature_set(spec)
    except StreamfxError as exc:
        raise StreamfxError(f"{where}: {exc}") from exc
    check_calculators(settings, where)
    return settings


# -- output ---------------------------------------------------------------------------------


def _to_wide(
    features: pa.Table,
    ids: pl.DataFrame,
    kinds: Sequence[str],
    fc_parameters: Mapping[str, Mapping[Any, Any]],
) -> tuple[pl.Series, np.ndarray, list[str]]:
    """The ids that got features (original type, sorted) and their features in tsfresh's
    column order: a float64 matrix (NaN where an id lacks a feature) and its column names."""
    long = pl.from_arrow(features)
    assert isinstance(long, pl.DataFrame)
    if long.height == 0:
        return ids.get_column(_ID).clear(), np.empty((0, 0)), []
    long = long.with_columns(
        (pl.col("sensor") + "__" + pl.col("feature")).alias("name"),
    )
    rank = {kind: i for i, kind in enumerate(kinds)}
    # tsfresh's order: kinds in order, then calculators in settings order; within a
    # calculator the extractor's order (its parameter sets' order).
    calculator_rank = pl.DataFrame(
        [
            (kind, getattr(calc, "__name__", calc), i)
            for kind, settings in fc_parameters.items()
            for i, calc in enumerate(settings)
        ],
        schema={"sensor": pl.String, "calculator": pl.String, "c": pl.Int64},
        orient="row",
    )
    names = (
        long.select("sensor", "feature", "name")
        .unique(maintain_order=True)
        .with_columns(
            pl.col("sensor").replace_strict(rank, return_dtype=pl.Int64).alias("r"),
            pl.col("feature").str.split("__").list.first().alias("calculator"),
        )
        .join(calculator_rank, on=["sensor", "calculator"], how="left", maintain_order="left")
        .sort("r", "c", maintain_order=True, nulls_last=True)
        .get_column("name")
        .to_list()
    )
    # the ids that got features, in id order; a feature an id lacks is NaN, as in tsfresh
    present = ids.filter(pl.col(_ERA).is_in(long.get_column(_ERA).unique().implode()))
    matrix, _ = scatter(long, _ERA, present.get_column(_ERA), pl.Series(names, dtype=pl.String))
    return present.get_column(_ID), matrix, names


def _arrow_table(ids: pl.Series, matrix: np.ndarray, names: list[str]) -> pa.Table:
    """The id column, then one float64 column per feature (each column copied once)."""
    columns = np.asfortranarray(matrix)
    arrays = [ids.to_arrow(), *(pa.array(columns[:, j]) for j in range(len(names)))]
    return pa.Table.from_arrays(arrays, names=[ids.name, *names])


def _polars_output(ids: pl.Series, matrix: np.ndarray, names: list[str]) -> pl.DataFrame:
    wide = pl.from_arrow(_arrow_table(ids, matrix, names))
    assert isinstance(wide, pl.DataFrame)
    return wide


def _arrow_output(schema: pa.Schema):
    def output(ids: pl.Series, matrix: np.ndarray, names: list[str]) -> pa.Table:
        table = _arrow_table(ids, matrix, names)
        field = schema.field(ids.name)
        try:
            column = table.column(0).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return table
        return table.set_column(0, pa.field(ids.name, field.type), column)

    return output


def _pandas_output(dtypes: Any):
    def output(ids: pl.Series, matrix: np.ndarray, names: list[str]) -> Any:
        import pandas as pd

        index = pd.Index(ids.to_pandas()).astype(dtypes[ids.name])
        index.name = None  # as tsfresh
        values = matrix if names else None
        result = pd.DataFrame(values, index=index, columns=pd.Index(names), dtype=float)
        return result.sort_index()

    return output
