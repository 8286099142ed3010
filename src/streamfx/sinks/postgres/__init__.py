"""The built-in ``postgres`` sink, registered through ``register_sinks`` like a plugin's."""

from __future__ import annotations

from ...database import expand_env
from ...plugins.hookspecs import hookimpl
from .. import SinkContext, SinkPlugin
from .config import PostgresSinkConfig
from .layout import STATUS_TABLE
from .runs import ERA_RUNS_TABLE, RUNS_TABLE
from .sink import PostgresSink

__all__ = ["ERA_RUNS_TABLE", "RUNS_TABLE", "STATUS_TABLE", "PostgresSink", "PostgresSinkConfig"]


def create(options: PostgresSinkConfig, context: SinkContext) -> PostgresSink:
    dsn = expand_env(options.dsn, "sinks.postgres.dsn") if options.dsn else context.dsn
    return PostgresSink(dsn, context, schema=options.schema_, table=options.table)


#: what ``streamfx plugins`` says of this sink
DESCRIPTION = "the long features table (era, sensor, feature, value) in PostgreSQL, era by era"


@hookimpl
def register_sinks() -> list[SinkPlugin]:
    return [SinkPlugin("postgres", create, DESCRIPTION, options_model=PostgresSinkConfig)]
