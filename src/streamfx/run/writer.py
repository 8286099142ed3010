"""The sinks' writer: one thread that does every sink call of a run, in order.

The run loop receives events from the workers and hands the writer what to store: finished
eras, ``batch_eras`` at a time, and era states (running, failed). Writing then overlaps with
extraction: the workers go on while a batch goes to PostgreSQL and Parquet, where a run loop
that wrote itself would leave them waiting. The queue is bounded (``QUEUED`` batches), so memory
holds at most that many batches in flight, and a loop that outpaces the sinks waits for them.
Every call on a sink happens on this one thread, so a sink's database connection is never
used by two threads. The first error stops the writer and is raised in the run loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..model import EraResult, RunSummary
from ..sinks import EraStatus, Sink, StatusSink

#: Batches (or status updates) waiting for the writer at most.
QUEUED = 2
_STOP = object()


class SinkWriter:
    """Writes batches and era states to the sinks on a thread of its own."""

    def __init__(self, sinks: Sequence[Sink], summary: RunSummary, batch_eras: int) -> None:
        self.sinks = sinks
        self.summary = summary
        self.batch_eras = batch_eras
        self.waiting: list[EraResult] = []  # finished eras not yet handed to the thread
        self.blocked_s = 0.0  # time the run loop waited for the writer (a full queue)
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUED)
        self._thread = threading.Thread(target=self._loop, name="streamfx-sinks", daemon=True)
        self._thread.start()

    def add(self, result: EraResult) -> None:
        """A finished era; a full batch goes to the sinks."""
        self.waiting.append(result)
        if len(self.waiting) >= self.batch_eras:
            self.flush()

    def flush(self) -> None:
        """Hand the eras waiting to the sinks now (a partial batch too)."""
        if self.waiting:
            batch, self.waiting = self.waiting, []
            self._put(("write", batch))

    def status(self, entries: Sequence[EraStatus]) -> None:
        """Era states for the sinks that keep them, in order with the writes."""
        if entries:
            self._put(("status", list(entries)))

    def stop(self) -> None:
        """Finish what was handed over (unless the writer failed) and end the thread."""
        if self._thread.is_alive():
            self._put(_STOP, check=False)
            self._thread.join()

    def close(self) -> None:
        """:meth:`stop`, then raise the writer's error, if it had one."""
        self.stop()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def _put(self, item: Any, *, check: bool = True) -> None:
        if check:
            self.check()
        began = time.perf_counter()
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.5)
                break
            except queue.Full:
                continue
        self.blocked_s += time.perf_counter() - began
        if check:
            self.check()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            kind, payload = item
            try:
                if kind == "write":
                    self._write(payload)
                else:
                    self._record(payload)
            except BaseException as exc:  # raised in the run loop; the thread ends here
                self.error = exc
                return

    def _write(self, batch: list[EraResult]) -> None:
        for sink in self.sinks:
            with self.summary.timed(f"write {sink.name}", alongside=True):
                written = sink.write(batch)
            rows = self.summary.rows_written
            rows[sink.name] = rows.get(sink.name, 0) + written

    def _record(self, entries: list[EraStatus]) -> None:
        with self.summary.timed("era status", alongside=True):
            for sink in self.sinks:
                if isinstance(sink, StatusSink):
                    sink.record_status(entries)
