"""Executors run the per-era work (read, extract) and yield events as eras start and finish.

The local executor runs one process per worker of each lane (GPU lane, CPU lane). Each worker
keeps its own ADBC connection and processes the eras the plan packed onto it; events stream
back through a pipe per worker, so the sinks write eras as they finish and memory does not grow
with the number of eras. Failures are contained where they happen:

- an era that raises is tried again in the same worker, after a pause that doubles each time
  (``executor.retry``); a pass of several eras that fails is redone one era at a time, so one
  bad era fails alone;
- a worker process that dies (segfault, OOM kill) is replaced by a fresh one that retries the
  eras it had in flight, one at a time, then carries on with the rest;
- a pass running past ``executor.era_timeout`` is stopped (its worker is killed): a single era
  fails, the eras of a larger pass are retried one at a time;
- a lost database connection is reopened with backoff (``executor.reconnect``) and only the
  read in flight is redone; past that budget the run stops with :class:`DatabaseLost`.

The pipeline depends only on ``Executor.run``, so a distributed executor can stand in.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from array_api_compat import numpy as array_numpy

from .classify import Classifier
from .config import PipelineConfig
from .database import Connection, reconnect
from .errors import DatabaseLost
from .model import FEATURES_SCHEMA, Era, EraFailure, EraResult
from .plugin_calculators import extract_all
from .plugins import get_extractor, load_local_plugins
from .rolling import rolling_features
from .source import Source

Outcome = EraResult | EraFailure


@dataclass(frozen=True)
class Started:
    """A worker began a pass over ``eras`` (``attempts[i]`` is the try number of ``eras[i]``)."""

    eras: tuple[Era, ...]
    worker: str
    attempts: tuple[int, ...]
    retrying: str | None = None  # why this is a retry (the previous try's error), if it is


Event = Started | EraResult | EraFailure


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


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class EraWorker:
    """Everything one worker needs to turn an era into features: connection, source, extractor."""

    def __init__(self, config: PipelineConfig, dsn: str, spec: WorkerSpec) -> None:
        load_local_plugins(config.plugins)  # a spawned worker starts with built-ins only
        self.config = config
        self.spec = spec
        self.retry = config.executor.retry
        self.attempts = dict(spec.attempts)
        policy = config.executor.reconnect  # a database blip while workers start is waited out
        self.db = Connection(dsn, policy, reconnect(dsn, policy, first_wait=False))
        self.source = Source(config.source, self.db.conn)
        self.classifier = Classifier(config.stages.classify)
        self.extractor = get_extractor(spec.extractor)
        if hasattr(self.extractor, "memory_limit_gb"):  # the GPU extractor's pool cap
            self.extractor.memory_limit_gb = config.executor.gpu_memory_limit_gb
        self.rolling_windows = config.stages.extract.rolling_windows
        self.on_calculator_error = config.stages.extract.on_calculator_error
        self.warnings: list[str] = []

    def features(self, readings: pa.Table) -> pa.Table:
        """Features of every (era, sensor) series in ``readings``, rolling windows included."""
        sensors = pl.from_arrow(readings.select(["sensor"]))["sensor"].unique().sort().to_list()
        if not sensors:
            return FEATURES_SCHEMA.empty_table()
        features = extract_all(
            self.extractor,
            readings,
            self.classifier.fc_parameters(sensors),
            n_jobs=self.spec.n_jobs,
            on_error=self.on_calculator_error,
            warnings_out=self.warnings,
        )
        gpu_suitable = [s for s in sensors if self.classifier.sensor_class(s).lane == "gpu"]
        if self.rolling_windows and gpu_suitable:
            xp = getattr(self.extractor, "xp", array_numpy)  # rolling runs where the kernels run
            rolled = rolling_features(readings, gpu_suitable, self.rolling_windows, xp)
            features = pa.concat_tables([features, rolled])
        return features

    def read(self, era: Era) -> pa.Table:
        """The era's readings; a dead connection is reopened (with backoff) and the read redone."""

        def read(conn: Any) -> pa.Table:
            if conn is not self.source.conn:  # reopened after the connection was lost
                self.source = Source(self.config.source, conn)
            return self.source.read_era(era)

        return self.db.run(read)  # DatabaseLost past the reconnect budget

    def process(self, eras: Sequence[Era], retrying: str | None = None) -> Iterator[Event]:
        """Extract several eras in one pass (one extractor call, one device transfer).

        If the pass fails, each era is redone alone, so one bad era fails by itself; a single
        era is tried again after a pause until ``retry.attempts`` tries are used.
        """
        eras = tuple(eras)
        for era in eras:
            self.attempts[era.id] = self.attempts.get(era.id, 0) + 1
        yield Started(eras, self.spec.name, tuple(self.attempts[e.id] for e in eras), retrying)
        started = time.perf_counter()
        try:
            outcomes = self._extract(eras, started)
        except DatabaseLost:
            raise
        except Exception as exc:
            if len(eras) > 1:
                for era in eras:  # a shared pass failing is no single era's try
                    self.attempts[era.id] -= 1
                for era in eras:
                    yield from self.process((era,))
                return
            tries = self.attempts[eras[0].id]
            if tries < self.retry.attempts:
                time.sleep(self.retry.delay(tries))
                yield from self.process(eras, retrying=_one_line(exc))
                return
            elapsed = time.perf_counter() - started
            yield EraFailure(eras[0], _one_line(exc), elapsed, self.spec.name, tries)
            return
        yield from outcomes

    def _extract(self, eras: tuple[Era, ...], started: float) -> list[Outcome]:
        parts = [self.read(era) for era in eras]
        features = self.features(pa.concat_tables(parts))
        elapsed = time.perf_counter() - started
        total = sum(p.num_rows for p in parts) or 1
        by_era = pl.from_arrow(features).partition_by("era_id", as_dict=True)
        peak = peak_rss_mb()
        outcomes: list[Outcome] = []
        for era, readings in zip(eras, parts, strict=True):
            era_features = by_era.get((era.id,))
            sensors = pc.unique(readings["sensor"]).to_pylist()
            outcomes.append(
                EraResult(
                    era=era,
                    readings=readings.num_rows,
                    features=(
                        era_features.to_arrow().cast(FEATURES_SCHEMA)
                        if era_features is not None
                        else FEATURES_SCHEMA.empty_table()
                    ),
                    seconds=elapsed * readings.num_rows / total,  # the pass, shared by size
                    sensors={s: self.classifier.sensor_class(s).features for s in sorted(sensors)},
                    worker=self.spec.name,
                    peak_rss_mb=peak,
                    warnings=[w for w in self.warnings if f" on era {era.id}, " in w],
                    attempts=self.attempts[era.id],
                )
            )
        return outcomes

    def run(self) -> Iterator[Event]:
        try:
            for i, eras in enumerate(self.spec.passes()):
                retrying = self.spec.retrying if i < self.spec.solo else None
                tries = self.spec.attempts.get(eras[0].id, 0)
                if retrying and tries:  # the dead worker's try counts: pause as after a raise
                    time.sleep(self.retry.delay(tries))
                yield from self.process(eras, retrying)
        finally:
            self.db.close()


