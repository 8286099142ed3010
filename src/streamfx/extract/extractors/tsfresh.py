"""The CPU extractor: tsfresh itself, fed from Arrow through polars.

Readings stay in Arrow/polars until the one call into tsfresh, which needs pandas; its wide
result (one row per era, one ``{sensor}__{feature}`` column per feature) comes back to polars
and is unpivoted to the long ``model.FEATURES_SCHEMA``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from array_api_compat import numpy as array_numpy

from ...model import FEATURES_SCHEMA
from ...plugins.hookspecs import hookimpl
from ..extractor import Costs, Device
from ..feature_sets import FCParameters

#: Seconds per series (fixed, per reading) of tsfresh, by feature set, on one core: tsfresh
#: pays a large overhead per series.
TSFRESH_COSTS: Costs = {
    "minimal": (0.005, 2e-6),
    "efficient": (0.15, 1e-4),
    "comprehensive": (0.6, 1e-3),
}

_ERA = "era_id"


def _empty_features() -> pa.Table:
    return FEATURES_SCHEMA.empty_table()


def _calculator_name(key: object) -> str:
    """tsfresh names a feature after the calculator's ``__name__`` (keys may be functions)."""
    return key if isinstance(key, str) else getattr(key, "__name__", str(key))


def _split_columns(columns: list[str], fc_parameters: Mapping[str, FCParameters]) -> pl.DataFrame:
    """Map each tsfresh column ``{sensor}__{feature}`` to its sensor and feature.

    Split at a known sensor prefix, never at the first ``__``: sensor names may contain ``__``
    and feature names always do once they carry parameters. When several sensors are prefixes
    of a column, the one whose remainder starts with one of its own calculators wins.
    """
    calculators = {s: {_calculator_name(k) for k in p} for s, p in fc_parameters.items()}
    sensors = sorted(fc_parameters, key=len, reverse=True)  # longest prefix first
    rows: list[tuple[str, str, str]] = []
    for column in columns:
        candidates = [s for s in sensors if column.startswith(f"{s}__")]
        chosen = next(
            (s for s in candidates if column[len(s) + 2 :].split("__", 1)[0] in calculators[s]),
            candidates[0] if candidates else None,
        )
        if chosen is None:  # pragma: no cover - tsfresh always prefixes the kind
            raise RuntimeError(f"tsfresh returned column {column!r} of no requested sensor")
        rows.append((column, chosen, column[len(chosen) + 2 :]))
    return pl.DataFrame(
        rows, schema={"column": pl.String, "sensor": pl.String, "feature": pl.String}, orient="row"
    )


class TsfreshExtractor:
    """Computes features with tsfresh itself (CPU; ``n_jobs`` worker processes, 0 = in process)."""

    name = "tsfresh"
    description = "tsfresh.extract_features on the CPU: the reference implementation"
    device: Device = "cpu"
    costs: Costs = TSFRESH_COSTS

    def array_namespace(self) -> Any:
        return array_numpy  # rolling windows of its eras run on NumPy

    def extract(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> pa.Table:
        """Return FEATURES_SCHEMA rows for ``readings`` (READINGS_SCHEMA, any eras, any order).

        Sensors absent from ``fc_parameters`` are skipped, NaN readings are dropped (tsfresh
        refuses them). An (era, sensor) pair without readings yields no rows; NaN (an
        undefined feature, e.g. on a constant series) is kept. Rows come era by era (sorted
        by era_id), sensor by sensor (sorted), features in tsfresh's order.
        """
        wanted = {s: dict(p) for s, p in fc_parameters.items() if p}
        if readings.num_rows == 0 or not wanted:
            return _empty_features()

        frame = pl.from_arrow(readings)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.select(
            pl.col(_ERA).cast(pl.String),
            pl.col("sensor").cast(pl.String),
            "time",
            pl.col("value").cast(pl.Float64),
        ).filter(
            pl.col("sensor").is_in(list(wanted)),
            # tsfresh rejects missing values; a NaN reading counts as no reading
            pl.col("value").is_not_null() & pl.col("value").is_not_nan(),
        )
        if frame.height == 0:
            return _empty_features()
        present = frame.select(_ERA, "sensor").unique()
        wanted = {s: p for s, p in wanted.items() if s in set(present["sensor"].to_list())}

        wide_pd = self._run_tsfresh(frame, wanted, n_jobs)
        if wide_pd.shape[1] == 0:
            return _empty_features()

        wide_pd.index.name = _ERA
        wide = pl.from_pandas(wide_pd.reset_index(), nan_to_null=False).with_columns(
            pl.col(_ERA).cast(pl.String)
        )
        names = _split_columns([str(c) for c in wide_pd.columns], wanted)
        long = (
            wide.unpivot(index=_ERA, variable_name="column", value_name="value")
            .join(names, on="column", how="left", maintain_order="left")
            .join(present, on=[_ERA, "sensor"], how="semi", maintain_order="left")
            .sort([_ERA, "sensor"], maintain_order=True)
            .select(_ERA, "sensor", "feature", pl.col("value").cast(pl.Float64))
        )
        return long.to_arrow().cast(FEATURES_SCHEMA)

    @staticmethod
    def _run_tsfresh(frame: pl.DataFrame, wanted: Mapping[str, FCParameters], n_jobs: int):
        from tsfresh import extract_features

        data = frame.to_pandas()  # the one pandas boundary
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return extract_features(
                data,
                column_id=_ERA,
                column_sort="time",
                column_kind="sensor",
                column_value="value",
                default_fc_parameters={},
                kind_to_fc_parameters=dict(wanted),
                n_jobs=n_jobs,
                disable_progressbar=True,
                impute_function=None,
            )


@hookimpl
def register_extractors() -> list[TsfreshExtractor]:
    return [TsfreshExtractor()]
