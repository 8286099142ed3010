"""``streamfx.select_features`` and ``streamfx.extract_relevant_features``: tsfresh's selection.

The selection is tsfresh's own (``tsfresh.feature_selection.select_features``: its
hypothesis tests and Benjamini-Yekutieli procedure), given the feature matrix as the pandas
frame it expects; polars and pyarrow matrices go there and come back in their own kind.
``extract_relevant_features`` is tsfresh's recipe around ``streamfx.extract_features``:
extract, impute, select, join to ``X``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from tsfresh import defaults

from .api import N_JOBS, extract_features
from .errors import InvalidInput
from .extract.feature_sets import FCParameters
from .frames import container_ids, indexed_by_id, python_ids, restrict, to_polars
from .names import NameStyle


def select_features(
    X: Any,
    y: Any,
    test_for_binary_target_binary_feature: str = defaults.TEST_FOR_BINARY_TARGET_BINARY_FEATURE,
    test_for_binary_target_real_feature: str = defaults.TEST_FOR_BINARY_TARGET_REAL_FEATURE,
    test_for_real_target_binary_feature: str = defaults.TEST_FOR_REAL_TARGET_BINARY_FEATURE,
    test_for_real_target_real_feature: str = defaults.TEST_FOR_REAL_TARGET_REAL_FEATURE,
    fdr_level: float = defaults.FDR_LEVEL,
    hypotheses_independent: bool = defaults.HYPOTHESES_INDEPENDENT,
    n_jobs: int = N_JOBS,
    show_warnings: bool = defaults.SHOW_WARNINGS,
    chunksize: int | None = defaults.CHUNKSIZE,
    ml_task: str = "auto",
    multiclass: bool = False,
    n_significant: int = 1,
) -> Any:
    """The columns of ``X`` relevant to ``y``: ``tsfresh.select_features`` itself.

    ``X``: a pandas frame indexed by id (as tsfresh), or a polars DataFrame or pyarrow Table
    whose first column holds the ids (``streamfx.extract_features``' layout); the result is
    the same kind, the id column kept first. ``y``: a pandas Series indexed by id, or an
    array (or polars Series) in ``X``'s row order. The other arguments are tsfresh's.
    """
    selection = {
        "test_for_binary_target_binary_feature": test_for_binary_target_binary_feature,
        "test_for_binary_target_real_feature": test_for_binary_target_real_feature,
        "test_for_real_target_binary_feature": test_for_real_target_binary_feature,
        "test_for_real_target_real_feature": test_for_real_target_real_feature,
        "fdr_level": fdr_level,
        "hypotheses_independent": hypotheses_independent,
        "n_jobs": n_jobs,
        "show_warnings": show_warnings,
        "chunksize": chunksize,
        "ml_task": ml_task,
        "multiclass": multiclass,
        "n_significant": n_significant,
    }
    import pandas as pd
    from tsfresh.feature_selection import select_features as tsfresh_select

    if isinstance(X, pd.DataFrame):
        return tsfresh_select(X, _target(y), **selection)
    frame, kind = to_polars(X, "X")
    if frame.width < 2:
        raise InvalidInput("X: expected the id column, then feature columns")
    kept = tsfresh_select(indexed_by_id(frame), _target(y), **selection)
    result = frame.select(frame.columns[0], *kept.columns)
    return result.to_arrow() if kind == "arrow" else result


def _target(y: Any) -> Any:
    """``y`` as tsfresh takes it: a pandas Series as is, anything else as an array."""
    import pandas as pd

    if isinstance(y, pd.Series | np.ndarray):
        return y
    if isinstance(y, pl.Series):
        return y.to_numpy()
    return np.asarray(y)


def extract_relevant_features(
    timeseries_container: Any,
    y: Any,
    X: Any = None,
    default_fc_parameters: str | FCParameters | None = None,
    kind_to_fc_parameters: Mapping[Any, str | FCParameters] | None = None,
    column_id: str | None = None,
    column_sort: str | None = None,
    column_kind: str | None = None,
    column_value: str | None = None,
    show_warnings: bool = defaults.SHOW_WARNINGS,
    disable_progressbar: bool = defaults.DISABLE_PROGRESSBAR,
    profile: bool = defaults.PROFILING,
    profiling_filename: str = defaults.PROFILING_FILENAME,
    profiling_sorting: str = defaults.PROFILING_SORTING,
    test_for_binary_target_binary_feature: str = defaults.TEST_FOR_BINARY_TARGET_BINARY_FEATURE,
    test_for_binary_target_real_feature: str = defaults.TEST_FOR_BINARY_TARGET_REAL_FEATURE,
    test_for_real_target_binary_feature: str = defaults.TEST_FOR_REAL_TARGET_BINARY_FEATURE,
    test_for_real_target_real_feature: str = defaults.TEST_FOR_REAL_TARGET_REAL_FEATURE,
    fdr_level: float = defaults.FDR_LEVEL,
    hypotheses_independent: bool = defaults.HYPOTHESES_INDEPENDENT,
    n_jobs: int = N_JOBS,
    distributor: Any = None,
    chunksize: int | None = defaults.CHUNKSIZE,
    ml_task: str = "auto",
    *,
    engine: str = "native",
    names: NameStyle = "tsfresh",
) -> Any:
    """Extract features, impute them and keep the ones relevant to ``y``, as
    ``tsfresh.extract_relevant_features`` does (same arguments, same order).

    ``y``: a pandas Series indexed by id; its ids and the container's must be the same.
    ``X``: features to start from (only its ids' series are extracted; the relevant features
    are joined to it): a pandas frame indexed by id, or a polars/pyarrow frame with a
    ``column_id`` column. The result is ``X``'s kind, else the container's (as
    ``extract_features``). ``engine`` and ``names`` are ``extract_features``'.
    """
    import pandas as pd

    if not isinstance(y, pd.Series):
        raise InvalidInput(f"y needs to be a pandas.Series, received type: {type(y).__name__}.")
    if len(set(y)) <= 1:
        raise InvalidInput(
            "Feature selection is only possible if more than 1 label/class is provided"
        )
    if column_id is None:
        raise InvalidInput("column_id is required: the column that tells the series apart")
    if X is not None:
        timeseries_container = restrict(timeseries_container, column_id, _ids(X, column_id))
    present, wanted = container_ids(timeseries_container, column_id), set(y.index)
    if present - wanted:
        raise InvalidInput(
            "The following ids are in the time series container but are missing in y: "
            f"{present - wanted}"
        )
    if wanted - present:
        raise InvalidInput(
            "The following ids are in y but are missing inside the time series container: "
            f"{wanted - present}"
        )
    from tsfresh.utilities.dataframe_functions import impute

    extracted = extract_features(
        timeseries_container,
        default_fc_parameters=default_fc_parameters,
        kind_to_fc_parameters=kind_to_fc_parameters,
        column_id=column_id,
        column_sort=column_sort,
        column_kind=column_kind,
        column_value=column_value,
        chunksize=chunksize,
        n_jobs=n_jobs,
        show_warnings=show_warnings,
        disable_progressbar=disable_progressbar,
        impute_function=impute,
        profile=profile,
        profiling_filename=profiling_filename,
        profiling_sorting=profiling_sorting,
        distributor=distributor,
        engine=engine,
        names=names,
    )
    selected = select_features(
        extracted,
        y,
        test_for_binary_target_binary_feature=test_for_binary_target_binary_feature,
        test_for_binary_target_real_feature=test_for_binary_target_real_feature,
        test_for_real_target_binary_feature=test_for_real_target_binary_feature,
        test_for_real_target_real_feature=test_for_real_target_real_feature,
        fdr_level=fdr_level,
        hypotheses_independent=hypotheses_independent,
        n_jobs=n_jobs,
        show_warnings=show_warnings,
        chunksize=chunksize,
        ml_task=ml_task,
    )
    return selected if X is None else _join(X, selected, column_id)


def _ids(X: Any, column_id: str) -> list[Any]:
    """The ids of ``X``: a pandas frame's index, a polars or pyarrow frame's ``column_id``."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return list(X.index)
    frame, _ = to_polars(X, "X")
    if column_id not in frame.columns:
        raise InvalidInput(f"X: a polars or pyarrow X needs the ids in column {column_id!r}")
    return python_ids(frame.get_column(column_id))


def _join(X: Any, selected: Any, column_id: str) -> Any:
    """``X`` with the selected features joined to its rows, as tsfresh merges them."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return pd.merge(X, indexed_by_id(selected), left_index=True, right_index=True, how="left")
    frame, kind = to_polars(X, "X")
    if isinstance(selected, pd.DataFrame):
        raise InvalidInput(
            "X: a polars or pyarrow X needs a polars or pyarrow timeseries_container"
        )
    joined = frame.join(to_polars(selected)[0], on=column_id, how="left", maintain_order="left")
    return joined.to_arrow() if kind == "arrow" else joined
