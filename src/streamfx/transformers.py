"""scikit-learn transformers: tsfresh's ``FeatureAugmenter`` and ``RelevantFeatureAugmenter``
with ``streamfx.extract_features`` doing the extraction.

They are tsfresh's classes (subclasses: ``isinstance`` checks, ``set_timeseries_container``,
``fit`` and the selection by tsfresh's ``FeatureSelector`` are tsfresh's own), so a
``Pipeline``, ``GridSearchCV`` or ``cross_val_score`` built for tsfresh's runs unchanged. They
add ``engine``; the time series container may also be a polars or pyarrow frame. Needs
scikit-learn (``pip install streamfx[sklearn]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import pandas as pd
from tsfresh import defaults
from tsfresh.feature_extraction.settings import from_columns
from tsfresh.transformers import FeatureAugmenter as TsfreshFeatureAugmenter
from tsfresh.transformers import FeatureSelector
from tsfresh.transformers import RelevantFeatureAugmenter as TsfreshRelevantFeatureAugmenter
from tsfresh.utilities.dataframe_functions import (
    get_range_values_per_column,
    impute_dataframe_range,
)

from .api import N_JOBS, extract_features
from .extract.feature_sets import FCParameters
from .frames import indexed_by_id, restrict

_MISSING_CONTAINER = (
    "You have to provide a time series using the set_timeseries_container function before."
)


class FeatureAugmenter(TsfreshFeatureAugmenter):
    """Adds the features of each row's time series (the row's index is its id) to ``X``:
    tsfresh's ``FeatureAugmenter``, extracting with ``streamfx.extract_features``."""

    def __init__(
        self,
        default_fc_parameters: str | FCParameters | None = None,
        kind_to_fc_parameters: Mapping[Any, str | FCParameters] | None = None,
        column_id: str | None = None,
        column_sort: str | None = None,
        column_kind: str | None = None,
        column_value: str | None = None,
        timeseries_container: Any = None,
        chunksize: int | None = defaults.CHUNKSIZE,
        n_jobs: int = N_JOBS,
        show_warnings: bool = defaults.SHOW_WARNINGS,
        disable_progressbar: bool = defaults.DISABLE_PROGRESSBAR,
        impute_function: Callable[..., Any] | None = defaults.IMPUTE_FUNCTION,
        profile: bool = defaults.PROFILING,
        profiling_filename: str = defaults.PROFILING_FILENAME,
        profiling_sorting: str = defaults.PROFILING_SORTING,
        engine: str = "native",
    ) -> None:
        super().__init__(
            default_fc_parameters=default_fc_parameters,
            kind_to_fc_parameters=kind_to_fc_parameters,
            column_id=column_id,
            column_sort=column_sort,
            column_kind=column_kind,
            column_value=column_value,
            timeseries_container=timeseries_container,
            chunksize=chunksize,
            n_jobs=n_jobs,
            show_warnings=show_warnings,
            disable_progressbar=disable_progressbar,
            impute_function=impute_function,
            profile=profile,
            profiling_filename=profiling_filename,
            profiling_sorting=profiling_sorting,
        )
        self.engine = engine

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with the features of its ids' time series joined (tsfresh's left merge)."""
        if self.timeseries_container is None:
            raise RuntimeError(_MISSING_CONTAINER)
        features = extract_features(
            restrict(self.timeseries_container, self.column_id, X.index),
            default_fc_parameters=self.default_fc_parameters,
            kind_to_fc_parameters=self.kind_to_fc_parameters,
            column_id=self.column_id,
            column_sort=self.column_sort,
            column_kind=self.column_kind,
            column_value=self.column_value,
            chunksize=self.chunksize,
            n_jobs=self.n_jobs,
            show_warnings=self.show_warnings,
            disable_progressbar=self.disable_progressbar,
            impute_function=self.impute_function,
            profile=self.profile,
            profiling_filename=self.profiling_filename,
            profiling_sorting=self.profiling_sorting,
            engine=self.engine,
        )
        return pd.merge(X, indexed_by_id(features), left_index=True, right_index=True, how="left")


class RelevantFeatureAugmenter(TsfreshRelevantFeatureAugmenter):
    """Extracts features, keeps those relevant to ``y`` (fit) and adds them to ``X``
    (transform): tsfresh's ``RelevantFeatureAugmenter``, extracting with
    ``streamfx.extract_features`` (the relevant ones only, at transform, as tsfresh)."""

    def __init__(
        self,
        filter_only_tsfresh_features: bool = True,
        default_fc_parameters: str | FCParameters | None = None,
        kind_to_fc_parameters: Mapping[Any, str | FCParameters] | None = None,
        column_id: str | None = None,
        column_sort: str | None = None,
        column_kind: str | None = None,
        column_value: str | None = None,
        timeseries_container: Any = None,
        chunksize: int | None = defaults.CHUNKSIZE,
        n_jobs: int = N_JOBS,
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
        ml_task: str = "auto",
        multiclass: bool = False,
        n_significant: int = 1,
        multiclass_p_values: str = "min",
        engine: str = "native",
    ) -> None:
        super().__init__(
            filter_only_tsfresh_features=filter_only_tsfresh_features,
            default_fc_parameters=default_fc_parameters,
            kind_to_fc_parameters=kind_to_fc_parameters,
            column_id=column_id,
            column_sort=column_sort,
            column_kind=column_kind,
            column_value=column_value,
            timeseries_container=timeseries_container,
            chunksize=chunksize,
            n_jobs=n_jobs,
            show_warnings=show_warnings,
            disable_progressbar=disable_progressbar,
            profile=profile,
            profiling_filename=profiling_filename,
            profiling_sorting=profiling_sorting,
            test_for_binary_target_binary_feature=test_for_binary_target_binary_feature,
            test_for_binary_target_real_feature=test_for_binary_target_real_feature,
            test_for_real_target_binary_feature=test_for_real_target_binary_feature,
            test_for_real_target_real_feature=test_for_real_target_real_feature,
            fdr_level=fdr_level,
            hypotheses_independent=hypotheses_independent,
            ml_task=ml_task,
            multiclass=multiclass,
            n_significant=n_significant,
            multiclass_p_values=multiclass_p_values,
        )
        self.engine = engine

    def _augmenter(self, **settings: Any) -> FeatureAugmenter:
        """A FeatureAugmenter of this one's extraction options, with ``settings`` on top."""
        options = {
            "default_fc_parameters": self.default_fc_parameters,
            "kind_to_fc_parameters": self.kind_to_fc_parameters,
            "column_id": self.column_id,
            "column_sort": self.column_sort,
            "column_kind": self.column_kind,
            "column_value": self.column_value,
            "timeseries_container": self.timeseries_container,
            "chunksize": self.chunksize,
            "n_jobs": self.n_jobs,
            "show_warnings": self.show_warnings,
            "disable_progressbar": self.disable_progressbar,
            "profile": self.profile,
            "profiling_filename": self.profiling_filename,
            "profiling_sorting": self.profiling_sorting,
            "engine": self.engine,
        }
        return FeatureAugmenter(**{**options, **settings})

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with the relevant features (only those are extracted), imputed with the
        ranges seen in fit, as tsfresh's."""
        if self.timeseries_container is None:
            raise RuntimeError(_MISSING_CONTAINER)
        if self.feature_selector is None or self.feature_selector.relevant_features is None:
            raise RuntimeError("You have to call fit before calling transform.")
        relevant = self.feature_selector.relevant_features
        wanted = set(relevant) - set(pd.DataFrame(X).columns)
        augmenter = self._augmenter(
            default_fc_parameters={},
            kind_to_fc_parameters=from_columns(wanted),
            impute_function=partial(
                impute_dataframe_range,
                col_to_max=self.col_to_max,
                col_to_min=self.col_to_min,
                col_to_median=self.col_to_median,
            ),
        )
        augmented = augmenter.transform(X)
        if self.filter_only_tsfresh_features:
            return augmented.copy().loc[:, relevant + X.columns.tolist()]
        return augmented.copy().loc[:, relevant]

    def _fit_and_augment(self, X: pd.DataFrame, y: Any) -> pd.DataFrame:
        """Extract every feature for ``X``'s ids, impute (remembering the ranges) and fit
        tsfresh's selector on them, as tsfresh's."""
        if self.timeseries_container is None:
            raise RuntimeError(_MISSING_CONTAINER)
        self.feature_extractor = self._augmenter()
        self.feature_selector = FeatureSelector(
            test_for_binary_target_binary_feature=self.test_for_binary_target_binary_feature,
            test_for_binary_target_real_feature=self.test_for_binary_target_real_feature,
            test_for_real_target_binary_feature=self.test_for_real_target_binary_feature,
            test_for_real_target_real_feature=self.test_for_real_target_real_feature,
            fdr_level=self.fdr_level,
            hypotheses_independent=self.hypotheses_independent,
            n_jobs=self.n_jobs,
            chunksize=self.chunksize,
            ml_task=self.ml_task,
            multiclass=self.multiclass,
            n_significant=self.n_significant,
            multiclass_p_values=self.multiclass_p_values,
        )
        start = pd.DataFrame(index=X.index) if self.filter_only_tsfresh_features else X
        augmented = self.feature_extractor.transform(start)
        self.col_to_max, self.col_to_min, self.col_to_median = get_range_values_per_column(
            augmented
        )
        augmented = impute_dataframe_range(
            augmented,
            col_to_max=self.col_to_max,
            col_to_median=self.col_to_median,
            col_to_min=self.col_to_min,
        )
        self.feature_selector.fit(augmented, y)
        return augmented
