"""The sinks stage: finished eras go to every configured sink; each ``write`` lands whole or not
at all.

A sink type is a :class:`SinkPlugin` registered through the ``register_sinks`` hook; the
built-in ``parquet`` and ``postgres`` sinks (``sinks/parquet/``, ``sinks/postgres/``) register
exactly like a third party's, each with its options model beside it. What a sink can do beyond
``write`` and ``close`` it declares by implementing the optional protocols below (resume, era
status, the run report), which the run checks with ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from ..model import Era, EraResult
from ..options import RetryConfig


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


@runtime_checkable
class ResumableSink(Protocol):
    """A sink that can tell which eras it already holds, so a rerun skips them (resume)."""

    def done_eras(self) -> set[str]:
        """The keys (:attr:`Era.key`) of eras written by a run with the same feature
        fingerprint."""
        ...


@dataclass(frozen=True)
class EraStatus:
    """An era's state for sinks that keep a status table (:class:`StatusSink`)."""

    era: Era
    status: str  # pending | running | done | failed
    attempts: int = 0
    worker: str | None = None
    error: str | None = None


@runtime_checkable
class StatusSink(Protocol):
    """A sink that keeps each era's status (pending, running, failed; done lands with the
    era's features in ``write``)."""

    def record_status(self, entries: Sequence[EraStatus]) -> None: ...


#: ``report(done, total)``: how many of the eras a sink's close goes through it has done.
CloseProgress = Callable[[int, int], None]


@runtime_checkable
class ProgressiveClose(Protocol):
    """A sink whose close takes long enough to follow (the Parquet sink composes its file era
    chunk by era chunk): it reports how far it has come while it closes."""

    def report_close_to(self, report: CloseProgress) -> None: ...


@runtime_checkable
class ReportFolder(Protocol):
    """A sink whose output folder also holds the run report (``runs/<run_id>.json``)."""

    #: a local folder or a pyarrow filesystem URI
    report_folder: str | Path


class BatchWriter(Protocol):
    """What a worker calls to store its own finished eras (picklable: it travels to the
    worker); ``name`` is its sink's."""

    name: str

    def write(self, results: Sequence[EraResult]) -> int: ...


@runtime_checkable
class WorkerWritable(Protocol):
    """A sink whose batches the workers can write themselves, to storage every worker reaches
    (on Ray: parts beside the sink's path), so the features need not pass through the run's
    own process; ``close`` then finds them there."""

    def worker_writer(self) -> BatchWriter: ...


@runtime_checkable
class RunRecorder(Protocol):
    """A sink that records each run's report in its own store (after ``close``)."""

    def record_run(self, report: Mapping[str, Any]) -> str:
        """Store the report; return where it went, for the run's output lines."""
        ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink gets to know about the run it writes for."""

    pipeline: str
    run_id: str
    dsn: str  # the source database (for sinks that write next to it)
    fingerprint: str = ""  # of the feature settings: what resume compares
    reconnect: RetryConfig | None = None  # how a sink reopens a lost database connection
    #: what the fingerprint is a hash of (readings, sensor classes, extractor settings)
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: ``stages.extract.impute``: what a sink that holds the whole feature matrix (the Parquet
    #: sink's features.parquet) does with NaN and infinities; ``none`` keeps raw values
    impute: str = "none"


@dataclass(frozen=True)
class SinkPlugin:
    """A sink type contributed by a plugin: ``create(options, context)`` returns a ``Sink``.

    ``options`` is what is under ``sinks.<name>`` in pipeline.yaml: an instance of
    ``options_model`` when the plugin gives one (unknown keys and wrong types are then errors
    naming the key), else the plain mapping. Raise ``streamfx.StreamfxError`` for a bad option,
    naming it.
    """

    name: str
    create: Callable[[Any, SinkContext], Sink]
    description: str = ""
    options_model: type[BaseModel] | None = None
