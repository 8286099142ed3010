"""``streamfx.extract_features``: tsfresh's entry point, on polars, pyarrow or pandas frames.

A tsfresh user switches with one import::

    from streamfx import extract_features  # instead of: from tsfresh import extract_features

    X = extract_features(df, column_id="id", column_sort="time")

The arguments are tsfresh 0.21's, in its order and with its meaning; the result has tsfresh's
shape (one row per id, one ``{kind}__{feature}`` column per feature, in tsfresh's order) in the
caller's frame kind. Internally the input is normalized with polars to
``model.READINGS_SCHEMA`` (id -> ``era_id``, kind -> ``sensor``, sort -> ``time``), cut into
work units of ``chunksize`` series and handed, unit by unit, to a registered extractor through
a tsfresh distributor (tsfresh's ``MapDistributor`` and its progress bar unless one is given).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .classify.plan import available_cores
from .errors import InvalidInput, StreamfxError
from .extract.era_features import extract_all_blocks
from .extract.extractor import FeatureBlock, long_table
from .extract.feature_sets import FCParameters, feature_set
from .extract.impute import impute_matrix
from .extract.plugin_calculators import check_calculators
from .frames import Kind, pandas_index, python_ids, to_polars
from .model import FEATURES_SCHEMA, READINGS_SCHEMA
from .names import NAME_STYLES, NameStyle, safe_names
from .plugins.manager import feature_calculators, get_extractor

#: ``n_jobs`` of the API's functions when not given: the cores this process may run on, as
#: threads of the native kernels (one process: threads share the input and the libraries);
#: tsfresh's own parts (a calculator left to it, feature selection) start that many processes.
N_JOBS = available_cores()
#: ``chunksize=None``: about this many work units (5 per worker of a distributor that has
#: workers), each of at least MIN_UNIT_SERIES series: the progress bar moves, and a unit is
#: large enough for the vectorized kernels. Without a progress bar to move, in this process,
#: the readings stay one unit (cutting them costs a pass over them).
UNITS = 10
MIN_UNIT_SERIES = 1000

_ID, _ORDER, _KIND, _VALUE, _ERA = "__sfx_id", "__sfx_order", "__sfx_kind", "__sfx_value", "era_id"
_DICT_KIND = "__sfx_dict_kind"


def extract_features(
    timeseries_container: Any,
    default_fc_parameters: str | FCParameters | None = None,
    kind_to_fc_parameters: Mapping[Any, str | FCParameters] | None = None,
    column_id: str | None = None,
    column_sort: str | None = None,
    column_kind: str | None = None,
    column_value: str | None = None,
    chunksize: int | None = None,
    n_jobs: int = N_JOBS,
    show_warnings: bool = False,
    disable_progressbar: bool = False,
    impute_function: Callable[..., Any] | None = None,
    profile: bool = False,
    profiling_filename: str = "profile.txt",
    profiling_sorting: str = "cumulative",
    distributor: Any = None,
    pivot: bool = True,
    *,
    engine: str = "native",
    names: NameStyle = "tsfresh",
) -> Any:
    """Extract features per id, like ``tsfresh.extract_features`` (same arguments, same order).

    ``timeseries_container``: a polars DataFrame (or LazyFrame), a pyarrow Table (or
    RecordBatch), a pandas DataFrame, or a dict of them (kind -> frame of id, sort and value),
    in tsfresh's long format (``column_kind`` given: one row per id, sort key, kind and value;
    ``column_value`` guessed when it is the only other column) or its wide format
    (``column_kind`` None: every column other than id and sort is a kind, or only
    ``column_value`` when given). Ids may be tuples (``roll_time_series``'s) or polars
    structs. Missing values (null/NaN) are refused, as tsfresh does.

    ``column_sort``: the order of each series. None keeps the rows' given order. A timestamp
    (or date) column becomes the readings' ``time`` as is (naive = UTC); any other sortable
    column (numbers, strings, nanosecond times finer than a microsecond) is replaced by its
    ordinal rank, so only the ordering is kept, and a plugin calculator that reads times
    (``kind="series"``) is refused.

    ``default_fc_parameters``: "minimal", "efficient", "comprehensive" or a tsfresh settings
    dict (``MinimalFCParameters()`` and the like). None means comprehensive (tsfresh's default),
    unless ``kind_to_fc_parameters`` is given: then, as in tsfresh, only the kinds it names are
    computed. ``kind_to_fc_parameters`` maps kind -> settings (a name or a dict) and overrides
    the default for those kinds.

    ``chunksize``: series per work unit (each unit is one extractor call, one step of the
    progress bar, one task of a distributor). None: about ten units of at least 1,000 series
    (five per worker of a distributor with workers), one without a progress bar or a
    distributor. ``n_jobs``: the native kernels' threads within a unit (tsfresh's processes
    for a calculator left to it), by default the cores this process may use (``N_JOBS``); 0
    or 1: one thread; unused with a ``distributor``, as in tsfresh. ``distributor``: a tsfresh
    distributor (``MultiprocessingDistributor``, a dask one) that runs the units; tsfresh's
    ``ApplyDistributor`` is refused.

    ``show_warnings``: show the warnings raised during the call (hidden by default, as in
    tsfresh; calculators that tsfresh computes keep its default of hiding theirs).
    ``disable_progressbar``: no progress bar (shown on stderr by default, as in tsfresh).
    ``impute_function``: None keeps NaN and infinities; a function is called on the result,
    which it changes in place, as tsfresh does: on a pandas result as is, on a polars or
    pyarrow one through a pandas frame of the features. tsfresh's ``impute`` itself runs on the
    feature matrix, with the same figures. ``profile``: profile the call with cProfile into
    ``profiling_filename``, sorted by ``profiling_sorting``, as tsfresh does.

    ``pivot``: True gives one row per id. False gives tsfresh's unpivoted result, one
    ``(id, name, value)`` per feature of each series, in tsfresh's order: a list of tuples
    for pandas input (as tsfresh), a frame of ``column_id``, ``variable``, ``value`` for
    polars or pyarrow input.

    streamfx's own, keyword only: ``engine``, the registered extractor to compute with
    (``streamfx plugins`` lists them); ``names``: ``"tsfresh"`` names, or ``"safe"`` ones of
    ``[A-Za-z0-9_]`` only (``streamfx.names.safe_names``).

    Returns one row per id that got features, sorted by id, columns ``{kind}__{feature}`` in
    tsfresh's order, float64 (NaN where a feature is undefined or the id lacks that kind):
    pandas in -> pandas DataFrame indexed by the ids (as tsfresh; tuple ids as a MultiIndex);
    polars in -> polars DataFrame with the id column first; pyarrow in -> pyarrow Table likewise.
    Bad input raises ``streamfx.InvalidInput``, a ``ValueError`` as tsfresh's.
    """
    with _profiling(profile, profiling_filename, profiling_sorting), _warnings(show_warnings):
        try:
            get_extractor(engine, where="engine")
        except StreamfxError as exc:
            raise InvalidInput(str(exc)) from None
        _check_impute(impute_function, pivot)
        if names not in NAME_STYLES:
            raise InvalidInput(f"names must be one of {', '.join(NAME_STYLES)}, not {names!r}")
        data = _read(timeseries_container, column_id, column_sort, column_kind, column_value)
        fc_parameters = _resolve_parameters(
            data.kinds, default_fc_parameters, kind_to_fc_parameters
        )
        long, ids = _id_map(data.long)
        time, exact = _time(long)
        if not exact:
            _refuse_time_aware(fc_parameters, column_sort, long.schema[_ORDER])
        if len(fc_parameters) < len(data.kinds):  # kinds without settings are not computed
            long = long.filter(pl.col(_KIND).is_in(list(fc_parameters)))
        readings = (
            long.select(
                pl.col(_ERA), pl.col(_KIND).alias("sensor"), time, pl.col(_VALUE).alias("value")
            )
            .to_arrow()
            .cast(READINGS_SCHEMA)
        )
        blocks, features = _extract(
            readings,
            fc_parameters,
            engine=engine,
            n_jobs=n_jobs,
            chunksize=chunksize,
            distributor=distributor,
            disable_progressbar=disable_progressbar,
            show_warnings=show_warnings,
        )
        present, matrix, feature_names = _to_wide(blocks, features, ids, data.kinds, fc_parameters)
        shown = safe_names(feature_names.to_pylist()) if names == "safe" else None
        if not pivot:
            long = pa.concat_tables([long_table(blocks), features]) if blocks else features
            return _unpivoted(long, ids, data, feature_names, shown, column_id)
        if shown is not None:
            feature_names = pa.array(shown, pa.string())
        return _output(data, present.rename(column_id), matrix, feature_names, impute_function)


@contextlib.contextmanager
def _profiling(profile: bool, filename: str, sorting: str) -> Iterator[None]:
    """tsfresh's profiler around the call, its report written to ``filename`` after it."""
    if not profile:
        yield
        return
    from tsfresh.utilities import profiling

    profiler = profiling.start_profiling()
    try:
        yield
    finally:
        profiling.end_profiling(profiler, filename=filename, sorting=sorting)


@contextlib.contextmanager
def _warnings(show: bool) -> Iterator[None]:
    """tsfresh's ``show_warnings``: every warning of the call shown, or none."""
    with warnings.catch_warnings():
        warnings.simplefilter("default" if show else "ignore")
        yield


def _check_impute(function: Callable[..., Any] | None, pivot: bool) -> None:
    if function is None:
        return
    if not callable(function):
        raise InvalidInput(
            f"impute_function must be a function such as tsfresh's impute, "
            f"not a {type(function).__name__}"
        )
    if not pivot:
        raise InvalidInput("impute_function imputes the pivoted result: pass pivot=True")


def _refuse_time_aware(
    fc_parameters: Mapping[str, FCParameters], column_sort: str | None, dtype: pl.DataType
) -> None:
    """A plugin calculator of kind "series" gets each reading's time: with a sort column that
    only orders (its ranks), it would compute on made-up times."""
    calculators = feature_calculators()
    for kind, settings in fc_parameters.items():
        for name in settings:
            calculator = calculators.get(name) if isinstance(name, str) else None
            if calculator is None or calculator.kind != "series":
                continue
            given = (
                f"column_sort={column_sort!r} holds {dtype}, which only orders the readings"
                if column_sort
                else "there is no column_sort"
            )
            raise InvalidInput(
                f"calculator {name!r} (kind {kind!r}) reads the readings' times, but {given}: "
                "give a column_sort of timestamps or dates (to the microsecond), or leave the "
                "calculator out"
            )


# -- input ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Input:
    """The input in long form, and what the result needs to know of it."""

    long: pl.DataFrame  # _ID (as given), _ORDER, _KIND (str), _VALUE (float64)
    kinds: list[str]  # in tsfresh's column order
    series_kinds: list[str]  # in the order tsfresh visits an id's series (pivot=False)
    kind_major: bool  # a dict of frames: tsfresh visits kind after kind, each id within
    kind: Kind  # what the result goes back as
    id_type: Any  # the id's pandas dtype or pyarrow type (None for polars)


def _read(
    container: Any,
    column_id: str | None,
    column_sort: str | None,
    column_kind: str | None,
    column_value: str | None,
) -> _Input:
    if column_id is None:
        raise InvalidInput("column_id is required: the column that tells the series apart")
    if isinstance(container, Mapping):
        return _read_dict(container, column_id, column_sort, column_kind, column_value)
    frame, kind = to_polars(container)
    _require(frame, "", column_id=column_id, column_sort=column_sort)
    id_type = _id_type(container, kind, column_id)
    if column_kind is not None:
        long, kinds, series_kinds = _long(
            frame, "", column_id, column_sort, column_kind, column_value
        )
        return _Input(long, kinds, series_kinds, False, kind, id_type)
    long, kinds = _wide(frame, column_id, column_sort, column_value)
    return _Input(long, kinds, kinds, False, kind, id_type)


def _read_dict(
    containers: Mapping[Any, Any],
    column_id: str,
    column_sort: str | None,
    column_kind: str | None,
    column_value: str | None,
) -> _Input:
    """tsfresh's dict of frames, kind -> frame of id, sort and value: kinds in the dict's order."""
    if column_kind is not None:
        raise InvalidInput(
            "column_kind: a dict of frames is split by kind already (its keys); leave it None"
        )
    if not containers:
        raise InvalidInput("timeseries_container: the dict holds no frames")
    parts = []
    for key, container in containers.items():
        where = f"timeseries_container[{key!r}]"
        frame, kind = to_polars(container, where)
        _require(frame, where, column_id=column_id, column_sort=column_sort)
        if not parts:
            first = (kind, _id_type(container, kind, column_id))
        tagged = frame.with_columns(pl.lit(str(key)).alias(_DICT_KIND))
        parts.append(_long(tagged, where, column_id, column_sort, _DICT_KIND, column_value)[0])
    kinds = [str(key) for key in containers]
    return _Input(pl.concat(parts, how="vertical_relaxed"), kinds, kinds, True, *first)


def _id_type(container: Any, kind: Kind, column_id: str) -> Any:
    if kind == "pandas":
        return container.dtypes[column_id]
    if kind == "arrow":
        return container.schema.field(column_id).type
    return None


def _require(frame: pl.DataFrame, where: str, **columns: str | None) -> None:
    for argument, column in columns.items():
        if column is not None and column not in frame.columns:
            raise InvalidInput(
                f"{_at(where)}{argument}={column!r} is not a column of the input "
                f"(columns: {', '.join(frame.columns)})"
            )


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _base(frame: pl.DataFrame, column_id: str, column_sort: str | None) -> list[pl.Expr]:
    order = pl.col(column_sort) if column_sort else pl.int_range(pl.len(), dtype=pl.Int64)
    return [pl.col(column_id).alias(_ID), order.alias(_ORDER)]


def _long(
    frame: pl.DataFrame,
    where: str,
    column_id: str,
    column_sort: str | None,
    column_kind: str,
    column_value: str | None,
) -> tuple[pl.DataFrame, list[str], list[str]]:
    """tsfresh's long format: _ID, _ORDER, _KIND (str), _VALUE; the kinds in tsfresh's column
    order, and in the order it visits an id's series (sorted)."""
    _require(frame, where, column_kind=column_kind, column_value=column_value)
    if column_value is None:
        others = [c for c in frame.columns if c not in (column_id, column_sort, column_kind)]
        if len(others) != 1:
            raise InvalidInput(
                f"{_at(where)}column_value is needed: cannot guess the value column among "
                f"{', '.join(others) or 'no other columns'}"
            )
        column_value = others[0]
    long = frame.select(
        *_base(frame, column_id, column_sort),
        pl.col(column_kind).alias(_KIND),
        _float(frame, column_value, where).alias(_VALUE),
    )
    _refuse_missing(long, {_ID: column_id, _ORDER: column_sort, _KIND: column_kind}, where)
    _refuse_missing_values(long, [column_value], where)
    # tsfresh groups by (id, kind) sorted on their own types and names columns in order of
    # first appearance: kinds of the first id (sorted), then new kinds of the next id, ...,
    # i.e. kinds sorted by the first id they appear in, then by themselves
    firsts = long.group_by(_KIND).agg(pl.col(_ID).min())
    kinds = firsts.sort([_ID, _KIND]).get_column(_KIND).cast(pl.String).to_list()
    visited = firsts.get_column(_KIND).sort().cast(pl.String).to_list()
    return long.with_columns(pl.col(_KIND).cast(pl.String)), kinds, visited


def _wide(
    frame: pl.DataFrame, column_id: str, column_sort: str | None, column_value: str | None
) -> tuple[pl.DataFrame, list[str]]:
    """tsfresh's wide format: every column besides id and sort is one kind, in column order."""
    _require(frame, "", column_value=column_value)
    kinds = (
        [column_value]
        if column_value is not None
        else [c for c in frame.columns if c not in (column_id, column_sort)]
    )
    if not kinds:
        raise InvalidInput(
            "no value columns: the wide format needs columns besides column_id and column_sort"
        )
    wide = frame.select(
        *_base(frame, column_id, column_sort), *(_float(frame, k, "").alias(k) for k in kinds)
    )
    _refuse_missing(wide, {_ID: column_id, _ORDER: column_sort}, "")
    _refuse_missing_values(wide, kinds, "")
    long = wide.unpivot(on=kinds, index=[_ID, _ORDER], variable_name=_KIND, value_name=_VALUE)
    return long, kinds


def _float(frame: pl.DataFrame, column: str, where: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not (dtype.is_numeric() or dtype == pl.Boolean):
        raise InvalidInput(f"{_at(where)}value column {column!r} holds {dtype}, not numbers")
    return pl.col(column).cast(pl.Float64)


def _refuse_missing(frame: pl.DataFrame, columns: Mapping[str, str | None], where: str) -> None:
    for internal, name in columns.items():
        if name is not None and frame.get_column(internal).null_count():
            raise InvalidInput(f"{_at(where)}column {name!r} must not contain missing values")


def _refuse_missing_values(frame: pl.DataFrame, names: Sequence[str], where: str) -> None:
    """Refuse null or NaN values: long frames hold them in _VALUE, wide ones under their names."""
    internals = [_VALUE] if _VALUE in frame.columns else list(names)
    for internal, name in zip(internals, names, strict=True):
        column = frame.get_column(internal)
        if column.null_count() or column.is_nan().any():
            raise InvalidInput(
                f"{_at(where)}column {name!r} must not contain missing values (null or NaN)"
            )


def _id_map(long: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``long`` with each row's string era_id, and each original id (column _ID) with its
    era_id, sorted by id. Integer ids become their zero-padded offset from the smallest; other
    ids their text where that is one-to-one (no join); structs and lists (tuple ids) are
    numbered."""
    ids = long.get_column(_ID).unique().sort().to_frame()
    dtype = long.schema[_ID]
    if dtype.is_integer() and ids.height:
        # the offset from the smallest id, zero-padded: the era_ids then sort as the ids do,
        # so the extractor's series come in the result's order (see ``_to_wide``)
        low, high = ids.item(0, _ID), ids.item(-1, _ID)
        if high - low < 2**63:
            width = len(str(high - low))
            wide = pl.UInt64 if dtype == pl.UInt64 else pl.Int64  # room for the offsets
            text = (pl.col(_ID).cast(wide) - low).cast(pl.String).str.zfill(width)
            ids = ids.with_columns(text.alias(_ERA))
            # each row's id found among the sorted ids: cheaper than a string per row
            where = ids.get_column(_ID).search_sorted(long.get_column(_ID))
            return long.with_columns(ids.get_column(_ERA).gather(where)), ids
    if not dtype.is_nested():
        era = ids.get_column(_ID).cast(pl.String, strict=False)
        if not era.null_count() and era.n_unique() == ids.height:
            text = pl.col(_ID).cast(pl.String, strict=False).alias(_ERA)
            return long.with_columns(text), ids.with_columns(era.alias(_ERA))
    ids = ids.with_columns(pl.int_range(ids.height).cast(pl.String).alias(_ERA))
    return long.join(ids, on=_ID, how="left", maintain_order="left"), ids


def _time(long: pl.DataFrame) -> tuple[pl.Expr, bool]:
    """The ``time`` column, and whether it holds the input's times: real timestamps are kept,
    any other ordering is turned into ranks (one microsecond apart from the epoch on)."""
    dtype = long.schema[_ORDER]
    order = pl.col(_ORDER)
    if dtype == pl.Date:
        return order.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("time"), True
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
            return utc.dt.cast_time_unit("us").alias("time"), True
    # ordinal rank: ties keep the rows' order
    rank = order.rank("ordinal").cast(pl.Int64)
    return pl.from_epoch(rank, time_unit="us").dt.replace_time_zone("UTC").alias("time"), False


def _resolve_parameters(
    kinds: Sequence[str],
    default: str | FCParameters | None,
    per_kind: Mapping[Any, str | FCParameters] | None,
) -> dict[str, dict[str, Any]]:
    """Settings of each kind to compute, in tsfresh's rules (kinds without settings are skipped)."""
    if per_kind is not None and not isinstance(per_kind, Mapping):
        raise InvalidInput(
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
        raise InvalidInput(
            f"{where}: expected minimal, efficient, comprehensive or a dict of calculators, "
            f"not a {type(spec).__name__}"
        )
    try:
        settings = feature_set(spec)
        check_calculators(settings, where)
    except InvalidInput:
        raise
    except StreamfxError as exc:
        message = str(exc)
        raise InvalidInput(
            message if message.startswith(where) else f"{where}: {message}"
        ) from None
    return settings


# -- extraction -----------------------------------------------------------------------------


def _extract(
    readings: pa.Table,
    fc_parameters: Mapping[str, FCParameters],
    *,
    engine: str,
    n_jobs: int,
    chunksize: int | None,
    distributor: Any,
    disable_progressbar: bool,
    show_warnings: bool,
) -> tuple[list[FeatureBlock], pa.Table]:
    """The features of ``readings``, unit after unit through the distributor: the
    extractor's blocks and the rest as long rows (``extract_all_blocks``)."""
    from tsfresh.utilities.distribution import (
        ApplyDistributor,
        DistributorBaseClass,
        MapDistributor,
    )

    whole = distributor is None and chunksize is None and disable_progressbar
    if distributor is None:
        distributor = MapDistributor(
            disable_progressbar=disable_progressbar, progressbar_title="Feature Extraction"
        )
    elif isinstance(distributor, ApplyDistributor) or not isinstance(
        distributor, DistributorBaseClass
    ):
        raise InvalidInput(
            f"distributor: {type(distributor).__name__} is not one streamfx can hand its work "
            "units to; pass n_jobs, or one of tsfresh's MapDistributor, "
            "MultiprocessingDistributor, LocalDaskDistributor or ClusterDaskDistributor"
        )
    else:
        n_jobs = 0  # the distributor runs the units in parallel; tsfresh ignores n_jobs too
    workers = getattr(distributor, "n_workers", 0) or 0
    units = [readings] if whole else _units(readings, chunksize, workers)
    results = distributor.map_reduce(
        _extract_unit,
        data=units,
        chunk_size=1,
        function_kwargs={
            "engine": engine,
            "fc_parameters": fc_parameters,
            "n_jobs": n_jobs,
            "show_warnings": show_warnings,
        },
    )
    blocks = [block for unit_blocks, _ in results for block in unit_blocks]
    tables = [table for _, table in results if table.num_rows]
    return blocks, pa.concat_tables(tables) if tables else FEATURES_SCHEMA.empty_table()


def _units(readings: pa.Table, chunksize: int | None, workers: int) -> list[pa.Table]:
    """``readings`` cut into units of ``chunksize`` series. The series go in order of their
    length, so a unit holds whole buckets of equal-length series (one kernel call each), as
    the undivided readings would."""
    if chunksize is not None and (
        isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1
    ):
        raise InvalidInput(f"chunksize must be a positive number of series, not {chunksize!r}")
    if readings.num_rows == 0:
        return []
    frame = pl.from_arrow(readings)
    assert isinstance(frame, pl.DataFrame)
    keys = ["era_id", "sensor"]
    series = frame.group_by(keys).len().sort(["len", *keys])
    size = chunksize or max(MIN_UNIT_SERIES, math.ceil(series.height / (5 * workers or UNITS)))
    if size >= series.height:
        return [readings]
    unit = series.select(*keys, (pl.int_range(pl.len()) // size).alias("__sfx_unit"))
    parts = frame.join(unit, on=keys).partition_by("__sfx_unit", maintain_order=False)
    parts.sort(key=lambda part: part["__sfx_unit"][0])
    return [part.drop("__sfx_unit").to_arrow().cast(READINGS_SCHEMA) for part in parts]


def _extract_unit(
    readings: pa.Table,
    *,
    engine: str,
    fc_parameters: Mapping[str, FCParameters],
    n_jobs: int,
    show_warnings: bool,
) -> list[tuple[list[FeatureBlock], pa.Table]]:
    """One unit's features (a distributor's map function: it may run in another process)."""
    with _warnings(show_warnings):
        extractor = get_extractor(engine)
        return [extract_all_blocks(extractor, readings, fc_parameters, n_jobs=n_jobs)]


# -- output ---------------------------------------------------------------------------------


def _to_wide(
    blocks: Sequence[FeatureBlock],
    features: pa.Table,
    ids: pl.DataFrame,
    kinds: Sequence[str],
    fc_parameters: Mapping[str, Mapping[Any, Any]],
) -> tuple[pl.Series, np.ndarray, pa.StringArray]:
    """The ids that got features (original type, sorted) and their features in tsfresh's
    column order: a float64 ids × names matrix, column-major (NaN where an id lacks a
    feature), and the names.

    The extractor's blocks (features × series matrices) are written into the matrix block by
    block; the long rows' strings become integer codes (the id's row, the kind's rank, the
    feature's dictionary index), hashed once per run of equal values. The rest works on the
    codes and on the distinct (kind, feature) pairs: on 13 k columns, joins and sorts of
    strings over all rows cost more than the extraction.
    """
    era_ids = ids.get_column(_ERA).to_arrow()
    kind_names = pa.array(kinds, pa.string())
    code: dict[str, int] = {}  # the features' names, blocks' and long rows' alike
    known: dict[tuple[str, ...], np.ndarray] = {}  # blocks of one settings share their names

    def codes_of(names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        if key not in known:
            known[key] = np.array([code.setdefault(n, len(code)) for n in key], dtype=np.int64)
        return known[key]

    placed = []  # per block: its series' id rows and kind ranks, and its names' codes
    all_eras = all_ranks = np.empty(0, dtype=np.int64)
    if blocks:  # every block's keys at once: a lookup's fixed cost is a small block's work
        keys = pl.concat([block.series for block in blocks], rechunk=True).to_arrow()
        all_eras, _ = _positions(_strings(keys["era_id"]), era_ids)
        all_ranks, _ = _positions(_strings(keys["sensor"]), kind_names)
    starts = np.cumsum([0] + [block.series.height for block in blocks])
    for i, block in enumerate(blocks):
        era, rank = all_eras[starts[i] : starts[i + 1]], all_ranks[starts[i] : starts[i + 1]]
        keep = (era >= 0) & (rank >= 0)  # series of ids or kinds not asked for are left out
        placed.append((era[keep], rank[keep], keep, codes_of(block.names)))
    long = None
    if features.num_rows:
        era, _ = _positions(features["era_id"], era_ids)
        rank, _ = _positions(features["sensor"], kind_names)
        feature, dictionary = _dictionary(features["feature"])
        feature = codes_of(dictionary.to_pylist())[feature]
        keep = (era >= 0) & (rank >= 0)
        values = features["value"].to_numpy()  # nulls -> NaN
        long = (era[keep], rank[keep], feature[keep], values[keep])
    size = len(code)
    if not size or not (any(len(e) for e, *_ in placed) or (long and len(long[0]))):
        return ids.get_column(_ID).clear(), np.empty((0, 0)), pa.array([], pa.string())

    # tsfresh's order: kinds in order, then calculators in settings order; within a
    # calculator the extractor's order (its parameter sets' order): a block's order of
    # names, or the long rows' first appearance (a calculator is in one or the other).
    last = np.iinfo(np.int64).max
    first = np.full(len(kinds) * size, last)
    for _, rank, _, codes in placed:
        pair = np.unique(rank)[:, None] * size + codes[None, :]
        np.minimum.at(first, pair.reshape(-1), np.tile(np.arange(len(codes)), len(pair)))
    if long is not None:
        pair = long[1] * size + long[2]
        np.minimum.at(first, pair, np.arange(len(pair)))
    pairs = np.flatnonzero(first < last)
    pair_rank, pair_feature = np.divmod(pairs, size)
    dictionary = pa.array(list(code), pa.string())
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
    cells = np.full(ids.height * len(pairs), np.nan)  # column after column
    got = np.zeros(ids.height, dtype=bool)
    columns = cells.reshape(len(pairs), ids.height)  # a row per (kind, feature): a view
    for block, (era, rank, keep, codes) in zip(blocks, placed, strict=True):
        values = block.values if keep.all() else block.values[:, keep]
        ranks = np.unique(rank)
        if (
            len(ranks) == 1
            and len(era)
            and np.array_equal(era, np.arange(era[0], era[0] + len(era)))
        ):
            # one kind, consecutive ids (the era_ids sort as the ids do, so whole buckets
            # come this way): a copy of the block's rows into the columns' spans
            rows = start[ranks[0] * size + codes] // ids.height
            columns[rows, era[0] : era[0] + len(era)] = values
        else:
            pair_base = rank * size  # each series' kind, as a pair code without the feature
            # features in groups whose cell index (features x series) stays in the cache
            step = max(1, (1 << 16) // len(era)) if len(era) else len(codes)
            for first in range(0, len(codes), step):
                group = codes[first : first + step, None]
                target = start[pair_base[None, :] + group] + era[None, :]
                cells[target] = values[first : first + step]
        got[era] = True
    if long is not None:
        era, rank, feature, values = long
        cell = start[rank * size + feature]
        cell += era
        cells[cell] = values
        got[era] = True
    matrix = columns.T
    if got.all():
        return ids.get_column(_ID), matrix, names
    return ids.get_column(_ID).filter(got), np.asfortranarray(matrix[got]), names


def _strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A block's key column as plain strings (polars gives views), for ``_positions``."""
    return column.cast(pa.string())


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


def _arrow_output(ids: pl.Series, matrix: np.ndarray, names: pa.StringArray, id_type: Any):
    """The Arrow table, its id column of the input's type where it casts back."""
    table = _arrow_table(ids, matrix, names)
    try:
        column = table.column(0).cast(id_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table
    return table.set_column(0, pa.field(ids.name, id_type), column)


def _pandas_output(ids: pl.Series, matrix: np.ndarray, names: pa.StringArray, id_type: Any):
    """tsfresh's frame: indexed by the ids (of the input's dtype, unnamed), sorted."""
    import pandas as pd

    if len(names):  # pandas' own string type, as from a list
        values, columns = matrix, pd.Index(names.to_pandas())
    else:
        values, columns = None, pd.Index([])
    index = pandas_index(ids, id_type)
    result = pd.DataFrame(values, index=index, columns=columns, dtype=float, copy=False)
    return result.sort_index()


def _output(
    data: _Input,
    ids: pl.Series,
    matrix: np.ndarray,
    names: pa.StringArray,
    impute_function: Callable[..., Any] | None,
) -> Any:
    """The result in the input's kind, imputed as asked."""
    if impute_function is not None:
        from tsfresh.utilities.dataframe_functions import impute

        if impute_function is impute:
            impute_matrix(matrix)
            impute_function = None
        elif data.kind != "pandas":
            matrix, names = _impute_in_pandas(matrix, names, impute_function)
            impute_function = None
    if data.kind == "pandas":
        result = _pandas_output(ids, matrix, names, data.id_type)
        if impute_function is not None:
            impute_function(result)  # in place, its result unused: as tsfresh calls it
        return result
    if data.kind == "arrow":
        return _arrow_output(ids, matrix, names, data.id_type)
    return _polars_output(ids, matrix, names)


def _impute_in_pandas(
    matrix: np.ndarray, names: pa.StringArray, function: Callable[..., Any]
) -> tuple[np.ndarray, pa.StringArray]:
    """``function`` (written for tsfresh's pandas result) on a pandas frame of the features."""
    import pandas as pd

    frame = pd.DataFrame(matrix, columns=pd.Index(names.to_pylist()), dtype=float)
    function(frame)
    return frame.to_numpy(dtype=np.float64), pa.array(frame.columns.to_list(), pa.string())


def _unpivoted(
    features: pa.Table,
    ids: pl.DataFrame,
    data: _Input,
    names: pa.StringArray,
    shown: list[str] | None,
    column_id: str | None,
) -> Any:
    """tsfresh's ``pivot=False`` result: ``(id, name, value)`` for each feature of each series,
    series in the order tsfresh visits them, each series' features in the columns' order."""
    keys = ["__sfx_kind_rank", "__sfx_id_rank", "__sfx_place"]
    if not data.kind_major:
        keys[:2] = keys[1::-1]
    rows = (
        pl.from_arrow(features)
        .with_columns(name=pl.col("sensor") + "__" + pl.col("feature"))
        .join(ids.with_row_index("__sfx_id_rank"), on=_ERA)
        .join(
            pl.DataFrame({"sensor": data.series_kinds}).with_row_index("__sfx_kind_rank"),
            on="sensor",
        )
        .join(
            pl.DataFrame({"name": pa.array(names, pa.string())}).with_row_index("__sfx_place"),
            on="name",
        )
        .sort(keys)
    )
    variable = rows["name"] if shown is None else pl.Series(shown).gather(rows["__sfx_place"])
    values = rows["value"].fill_null(float("nan"))
    if data.kind == "pandas":
        return list(zip(python_ids(rows[_ID]), variable.to_list(), values.to_list(), strict=True))
    frame = pl.DataFrame({column_id: rows[_ID], "variable": variable, "value": values})
    return frame.to_arrow() if data.kind == "arrow" else frame