class Executor(Protocol):
    def run(self, workers: list[WorkerSpec]) -> Iterator[Event]:
        """Process every worker's eras, yielding each event as soon as it happens."""
        ...


@dataclass
class WorkerReport:
    """What a worker reported when it finished (for the run report)."""

    name: str
    peak_rss_mb: float = 0.0
    exit_code: int | None = None
    restarts: int = 0  # fresh processes that replaced one that died or was stopped
    node: str | None = None  # where it ran (the ray executor: "hostname (ip)")


def worker_messages(
    config: PipelineConfig, dsn: str, spec: WorkerSpec, node: str
) -> Iterator[tuple[str, Any]]:
    """What a worker tells its executor: ``node``, its events, then ``done`` (or ``fatal``)."""
    yield ("node", node)
    try:
        for event in EraWorker(config, dsn, spec).run():
            yield ("event", event)
    except DatabaseLost as exc:
        yield ("fatal", str(exc))
        return
    yield ("done", peak_rss_mb())


def _worker_main(config: PipelineConfig, dsn: str, spec: WorkerSpec, pipe: Any) -> None:
    """Entry point of a local worker process: its messages go through its pipe."""
    for message in worker_messages(config, dsn, spec, socket.gethostname()):
        pipe.send(message)
    pipe.close()
    # Everything is sent (the connection closed when run() ended): skip the interpreter's
    # teardown of numba, scipy and polars, which the runner would otherwise wait ~0.5 s for.
    os._exit(0)


