"""The sinks' writer: a thread per sink, each doing every call on its sink, in order.

The run loop receives events from the workers and hands the writer what to store: finished
eras, ``batch_eras`` at a time, and era states (running, failed). Writing then overlaps with
extraction: the workers go on while a batch goes to PostgreSQL and Parquet, where a run loop
that wrote itself would leave them waiting; and each sink writes at its own pace, beside the
others, so a run takes as long as its slowest sink, not their sum.

A sink that falls behind gets what waits for it in one call: consecutive batches as one
larger batch (one transaction, one Parquet part), consecutive era states as one update, so
its fixed cost per call shrinks as the backlog grows. An era is done when every sink has
committed it: the writer marks its record done then (and calls ``on_done``), never before. Each sink's queue is bounded
(``QUEUED`` batches), so memory holds at most that many batches in flight, and a loop that
outpaces a sink waits for it. Every call on a sink happens on its own thread, so a sink's
database connection is never used by two threads. The first error stops that sink's thread
and is raised in the run loop.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..database import cancelled
from ..errors import DatabaseLost, SinkFailed, StreamfxError
from ..model import Era, EraResult, RunSummary
from ..sinks import EraStatus, Sink, StatusSink

#: Batches (or status updates) waiting for each sink at most.
QUEUED = 4
#: Era states held back at most, waiting for the next batch.
STATES = 1024
_STOP = object()


class SinkWriter:
    """Writes batches and era states to the sinks, each sink on a thread of its own."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        summary: RunSummary,
        batch_eras: int,
        on_done: Callable[[Era], None] = lambda era: None,
    ) -> None:
        self.batch_eras = batch_eras
        self.waiting: list[EraResult] = []  # finished eras not yet handed to the threads
        self.states: list[EraStatus] = []  # era states not yet handed, sent with the next batch
        self.blocked_s = 0.0  # time the run loop waited for a sink (a full queue)
        self.summary = summary
        self.on_done = on_done
        self._committed: dict[str, int] = {}  # era key -> sinks that committed it so far
        self._landing = threading.Lock()
        self._lanes = [_Lane(sink, summary, self._landed) for sink in sinks]

    def add(self, result: EraResult) -> None:
        """A finished era; a full batch goes to the sinks."""
        self.waiting.append(result)
        if len(self.waiting) >= self.batch_eras:
            self.flush()

    def flush(self) -> None:
        """Hand the era states and the eras waiting to the sinks now (a partial batch too)."""
        self._hand_states()
        if self.waiting:
            batch, self.waiting = self.waiting, []
            self._put(("write", batch), self._lanes)

    def status(self, entries: Sequence[EraStatus]) -> None:
        """Era states for the sinks that keep them, in order with the writes.

        They go with the next batch (one status update per batch, not one per pass), or once
        ``STATES`` of them wait."""
        self.states.extend(entries)
        if len(self.states) >= STATES:
            self._hand_states()

    def _hand_states(self) -> None:
        keepers = [lane for lane in self._lanes if isinstance(lane.sink, StatusSink)]
        if self.states and keepers:
            self._put(("status", self.states), keepers)
        self.states = []

    def stop(self) -> None:
        """Finish what was handed over (unless a sink failed) and end the threads."""
        for lane in self._lanes:
            lane.put(_STOP)
        for lane in self._lanes:
            lane.thread.join()

    def close(self) -> None:
        """:meth:`stop`, then raise a sink's error, if one had one."""
        self.stop()
        self.check()

    @property
    def failed(self) -> bool:
        """Whether a sink's thread has ended with an error."""
        return any(lane.error is not None for lane in self._lanes)

    def check(self) -> None:
        """Raise the first sink's error as SinkFailed naming the sink (exit status 1: the
        run's input was fine, the sink failed mid-run); a database lost for good, and
        Ctrl-C or SIGTERM, as they are; a cancelled write as Ctrl-C."""
        for lane in self._lanes:
            error = lane.error
            if error is None:
                continue
            if isinstance(error, DatabaseLost | SinkFailed) or not isinstance(error, Exception):
                raise error
            if cancelled(error):  # its transaction rolled back; stop as Ctrl-C does
                raise KeyboardInterrupt from error
            text = str(error) if isinstance(error, StreamfxError) else _one_line(error)
            raise SinkFailed(f"sinks.{lane.sink.name}: {text}") from error

    def reset(self, eras: Sequence[Era]) -> None:
        """After :meth:`stop`: record ``eras`` (started, not done) pending again in the sinks
        that keep a status, unless their database is lost for good, so no era stays
        ``running`` after its run. Best effort: the run is ending with another error already."""
        for lane in self._lanes:
            lost = isinstance(lane.error, DatabaseLost)
            if eras and not lost and isinstance(lane.sink, StatusSink):
                with contextlib.suppress(Exception):
                    lane.sink.record_status([EraStatus(era, "pending") for era in eras])

    def _landed(self, batch: Sequence[EraResult]) -> None:
        """A sink committed ``batch``: the eras every sink now holds are done."""
        with self._landing:
            for result in batch:
                key = result.era.key
                self._committed[key] = self._committed.get(key, 0) + 1
                if self._committed[key] == len(self._lanes):
                    self.summary.records[key].status = "done"
                    self.on_done(result.era)

    def _put(self, item: Any, lanes: Sequence[_Lane]) -> None:
        self.check()
        began = time.perf_counter()
        for lane in lanes:
            lane.put(item)
        self.blocked_s += time.perf_counter() - began
        self.check()


class _Lane:
    """One sink, its queue and its thread."""

    def __init__(
        self, sink: Sink, summary: RunSummary, landed: Callable[[Sequence[EraResult]], None]
    ) -> None:
        self.sink = sink
        self.summary = summary
        self.landed = landed
        self.error: BaseException | None = None
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUED)
        self.thread = threading.Thread(target=self._loop, name=f"streamfx-{sink.name}", daemon=True)
        self.thread.start()

    def put(self, item: Any) -> None:
        """Queue ``item``, waiting while the queue is full (not once the thread has ended)."""
        while self.thread.is_alive():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _loop(self) -> None:
        while True:
            items = [self.queue.get()]
            while items[-1] is not _STOP:  # what else waits, taken at once
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                for kind, payload in _runs(items):
                    if kind == "write":
                        self._write(payload)
                    else:
                        self._record(payload)
            except BaseException as exc:  # raised in the run loop; the thread ends here
                self.error = exc
                return
            if items[-1] is _STOP:
                return

    def _write(self, batch: list[EraResult]) -> None:
        fresh = [r for r in batch if self.sink.name not in r.written]  # not by their worker
        written = len(batch) - len(fresh)  # a worker-written sink counts eras (Parquet does)
        if fresh:
            with self.summary.timed(f"write {self.sink.name}", alongside=True):
                written += self.sink.write(fresh)
        self.summary.add_rows(self.sink.name, written)
        self.landed(batch)

    def _record(self, entries: list[EraStatus]) -> None:
        assert isinstance(self.sink, StatusSink)
        latest = {entry.era.key: entry for entry in entries}  # merged updates: the last state
        with self.summary.timed("era status", alongside=True):
            self.sink.record_status(list(latest.values()))


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _runs(items: list[Any]) -> list[tuple[str, list[Any]]]:
    """Consecutive items of one kind merged, in order (the stop marker left out)."""
    merged: list[tuple[str, list[Any]]] = []
    for item in items:
        if item is _STOP:
            break
        kind, payload = item
        if merged and merged[-1][0] == kind:
            merged[-1][1].extend(payload)
        else:
            merged.append((kind, list(payload)))
    return merged
