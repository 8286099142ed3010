"""The local executor: GPU and CPU lanes as worker processes on this machine.

Each worker keeps its own ADBC connection and processes the eras the plan packed onto it;
events stream back through a pipe per worker, so the sinks write eras as they finish and
memory does not grow with the number of eras.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from ..classify.plan import available_cores
from ..config import PipelineConfig
from ..extract.extractors.gpu import gpu_devices
from ..model import Capacity, WorkerSpec
from .supervisor import Supervisor, Tracked, WorkerLost
from .worker import Handoff, worker_messages


def _worker_main(
    config: PipelineConfig, dsn: str, spec: WorkerSpec, handoff: Handoff, pipe: Any
) -> None:
    """Entry point of a local worker process: its messages go through its pipe. When the
    runner is gone (killed), the pipe is broken: the worker exits at once, quietly, its era
    unfinished (its rows were not written, and a rerun computes it)."""
    try:
        for message in worker_messages(config, dsn, spec, socket.gethostname(), handoff):
            pipe.send(message)
        pipe.close()
    except (BrokenPipeError, ConnectionResetError):
        os._exit(1)
    # Everything is sent (the connection closed when run() ended): skip the interpreter's
    # teardown of numba, scipy and polars, which the runner would otherwise wait ~0.5 s for.
    os._exit(0)


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

    def capacity(self) -> Capacity:
        return Capacity(cpus=available_cores(), gpus=gpu_devices())

    def _start(self, spec: WorkerSpec) -> _Process:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main,
            args=(self.config, self.dsn, spec, self.handoff, writer),
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