class WorkerLost(Exception):
    """A worker's channel says the worker is gone; ``retryable``: starting it again may help."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass
class Tracked:
    """A worker as its executor sees it: the eras without an outcome yet and the pass in flight."""

    spec: WorkerSpec
    handle: Any  # the executor's own: a process and its pipe, a Ray task's stream
    left: list[Era]  # in order
    in_flight: Started | None = None
    since: float = 0.0  # when the pass in flight started (monotonic, in the runner)
    began: bool = False  # it started at least one pass

    def note(self, event: Event) -> None:
        if isinstance(event, Started):
            self.in_flight, self.since, self.began = event, time.monotonic(), True
            return
        self.left.remove(event.era)
        if self.in_flight and all(e not in self.left for e in self.in_flight.eras):
            self.in_flight = None


class Supervisor:
    """What every executor does around its workers: start them, route their messages, stop the
    overdue ones, and replace the lost ones (retrying or failing the eras they had in flight).

    A worker's messages are ``("node", where)``, ``("event", Started | outcome)``, then
    ``("done", peak_rss_mb)`` or ``("fatal", message)`` (the database is gone for good).
    Subclasses say how to start a worker, wait for messages, read one, and stop a worker.
    """

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        self.config = config
        self.dsn = dsn
        self.retry = config.executor.retry
        timeout = config.executor.era_timeout
        self.timeout = timeout.total_seconds() if timeout else None
        self.reports: dict[str, WorkerReport] = {}

    def _start(self, spec: WorkerSpec) -> Any:
        """Start a worker for ``spec``; return its handle."""
        raise NotImplementedError

    def _wait(self, running: dict[str, Tracked], timeout: float) -> list[str]:
        """Names of the workers with a message (or an end) to read, waiting up to ``timeout``."""
        raise NotImplementedError

    def _read(self, worker: Tracked) -> tuple[str, Any]:
        """The worker's next message; raises :class:`WorkerLost` when it is gone."""
        raise NotImplementedError

    def _stop(self, worker: Tracked) -> int | None:
        """Stop the worker (kill it if it still runs) and release it; its exit code if known."""
        raise NotImplementedError

    def run(self, workers: list[WorkerSpec]) -> Iterator[Event]:
        running = {w.name: Tracked(w, self._start(w), list(w.eras)) for w in workers if w.eras}
        self.reports = {name: WorkerReport(name) for name in running}
        try:
            while running:
                yield from self._stop_overdue(running)
                for name in self._wait(running, self._wait_s(running)):
                    yield from self._receive(name, running)
        finally:
            for worker in running.values():
                self._stop(worker)

    def _wait_s(self, running: dict[str, Tracked]) -> float:
        if self.timeout is None:
            return 5.0
        now = time.monotonic()
        deadlines = [w.since + self.timeout - now for w in running.values() if w.in_flight]
        return max(0.05, min(deadlines, default=5.0))

    def _receive(self, name: str, running: dict[str, Tracked]) -> Iterator[Event]:
        worker, report = running[name], self.reports[name]
        try:
            kind, payload = self._read(worker)
        except WorkerLost as lost:
            report.exit_code = self._stop(worker)
            yield from self._replace(name, running, lost.reason, retryable=lost.retryable)
            return
        if kind == "event":
            worker.note(payload)
            yield payload
        elif kind == "node":
            report.node = payload
        elif kind == "done":
            report.peak_rss_mb = payload
            report.exit_code = self._stop(worker)
            del running[name]
        else:  # fatal: the database is gone for good
            raise DatabaseLost(payload)

    def _stop_overdue(self, running: dict[str, Tracked]) -> Iterator[Event]:
        if self.timeout is None:
            return
        now = time.monotonic()
        for name, worker in list(running.items()):
            if worker.in_flight and now - worker.since > self.timeout:
                self.reports[name].exit_code = self._stop(worker)
                yield from self._replace(
                    name, running, f"timed out after {self.timeout:g} s", timed_out=True
                )

    def _replace(
        self,
        name: str,
        running: dict[str, Tracked],
        reason: str,
        *,
        timed_out: bool = False,
        retryable: bool = False,
    ) -> Iterator[Event]:
        """A worker died or was stopped: fail or retry its eras in flight, restart the rest.

        A worker lost before its first era fails its eras (streamfx's code could not start: a
        plugin that does not import, say), unless the loss may pass (killed by a signal, a
        node gone), then it is started again, up to ``retry.attempts`` times.
        """
        worker, report = running.pop(name), self.reports[name]
        if not worker.began and (not retryable or report.restarts >= self.retry.attempts):
            for era in worker.left:
                yield EraFailure(era, f"worker {name} {reason} before its first era", 0.0, name)
            return
        flight = worker.in_flight
        shared = flight is not None and len(flight.eras) > 1
        attempts = dict(worker.spec.attempts)
        if flight:
            attempts.update(zip((e.id for e in flight.eras), flight.attempts, strict=True))
        retry: list[Era] = []
        for era in [e for e in (flight.eras if flight else ()) if e in worker.left]:
            tries = attempts[era.id]
            if shared:  # a shared pass: redo each era alone, no try counted
                attempts[era.id] = tries - 1
                retry.append(era)
            elif timed_out or tries >= self.retry.attempts:  # a hang would only hang again
                worker.left.remove(era)
                yield EraFailure(era, f"worker {name} {reason}", 0.0, name, tries)
            else:
                retry.append(era)
        rest = [e for e in worker.left if e not in retry]
        if not retry and not rest:
            return
        report.restarts += 1
        spec = replace(
            worker.spec,
            eras=tuple(retry + rest),
            solo=len(retry),
            attempts=attempts,
            retrying=f"worker {name} {reason}",
        )
        running[name] = Tracked(spec, self._start(spec), list(spec.eras))


