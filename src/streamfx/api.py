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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .errors import StreamfxError
from .extract.era_features import extract_all
from .extract.feature_sets import FCParameters, feature_set
from .extract.impute import impute_matrix
from .extract.plugin_calculators import check_calculators
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
    impute_function: Callable[..., Any] | None = None,
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
    ``impute_function``: None keeps NaN and infinities (tsfresh's default); tsfresh's
    ``tsfresh.utilities.dataframe_functions.impute`` replaces them column by column as it does
    (+inf -> max, -inf -> min, NaN -> median of the finite values; 0 in a column without any),
    for every kind of result. Other functions are refused.

    Returns one row per id that got features, sorted by id, columns ``{kind}__{feature}`` in
    tsfresh's order, float64 (NaN where a feature is undefined or the id lacks that kind):
    pandas in -> pandas DataFrame indexed by the ids (as tsfresh); polars in -> polars
    DataFrame with the id column first; pyarrow in -> pyarrow Table likewise.
    """
    extractor = get_extractor(engine, where="engine")
    _check_impute(impute_function)
    frame, output = _to_polars(timeseries_container)
    long, kinds = _to_long(frame, column_id, column_sort, column_kind, column_value)
    fc_parameters = _resolve_parameters(kinds, default_fc_parameters, kind_to_fc_parameters)

    long, ids = _id_map(long)
    time = _time(long)
    if len(fc_parameters) < len(kinds):  # kinds without settings are not computed
        long = long.filter(pl.col(_KIND).is_in(list(fc_parameters)))
    readings = (
        long.select(
            pl.col(_ERA), pl.col(_KIND).alias("sensor"), time, pl.col(_VALUE).alias("value")
        )
        .to_arrow()
        .cast(READINGS_SCHEMA)
    )
    features = extract_all(extractor, readings, fc_parameters, n_jobs=n_jobs)
    present, matrix, names = _to_wide(features, ids, kinds, fc_parameters)
    if impute_function is not None:
        impute_matrix(matrix)
    return output(present.rename(column_id), matrix, names)


def _check_impute(function: Callable[..., Any] | None) -> None:
    """Only tsfresh's ``impute``: streamfx applies it to the matrix, whatever the result's kind
    (a pandas function could not run on a polars or pyarrow result)."""
    if function is None:
        return
    from tsfresh.utilities.dataframe_functions import impute

    if function is not impute:
        name = getattr(function, "__qualname__", type(function).__name__)
        raise StreamfxError(
            f"impute_function: {name} is not supported; pass None or "
            "tsfresh.utilities.dataframe_functions.impute"
        )


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
        # first appearance: kinds of the first id (sorted), then new kinds of the next id, ...,
        # i.e. kinds sorted by the first id they appear in, then by themselves
        kinds = (
            long.group_by(_KIND)
            .agg(pl.col(_ID).min())
            .sort([_ID, _KIND])
            .get_column(_KIND)
            .cast(pl.String)
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


def _id_map(long: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``long`` with each row's string era_id, and each original id (column _ID) with its
    era_id, sorted by id. The era_id is the id as text where that is one-to-one (no join)."""
    ids = long.select(_ID).unique().sort(_ID)
    era = ids.get_column(_ID).cast(pl.String, strict=False)
    if era.null_count() or era.n_unique() != ids.height:  # not printable one-to-one: number them
        ids = ids.with_columns(pl.int_range(ids.height).cast(pl.String).alias(_ERA))
        return long.join(ids, on=_ID, how="left", maintain_order="left"), ids
    text = pl.col(_ID).cast(pl.String, strict=False).alias(_ERA)
    return long.with_columns(text), ids.with_columns(era.alias(_ERA))


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
) -> tuple[pl.Series, np.ndarray, pa.StringArray]:
    """The ids that got features (original type, sorted) and their features in tsfresh's
    column order: a float64 ids × names matrix, column-major (NaN where an id lacks a
    feature), and the names.

    The long rows' strings become integer codes (the id's row, the kind's rank, the
    feature's dictionary index), hashed once per run of equal values; the rest works on the
    codes and on the distinct (kind, feature) pairs: on 13 k columns, joins and sorts of
    strings over all rows cost more than the extraction.
    """
    if features.num_rows == 0:
        return ids.get_column(_ID).clear(), np.empty((0, 0)), pa.array([], pa.string())
    era, seen = _positions(features["era_id"], ids.get_column(_ERA).to_arrow())
    kind_names = pa.array(kinds, pa.string())
    rank, _ = _positions(features["sensor"], kind_names)
    feature, dictionary = _dictionary(features["feature"])
    values = features["value"].to_numpy()  # nulls -> NaN
    if min(era.min(), rank.min()) < 0:  # rows of ids or kinds not asked for are left out
        keep = (era >= 0) & (rank >= 0)
        era, rank, feature, values = era[keep], rank[keep], feature[keep], values[keep]
        seen = np.unique(era)
    size = len(dictionary)
    pair = np.multiply(rank, size, dtype=np.int64)
    pair += feature

    # tsfresh's order: kinds in order, then calculators in settings order; within a
    # calculator the extractor's order (its parameter sets' order: first appearance).
    first = np.full(len(kinds) * size, len(pair))
    np.minimum.at(first, pair, np.arange(len(pair)))  # each (kind, feature)'s first row
    pairs = np.flatnonzero(first < len(pair))
    pair_rank, pair_feature = np.divmod(pairs, size)
    place = _calculator_places(kinds, fc_parameters, dictionary)
    order = np.lexsort((first[pairs], place[pair_rank, pair_feature], pair_rank))
    pairs, pair_rank, pair_feature = pairs[order], pair_rank[order], pair_feature[order]
    names = pc.binary_join_element_wise(
        kind_names.take(pair_rank), dictionary.take(pair_feature), "__"
    )

    # a row per id, a column per name (a feature an id lacks is NaN, as in tsfresh), then
    # only the ids that got features
    start = np.empty(len(kinds) * size, dtype=np.int64)  # a (kind, feature)'s first cell
    start[pairs] = np.arange(len(pairs)) * ids.height
    cell = np.take(start, pair)
    cell += era
    cells = np.full(ids.height * len(pairs), np.nan)  # column after column
    cells[cell] = values
    matrix = cells.reshape(len(pairs), ids.height).T
    got = np.zeros(ids.height, dtype=bool)
    got[seen] = True
    if got.all():
        return ids.get_column(_ID), matrix, names
    return ids.get_column(_ID).filter(got), np.asfortranarray(matrix[got]), names


