"""The PostgreSQL sink's options (``sinks.postgres``)."""

from __future__ import annotations

from pydantic import Field

from ...options import Section


class PostgresSinkConfig(Section):
    dsn: str | None = None  # default: the source's database
    schema_: str = Field("public", alias="schema")
    table: str = "streamfx_features"
