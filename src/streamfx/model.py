"""The records and Arrow schemas that cross stages: source -> classify -> extract -> sinks -> run.

Readings and features travel as Arrow tables in the two schemas below; eras, a worker's share
of the plan, its outcomes and the run's summary as the dataclasses after them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from .classify.plan import Plan

#: Every source normalizes its readings to this long schema, whatever the table layout.
#: ``era_id`` holds the era's :attr:`Era.key` (``partition/id``), unique within a run.
READINGS_SCHEMA = pa.schema(
    [
        pa.field("era_id", pa.string(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

#: Every extractor returns features in this long schema: one row per era, sensor and feature.
#: ``feature`` is tsfresh's column name without the ``sensor__`` prefix, e.g. ``quantile__q_0.1``;
#: ``era_id`` is the era's key, as in the readings.
FEATURES_SCHEMA = pa.schema(
    [
        pa.field("era_id", pa.string(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("feature", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
    ]
)


def era_key(era_id: str, partition: str | None) -> str:
    """An era's identity in a run: ``partition/era_id``, or the id where eras have no
    partition. Era tables repeat ids across partitions (compartment 1's era 5 is not
    compartment 2's), so nothing that holds eras is keyed by the id alone."""
    return era_id if partition is None else f"{partition}/{era_id}"


@dataclass(frozen=True)
class Era:
    """A time span [start, end) of one partition (e.g. a greenhouse compartment) to summarize.

    ``id`` is the era table's id (or a window's start); ``key`` is what identifies the era.
    """

    id: str
    start: dt.datetime
    end: dt.datetime
    partition: str | None = None

    @property
    def key(self) -> str:
        return era_key(self.id, self.partition)


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
    written: tuple[str, ...] = ()  # the sinks its worker wrote it to already
    #: features found, when the worker wrote them to every sink and left ``features`` empty
    left_behind: int | None = None

    @property
    def empty(self) -> bool:
        return self.readings == 0

    @property
    def feature_rows(self) -> int:
        """Features found for the era (also when they stayed with the worker)."""
        return self.features.num_rows if self.left_behind is None else self.left_behind


@dataclass
class EraFailure:
    """An era whose extraction raised (or whose worker died); the run goes on without it."""

    era: Era
    error: str
    seconds: float = 0.0
    worker: str = "main"
    attempts: int = 1


@dataclass(frozen=True)
class Capacity:
    """What an executor can run on: CPU workers by default, GPUs, and where (a notice)."""

    cpus: int
    gpus: int
    notice: str | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a lane: its name, its extractor, its eras (in order) and tsfresh n_jobs.

    A worker that replaces a dead one starts with ``solo`` eras run one per pass (those the
    dead worker had in flight), ``attempts`` says how many tries they have used, and
    ``retrying`` why they are tried again.
    """

    name: str
    lane: str
    extractor: str
    eras: tuple[Era, ...]
    n_jobs: int = 0
    eras_per_pass: int = 1
    solo: int = 0
    attempts: Mapping[str, int] = field(default_factory=dict)
    retrying: str | None = None

    def passes(self) -> Iterator[tuple[Era, ...]]:
        """The eras grouped into passes: the solo ones alone, the rest ``eras_per_pass`` a time."""
        for era in self.eras[: self.solo]:
            yield (era,)
        rest = self.eras[self.solo :]
        for i in range(0, len(rest), self.eras_per_pass):
            yield rest[i : i + self.eras_per_pass]


@dataclass
class Try:
    """One try of an era, for the report's timeline: its worker, when it ran (seconds since
    the run began, on the run's clock, so tries on different nodes line up) and how it ended:
    ``done``, ``skipped`` (no readings), ``failed`` (the era's last try) or ``retried``
    (``error`` says why it is tried again). Eras sharing a pass take its span one after the
    other, each for its share of the pass's time (the era's ``seconds``)."""

    attempt: int
    worker: str
    start_s: float
    end_s: float | None = None  # None while it runs
    outcome: str = "running"
    error: str | None = None


@dataclass
class EraRecord:
    """One era's fate in a run, for the summary and the run report."""

    era: Era
    status: str  # done | skipped | failed | resumed (done by an earlier run)
    lane: str | None
    rule: str
    worker: str | None
    estimated_cost: float
    readings: int = 0
    features: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    attempts: int = 0
    tries: list[Try] = field(default_factory=list)

    def end_try(self, end_s: float, outcome: str, error: str | None = None) -> None:
        """The try in flight (if one is) ended at ``end_s``."""
        if self.tries and self.tries[-1].end_s is None:
            last = self.tries[-1]
            last.end_s, last.outcome, last.error = max(end_s, last.start_s), outcome, error


@dataclass(frozen=True)
class Span:
    """A step of the run, or one call of a sink's writer (``alongside`` the workers), on the
    run's clock: seconds since the run began."""

    name: str
    start_s: float
    end_s: float
    alongside: bool = False


@dataclass
class RunSummary:
    """What a run did, for the closing summary, the run report and the exit status."""

    run_id: str
    pipeline: str
    fingerprint: str
    started_at: dt.datetime
    plan: Plan
    records: dict[str, EraRecord] = field(default_factory=dict)
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    worker_restarts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # where the run's time went, s
    writes: dict[str, float] = field(default_factory=dict)  # the sinks' writer, alongside, s
    worker_nodes: dict[str, str | None] = field(default_factory=dict)
    ended: str = "completed"  # completed | interrupted | aborted: <why>
    clock: float = field(default_factory=time.perf_counter)  # perf_counter when the run began
    spans: list[Span] = field(default_factory=list)  # the steps and sink calls, in order
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextlib.contextmanager
    def timed(self, key: str, *, alongside: bool = False) -> Iterator[None]:
        """Add the time the block takes to ``timings[key]``: the run's steps one after the
        other, together at most the run's time; ``alongside``: to ``writes[key]``, the sinks'
        writer's threads, which run while the workers extract (one per sink)."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.add_time(key, begin, alongside=alongside)

    def add_time(self, key: str, begin: float, *, alongside: bool = False) -> None:
        """What :meth:`timed` does for a step that began at ``begin`` (perf_counter) and ends
        now: its time added up, its span kept for the timeline."""
        end = time.perf_counter()
        table = self.writes if alongside else self.timings
        with self._lock:
            table[key] = table.get(key, 0.0) + end - begin
            self.spans.append(Span(key, begin - self.clock, end - self.clock, alongside))

    def now_s(self) -> float:
        """Seconds since the run began (the clock of :class:`Try` and :class:`Span`)."""
        return time.perf_counter() - self.clock

    def add_rows(self, sink: str, rows: int) -> None:
        """Count ``rows`` written to ``sink`` (from that sink's writer thread)."""
        with self._lock:
            self.rows_written[sink] = self.rows_written.get(sink, 0) + rows

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records.values())

    @property
    def eras_total(self) -> int:
        return len(self.records)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> list[str]:
        return [r.era.key for r in self.records.values() if r.status == "skipped"]

    @property
    def resumed(self) -> int:
        return self.count("resumed")

    @property
    def failed(self) -> list[EraRecord]:
        return [r for r in self.records.values() if r.status == "failed"]

    @property
    def features(self) -> int:
        """Feature values of the eras done (landed in every sink)."""
        return sum(r.features for r in self.records.values() if r.status == "done")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.ended != "completed" else 0
