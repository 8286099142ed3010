"""The built-in ``parquet`` sink, registered through ``register_sinks`` like a plugin's."""

from __future__ import annotations

from ...plugins.hookspecs import hookimpl
from .. import SinkContext, SinkPlugin
from .config import ParquetSinkConfig
from .files import Location, put
from .sink import ERA_COLUMNS, ParquetSink

__all__ = ["ERA_COLUMNS", "Location", "ParquetSink", "ParquetSinkConfig", "put"]


def create(options: ParquetSinkConfig, context: SinkContext) -> ParquetSink:
    threshold = options.selection.variance_threshold if options.selection else None
    return ParquetSink(options.path, context, variance_threshold=threshold, names=options.names)


#: what ``streamfx plugins`` says of this sink
DESCRIPTION = "one wide features.parquet (a row per era), composed from parts per batch"


@hookimpl
def register_sinks() -> list[SinkPlugin]:
    return [SinkPlugin("parquet", create, DESCRIPTION, options_model=ParquetSinkConfig)]
