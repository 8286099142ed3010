"""Sinks receive finished eras and store them; each ``write`` call lands whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..model import EraResult


@runtime_checkable
class Sink(Protocol):
    """Where finished eras go. The pipeline calls ``write`` with batches, then ``close`` once."""

    name: str

    def write(self, results: Sequence[EraResult]) -> int:
        """Store a batch of non-empty eras atomically; return the number of rows written."""
        ...

    def close(self) -> str:
        """Finish the run (compose final files, release connections); say where output is."""
        ...


@dataclass(frozen=True)
class EraStatus:
    """An era's state for sinks that keep a status table (``record_status``, optional)."""

    era_id: str
    status: str  # pending | running | done | failed
    attempts: int = 0
    worker: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SinkContext:
    """What a plugin sink gets to know about the run it writes for."""

    pipeline: str
    run_id: str
    dsn: str  # the source database (for sinks that write next to it)


@dataclass(frozen=True)
class SinkPlugin:
    """A sink type contributed by a plugin: ``create(options, context)`` returns a ``Sink``.

    ``options`` is the mapping under ``sinks.<name>`` in pipeline.yaml; raise
    ``streamfx.errors.StreamfxError`` for a bad option, naming it.
    """

    name: str
    create: Callable[[dict[str, Any], SinkContext], Sink]
    description: str = ""
