"""What every executor does around its workers, whatever runs them (processes, Ray tasks).

Start them, route their messages, stop the overdue ones, and replace the lost ones: a worker
that dies (segfault, OOM kill) is replaced by a fresh one that retries the eras it had in
flight, one at a time, then carries on with the rest; a pass running past
``executor.era_timeout`` is stopped (its worker is killed): a single era fails, the eras of a
larger pass are retried one at a time. The pipeline depends only on :class:`Executor`, so a
distributed executor can stand in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..config import PipelineConfig
from ..errors import DatabaseLost, SinkFailed
from ..model import Capacity, Era, EraFailure, WorkerSpec
from .worker import Event, Handoff, Retrying, Started


class Executor(Protocol):
    """Runs the plan's workers; says what it can run on and what each worker reported."""

    #: by worker name, filled while ``run`` goes (peak memory, exit code, restarts, node)
    reports: dict[str, WorkerReport]

    def capacity(self) -> Capacity:
        """The CPU workers and GPUs it runs on by default (lanes are sized to them)."""
        ...

    def run(self, workers: list[WorkerSpec], handoff: Handoff = Handoff()) -> Iterator[Event]:
        """Process every worker's eras, yielding each event as soon as it happens; the
        workers write their eras to ``handoff``'s writers themselves."""
        ...


@dataclass
class WorkerReport:
    """What a worker reported when it finished (for the run report)."""

    name: str
    peak_rss_mb: float = 0.0
    exit_code: int | None = None
    restarts: int = 0  # fresh processes that replaced one that died or was stopped
    node: str | None = None  # where it ran (the ray executor: "hostname (ip)")


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
    left: dict[Era, None]  # in order (a dict: each outcome is noted in constant time)
    in_flight: Started | None = None
    since: float = 0.0  # when the pass in flight started (monotonic, in the runner)
    began: bool = False  # it started at least one pass
    flight_left: set[Era] = field(default_factory=set)  # eras of the pass still to come

    def note(self, event: Event) -> None:
        if isinstance(event, Started):
            self.in_flight, self.since, self.began = event, time.monotonic(), True
            self.flight_left = {era for era in event.eras if era in self.left}
            return
        if isinstance(event, Retrying):  # the era is still to come
            return
        self.left.pop(event.era)
        self.flight_left.discard(event.era)
        if self.in_flight and not self.flight_left:
            self.in_flight = None


class Supervisor:
    """What every executor does around its workers: start them, route their messages, stop the
    overdue ones, and replace the lost ones (retrying or failing the eras they had in flight).

    A worker's messages are ``("node", where)``, ``("event", Started | outcome)``, then
    ``("done", peak_rss_mb)``, ``("fatal", message)`` (the database is gone for good) or
    ``("sink failed", message)`` (a sink it writes itself raised).
    Subclasses say how to start a worker, wait for messages, read one, and stop a worker.
    """

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        self.config = config
        self.dsn = dsn
        self.retry = config.executor.retry
        self.handoff = Handoff()  # what the workers of the current run write themselves
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

    def run(self, workers: list[WorkerSpec], handoff: Handoff = Handoff()) -> Iterator[Event]:
        self.handoff = handoff
        running = {
            w.name: Tracked(w, self._start(w), dict.fromkeys(w.eras)) for w in workers if w.eras
        }
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
        elif kind == "sink failed":  # a sink the worker writes itself
            raise SinkFailed(payload)
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
            attempts.update(zip((e.key for e in flight.eras), flight.attempts, strict=True))
        retry: list[Era] = []
        for era in [e for e in (flight.eras if flight else ()) if e in worker.left]:
            tries = attempts[era.key]
            if shared:  # a shared pass: redo each era alone, no try counted
                attempts[era.key] = tries - 1
                retry.append(era)
            elif timed_out or tries >= self.retry.attempts:  # a hang would only hang again
                worker.left.pop(era)
                yield EraFailure(era, f"worker {name} {reason}", 0.0, name, tries)
            else:
                retry.append(era)
        for era in retry:
            yield Retrying(era, name, f"worker {name} {reason}")
        retried = set(retry)
        rest = [e for e in worker.left if e not in retried]
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
        running[name] = Tracked(spec, self._start(spec), dict.fromkeys(spec.eras))
