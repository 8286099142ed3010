"""The PostgreSQL sink's options (``sinks.postgres``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ...options import Identifier, Section


class PostgresSinkConfig(Section):
    dsn: str | None = None  # default: the source's database
    schema_: Identifier = Field("public", alias="schema")
    table: Identifier = "streamfx_features"

    @field_validator("schema_")
    @classmethod
    def _not_a_system_schema(cls, value: str) -> str:
        """PostgreSQL reserves ``pg_*`` (pg_temp tables even vanish with the session)."""
        if value.lower().startswith("pg_") or value.lower() == "information_schema":
            raise ValueError(
                f"{value!r} is a system schema: write the features to a schema of yours"
            )
        return value
