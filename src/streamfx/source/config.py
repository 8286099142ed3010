"""The source's options (``source:`` in pipeline.yaml): the database, the readings, the eras."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..options import Section, parse_duration, utc


class EmbeddedConfig(Section):
    data_dir: Path = Path(".streamfx/pg")
    seed_demo: bool = True
    # which generated data fills missing tables: ``demo`` (era ids unique, any layout) or
    # ``reference`` (the reference system's own shape: jsonb readings, era ids per compartment)
    seed: Literal["demo", "reference"] = "demo"


class ReadingsConfig(Section):
    table: str
    layout: Literal["long", "wide", "jsonb"] = "long"
    time_column: str = "time"
    partition_column: str | None = None
    sensor_column: str = "sensor"
    value_column: str = "value"
    json_column: str = "features"  # jsonb layout: one object of sensor -> value per row
    sensors: list[str] | None = None


class ErasConfig(Section):
    table: str | None = None
    id_column: str = "era_id"
    start_column: str = "start_time"
    end_column: str = "end_time"
    partition_column: str | None = None
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
        return self


class SourceConfig(Section):
    dsn: str = "embedded"
    embedded: EmbeddedConfig = EmbeddedConfig()
    schema_: str = Field("public", alias="schema")
    readings: ReadingsConfig
    eras: ErasConfig

    @model_validator(mode="after")
    def _reference_is_jsonb(self) -> SourceConfig:
        if self.embedded.seed == "reference" and self.readings.layout != "jsonb":
            raise ValueError(
                "embedded.seed: reference seeds a jsonb readings table: set readings.layout: jsonb"
            )
        return self
