"""Rolling mean and standard deviation of GPU-suitable sensors, summarized per era.

The reference fixed its windows at 12/60/288 samples, assuming 5-minute sampling; streamfx
states windows as durations (1 h, 5 h, 24 h) and converts them to samples from each series'
detected sampling interval (the median spacing of its timestamps), so a 10-minute and a
5-minute series of the same signal get windows of the same duration. Only full windows count
(like pandas' ``rolling(w)``; the standard deviation has ddof=1 like pandas'). Each rolling
series is summarized with tsfresh's minimal statistics under names such as
``rolling_mean_1h__median``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from array_api_compat import numpy as array_numpy

from ..model import FEATURES_SCHEMA
from ..options import parse_duration
from .calculators import compute, namespace, to_host
from .feature_sets import feature_set
from .series import buckets, series_layout

DEFAULT_WINDOWS = ("1h", "5h", "24h")


def rolling_mean_std(x: Any, w: int) -> tuple[Any, Any]:
    """Rolling mean and std (ddof=1) over full windows of ``w`` along axis 1 (array API).

    Sums run over values centred on each series' mean, which keeps the one-pass variance
    formula accurate for large offsets such as CO2 in ppm.
    """
    xp = array_numpy if isinstance(x, np.ndarray) else namespace(x)
    centred = x - xp.mean(x, axis=1, keepdims=True)
    zeros = xp.zeros((x.shape[0], 1), dtype=x.dtype)
    s1 = xp.concat([zeros, xp.cumulative_sum(centred, axis=1)], axis=1)
    s2 = xp.concat([zeros, xp.cumulative_sum(centred * centred, axis=1)], axis=1)
    sums = s1[:, w:] - s1[:, :-w]
    squares = s2[:, w:] - s2[:, :-w]
    mean = sums / w
    if w == 1:
        std = xp.full(mean.shape, xp.nan, dtype=x.dtype)
    else:
        var = (squares - sums * sums / w) / (w - 1)
        std = xp.sqrt(xp.clip(var, 0.0, None))
    return mean + (x[:, :1] - centred[:, :1]), std


def rolling_features(
    readings: pa.Table,
    sensors: Iterable[str],
    windows: Sequence[str] = DEFAULT_WINDOWS,
    xp: Any = array_numpy,
) -> pa.Table:
    """FEATURES_SCHEMA rows: minimal statistics of rolling mean/std for ``sensors``' series."""
    sensors = list(sensors)
    if not sensors or readings.num_rows == 0:
        return FEATURES_SCHEMA.empty_table()
    series, host_values = series_layout(readings, intervals=True)
    series = series.filter(pl.col("sensor").is_in(sensors) & (pl.col("interval_us") > 0))
    if series.height == 0:
        return FEATURES_SCHEMA.empty_table()
    values = xp.asarray(host_values)
    minimal = feature_set("minimal")
    parts = []
    for label in windows:
        seconds = parse_duration(label).total_seconds()
        sized = series.with_columns(
            (pl.lit(seconds) / (pl.col("interval_us") / 1e6))
            .round()
            .clip(1)
            .cast(pl.Int64)
            .alias("w")
        ).filter(pl.col("w") <= pl.col("length"))
        for (_, w), bucket, batch in buckets(sized, values, xp, by=("length", "w")):
            mean, std = rolling_mean_std(batch, w)
            for stat, rolled in (("mean", mean), ("std", std)):
                for name, column in compute(rolled, minimal):
                    parts.append(
                        pl.DataFrame(
                            {
                                "era_id": bucket["era_id"],
                                "sensor": bucket["sensor"],
                                "feature": f"rolling_{stat}_{label}__{name}",
                                "value": to_host(column),
                            }
                        )
                    )
    if not parts:
        return FEATURES_SCHEMA.empty_table()
    return pl.concat(parts).to_arrow().cast(FEATURES_SCHEMA)