def _calculator_places(
    kinds: Sequence[str], fc_parameters: Mapping[str, Mapping[Any, Any]], features: pa.Array
) -> np.ndarray:
    """Kinds × ``features``: where the feature's calculator stands in the kind's settings
    (tsfresh orders the columns by it); last where the kind has no such calculator."""
    calculator = pc.dictionary_encode(
        pc.list_element(pc.split_pattern(features, "__", max_splits=1), 0)
    )
    column = {name: j for j, name in enumerate(calculator.dictionary.to_pylist())}
    rank = {kind: i for i, kind in enumerate(kinds)}
    table = np.full((len(kinds), len(column)), np.iinfo(np.int64).max)
    for kind, settings in fc_parameters.items():
        for place, calc in enumerate(settings):
            j = column.get(getattr(calc, "__name__", calc))
            if j is not None:
                table[rank[kind], j] = place
    return table[:, calculator.indices.to_numpy()]


def _runs(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray | None]:
    """``column`` as the values of its runs of equal neighbours and their lengths, where its
    first rows run (else as it is, lengths None). Extractors write two of id, kind and feature
    in runs (native: a feature over a bucket's series, an id over its kinds; tsfresh: an id
    over its kinds, a kind over its features): one hash per run is cheaper than per row."""
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()  # no copy
    head = array.slice(0, 4096)
    if len(head) < 2 or 2 * pc.sum(pc.equal(head[1:], head[:-1])).as_py() < len(head):
        return array, None
    runs = pc.run_end_encode(array)
    return runs.values, np.diff(runs.run_ends.to_numpy(), prepend=0)


def _positions(column: pa.ChunkedArray, among: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The position in ``among`` of each row's value (-1 where it is not there), and of each
    run's: the same positions, fewer, for what only asks which were found."""
    values, lengths = _runs(column)
    found = pc.index_in(values, value_set=among)
    found = (pc.fill_null(found, -1) if found.null_count else found).to_numpy()
    return (found if lengths is None else np.repeat(found, lengths)), found


def _dictionary(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Each value's index in the distinct values, and those (in order of first appearance)."""
    values, lengths = _runs(column)
    encoded = pc.dictionary_encode(values)
    indices = encoded.indices.to_numpy()
    return (indices if lengths is None else np.repeat(indices, lengths)), encoded.dictionary


def _arrow_table(ids: pl.Series, matrix: np.ndarray, names: pa.StringArray) -> pa.Table:
    """The id column, then one float64 column per feature: zero-copy slices of the
    column-major matrix's buffer."""
    rows = matrix.shape[0]
    flat = pa.array(matrix.T.reshape(-1))  # column after column
    arrays = [ids.to_arrow(), *(flat.slice(j * rows, rows) for j in range(len(names)))]
    return pa.Table.from_arrays(arrays, names=[ids.name, *names.to_pylist()])


def _polars_output(ids: pl.Series, matrix: np.ndarray, names: pa.StringArray) -> pl.DataFrame:
    """The id column, then one float64 column per feature. Where features outnumber ids,
    polars makes the columns itself (a transpose of one column per id): one Series per
    feature from Python costs more than the extraction on 13 k columns."""
    if matrix.shape[0] < matrix.shape[1]:
        per_id = pl.Series(matrix.T).arr.to_struct().struct.unnest()
        wide = per_id.transpose(column_names=names.to_pylist())
    else:
        wide = pl.from_numpy(matrix, schema=names.to_pylist(), orient="row")  # zero-copy columns
    return pl.concat([ids.to_frame(), wide], how="horizontal")


def _arrow_output(schema: pa.Schema):
    def output(ids: pl.Series, matrix: np.ndarray, names: pa.StringArray) -> pa.Table:
        table = _arrow_table(ids, matrix, names)
        field = schema.field(ids.name)
        try:
            column = table.column(0).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return table
        return table.set_column(0, pa.field(ids.name, field.type), column)

    return output


def _pandas_output(dtypes: Any):
    def output(ids: pl.Series, matrix: np.ndarray, names: pa.StringArray) -> Any:
        import pandas as pd

        index = pd.Index(ids.to_pandas()).astype(dtypes[ids.name])
        index.name = None  # as tsfresh
        if len(names):  # pandas' own string type, as from a list
            values, columns = matrix, pd.Index(names.to_pandas())
        else:
            values, columns = None, pd.Index([])
        result = pd.DataFrame(values, index=index, columns=columns, dtype=float, copy=False)
        return result.sort_index()

    return output
