"""The sinks' writer: a thread per sink, each doing every call on its sink, in order.

The run loop receives events from the workers and hands the writer what to store: finished
eras, ``batch_eras`` at a time, and era states (running, failed). Writing then overlaps with
extraction: the workers go on while a batch goes to PostgreSQL and Parquet, where a run loop
that wrote itself would leave them waiting; and each sink writes at its own pace, beside the
others, so a run takes as long as its slowest sink, not their sum.

A sink that falls behind gets what waits for it in one call: consecutive batches as one
larger batch (one transaction, one Parquet part), consecutive era states as one update, so
its fixed cost per call shrinks as the backlog grows. Each sink's queue is bounded
(``QUEUED`` batches), so memory holds at most that many batches in flight, and a loop that
outpaces a sink waits for it. Every call on a sink happens on its own thread, so a sink's
database connection is never used by two threads. The first error stops that sink's thread
and is raised in the run loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..model import EraResult, RunSummary
from ..sinks import EraStatus, Sink, StatusSink

#: Batches (or status updates) waiting for each sink at most.
QUEUED = 4
#: Era states held back at most, waiting for the next batch.
STATES = 1024
_STOP = object()


class SinkWriter:
    """Writes batches and era states to the sinks, each sink on a thread of its own."""

    def __init__(self, sinks: Sequence[Sink], summary: RunSummary, batch_eras: int) -> None:
        self.batch_eras = batch_eras
        self.waiting: list[EraResult] = []  # finished eras not yet handed to the threads
        self.states: list[EraStatus] = []  # era states not yet handed, sent with the next batch
        self.blocked_s = 0.0  # time the run loop waited for a sink (a full queue)
        self._lanes = [_Lane(sink, summary) for sink in sinks]

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

    def check(self) -> None:
        for lane in self._lanes:
            if lane.error is not None:
                raise lane.error

    def _put(self, item: Any, lanes: Sequence[_Lane]) -> None:
        self.check()
        began = time.perf_counter()
        for lane in lanes:
            lane.put(item)
        self.blocked_s += time.perf_counter() - began
        self.check()


class _Lane:
    """One sink, its queue and its thread."""

    def __init__(self, sink: Sink, summary: RunSummary) -> None:
        self.sink = sink
        self.summary = summary
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

    def _record(self, entries: list[EraStatus]) -> None:
        assert isinstance(self.sink, StatusSink)
        latest = {entry.era.key: entry for entry in entries}  # merged updates: the last state
        with self.summary.timed("era status", alongside=True):
            self.sink.record_status(list(latest.values()))


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
