"""The built-in ``parquet`` sink, registered through ``register_sinks`` like a plugin's."""

from __future__ import annotations

from ...plugins.hookspecs import hookimpl
from .. import SinkContext, SinkPlugin
from .config import ParquetSinkConfig
from .files import Location, put
from .sink import ERA_COLUMNS, ParquetSink, safe_name

__all__ = ["ERA_COLUMNS", "Location", "ParquetSink", "ParquetSinkConfig", "put", "safe_name"]


def create(options: ParquetSinkConfig, context: SinkContext) -> ParquetSink:
    selection = options.selection
    return ParquetSink(
        options.path,
        pipeline=context.pipeline,
        run_id=context.run_id,
        variance_threshold=selection.variance_threshold if selection else None,
        fingerprint=context.fingerprint,
        settings=context.settings,
    )


#: what ``streamfx plugins`` says of this sink
DESCRIPTION = "one wide features.parquet (a row per era), composed from parts per era"


@hookimpl
def register_sinks() -> list[SinkPlugin]:
    return [SinkPlugin("parquet", create, DESCRIPTION, options_model=ParquetSinkConfig)]