@dataclass
class _Process:
    process: Any
    pipe: Any


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Start children with Ctrl-C ignored (the setting survives exec): a Ctrl-C in the terminal
    reaches the whole process group, and a worker still importing would die of it with a
    traceback. The runner handles Ctrl-C and stops its workers itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class LocalExecutor(Supervisor):
    """GPU and CPU lanes as worker processes on this machine, each talking through its own pipe.

    A pipe per worker, not a shared queue: a worker killed mid-message corrupts only its own
    channel, and its end of the pipe closing is how its death is noticed, at once.
    """

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        super().__init__(config, dsn)
        # spawn, not fork: polars and the ADBC driver hold threads that fork would copy broken
        self.context = mp.get_context("spawn")

    def _start(self, spec: WorkerSpec) -> _Process:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main,
            args=(self.config, self.dsn, spec, writer),
            name=f"streamfx-{spec.name}",
        )
        with _ctrl_c_ignored():
            process.start()
        writer.close()  # the child holds the only writing end: its death closes the pipe
        return _Process(process, reader)

    def _wait(self, running: dict[str, Tracked], timeout: float) -> list[str]:
        pipes = {w.handle.pipe: name for name, w in running.items()}
        return [pipes[pipe] for pipe in wait(list(pipes), timeout=timeout)]

    def _read(self, worker: Tracked) -> tuple[str, Any]:
        try:
            return worker.handle.pipe.recv()
        except (EOFError, OSError):  # the process is gone: its pipe closed
            worker.handle.process.join()
            code = worker.handle.process.exitcode
            # killed by a signal (OOM killer, kill -9): may pass; an exit status would recur
            retryable = code is not None and code < 0
            raise WorkerLost(f"died (exit code {code})", retryable=retryable) from None

    def _stop(self, worker: Tracked) -> int | None:
        process = worker.handle.process
        if process.is_alive() and worker.left:
            process.kill()  # a hung kernel may ignore SIGTERM
        process.join()
        worker.handle.pipe.close()
        return process.exitcode


def make_executor(config: PipelineConfig, dsn: str) -> Executor:
    """The executor ``executor.kind`` names (ray is imported only when chosen)."""
    if config.executor.kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(config, dsn)
    return LocalExecutor(config, dsn)
