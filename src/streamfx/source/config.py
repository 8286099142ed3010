"""The source's options (``source:`` in pipeline.yaml): the database, the readings, the eras."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..options import Identifier, Section, parse_duration, utc


class EmbeddedConfig(Section):
    data_dir: Path = Path(".streamfx/pg")
    seed_demo: bool = True
    # which generated data fills missing tables: ``demo`` (era ids unique, any layout) or
    # ``reference`` (the reference system's own shape: jsonb readings, era ids per compartment)
    seed: Literal["demo", "reference"] = "demo"


class ReadingsConfig(Section):
    table: Identifier
    layout: Literal["long", "wide", "jsonb"] = "long"
    time_column: Identifier = "time"
    partition_column: Identifier | None = None
    sensor_column: Identifier = "sensor"
    value_column: Identifier = "value"
    json_column: Identifier = "features"  # jsonb layout: one object of sensor -> value per row
    sensors: list[Identifier] | None = None

    @field_validator("sensors")
    @classmethod
    def _sensors(cls, value: list[str] | None) -> list[str] | None:
        """An empty list would read nothing, and a sensor named twice is one column read twice."""
        if value is None:
            return None
        if not value:
            raise ValueError("list at least one sensor, or leave 'sensors' out to read them all")
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"sensor(s) listed more than once: {', '.join(map(repr, repeated))}")
        return value


class ErasConfig(Section):
    table: Identifier | None = None
    id_column: Identifier = "era_id"
    start_column: Identifier = "start_time"
    end_column: Identifier = "end_time"
    partition_column: Identifier | None = None
    every: dt.timedelta | None = None
    from_: dt.datetime | None = Field(None, alias="from")
    to: dt.datetime | None = None

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return utc(value)

    @model_validator(mode="after")
    def _one_kind(self) -> ErasConfig:
        if (self.table is None) == (self.every is None):
            raise ValueError("set exactly one of 'table' (an era table) or 'every' (fixed windows)")
        if self.from_ and self.to and self.from_ >= self.to:
            raise ValueError("'from' must be before 'to'")
        if self.every and self.from_ and self.to:
            check_window_count(window_count(self.from_, self.to, self.every), self.every)
        return self


#: Fixed windows one run may make: each is an era, planned and tracked in memory.
MAX_WINDOWS = 1_000_000


def window_count(start: dt.datetime, stop: dt.datetime, every: dt.timedelta) -> int:
    """How many windows of ``every`` cover [start, stop), counted before any is built."""
    return max(-((start - stop) // every), 0)


def check_window_count(count: int, every: dt.timedelta) -> None:
    """Refuse more than :data:`MAX_WINDOWS`, before building them (a tiny ``every`` over a year
    would fill the memory)."""
    if count > MAX_WINDOWS:
        raise ValueError(
            f"'every: {every}' makes {count:,} windows; at most {MAX_WINDOWS:,} per run"
            " (use longer windows or a shorter from/to range)"
        )


class SourceConfig(Section):
    dsn: str = "embedded"
    embedded: EmbeddedConfig = EmbeddedConfig()
    schema_: Identifier = Field("public", alias="schema")
    readings: ReadingsConfig
    eras: ErasConfig

    @model_validator(mode="after")
    def _reference_is_jsonb(self) -> SourceConfig:
        if self.embedded.seed == "reference" and self.readings.layout != "jsonb":
            raise ValueError(
                "embedded.seed: reference seeds a jsonb readings table: set readings.layout: jsonb"
            )
        return self
