"""The records and Arrow schemas that flow between the stages: source -> extract -> sinks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pyarrow as pa

#: Every source normalizes its readings to this long schema, whatever the table layout.
READINGS_SCHEMA = pa.schema(
    [
        pa.field("era_id", pa.string(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

#: Every extractor returns features in this long schema: one row per era, sensor and feature.
#: ``feature`` is tsfresh's column name without the ``sensor__`` prefix, e.g. ``quantile__q_0.1``.
FEATURES_SCHEMA = pa.schema(
    [
        pa.field("era_id", pa.string(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("feature", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Era:
    """A time span [start, end) of one partition (e.g. a greenhouse compartment) to summarize."""

    id: str
    start: dt.datetime
    end: dt.datetime
    partition: str | None = None


@dataclass
class EraResult:
    """What extracting one era produced, handed from a worker to the sinks."""

    era: Era
    readings: int
    features: pa.Table  # FEATURES_SCHEMA
    seconds: float = 0.0
    sensors: dict[str, str] = field(default_factory=dict)  # sensor -> feature set used
    worker: str = "main"
    peak_rss_mb: float = 0.0
    warnings: list[str] = field(default_factory=list)  # e.g. a plugin calculator that raised
    attempts: int = 1  # tries it took (an earlier one raised or its worker died)

    @property
    def empty(self) -> bool:
        return self.readings == 0


@dataclass
class EraFailure:
    """An era whose extraction raised (or whose worker died); the run goes on without it."""

    era: Era
    error: str
    seconds: float = 0.0
    worker: str = "main"
    attempts: int = 1
