"""The Ray executor: the plan's workers as Ray tasks on a cluster (or a local Ray instance).

``executor: {kind: ray}`` runs each :class:`WorkerSpec` of the plan as one Ray task, a
streaming generator around the same :class:`EraWorker` the local executor runs in a process:
the task opens its own ADBC connection, reads and extracts its eras pass by pass, retries an era
that raises, and yields ``Started`` and each outcome as it happens. The driver (``streamfx run``)
waits on all tasks with ``ray.wait`` and hands every outcome to the sinks as it arrives, so
outputs stream and the driver's memory does not grow with the number of eras. GPU-lane tasks ask
Ray for ``num_gpus=1`` (and no CPU: the GPU worker mostly waits on its device, as beside the one
CPU worker per core of the local executor), CPU-lane tasks for ``num_cpus=1``. Each task runs in
a fresh worker process (``max_calls=1``), so its peak memory is its own and a GPU's memory is
released when it ends.

Balancing: streamfx's packing, not Ray's scheduling. ``make_plan`` packs each lane's eras onto
its workers by estimated cost (longest first onto the least-loaded worker), sized by default to
the cluster's CPUs and GPUs; Ray decides only *where* each worker runs. Per-era Ray tasks would
balance dynamically, but each would open its own database connection and warm up its extractor
(numba's compiled kernels, a CUDA context) for one era, eras could no longer be extracted
``eras_per_pass`` at a time (one transfer and one set of kernel launches on the GPU), and
``streamfx plan`` could not show what will run where, nor the report compare estimated and actual
load per worker. With one worker per CPU the packing's imbalance is small (see the run report).

Failures are handled as by the local executor (its module docstring has the details): an era
that raises is retried inside the worker with backoff; a worker whose task dies (process killed,
node lost, Ray's memory monitor) is replaced by a fresh task that retries the eras it had in
flight one at a time (each death counts as a try, up to ``executor.retry.attempts``, then the era
fails) and carries on with the rest; a pass running past ``executor.era_timeout`` is cancelled
(``ray.cancel(force=True)`` kills its process) and its era fails, or the eras of a larger pass are
retried alone; a database lost for good stops the run. Ray's own task retries are off
(``max_retries=0``): a retry by Ray would redo eras already written.

``executor.address``: ``auto`` connects to the cluster this machine belongs to (``ray start``,
or ``RAY_ADDRESS``) and, when there is none, starts a local Ray instance for the run
(``executor.ray_num_cpus`` CPUs, default all), stopped when the run ends; ``ray://host:port``
connects through Ray Client; ``host:port`` to a cluster's GCS. Workers import streamfx (and the
pipeline's plugin files, by the same path) on their node: on one machine nothing is needed, on a
cluster streamfx must be installed on every node (see docs/distributed.md). Environment
variables named ``STREAMFX_*`` of the driver are passed on to the workers.

``ray`` is imported only here, and only when the ray executor is chosen (``pip install
'streamfx[ray]'``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from .config import PipelineConfig
from .errors import DatabaseLost, StreamfxError
from .executor import EraWorker, Event, Started, WorkerReport, WorkerSpec, peak_rss_mb
from .model import Era, EraFailure

MISSING = "executor.kind: ray needs the ray extra: pip install 'streamfx[ray]'"
_started_here = False  # whether this process started the Ray instance it is connected to


def ray_module() -> ModuleType:
    """The ``ray`` package, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise StreamfxError(MISSING) from None
    return ray


def connect(config: PipelineConfig) -> str:
    """Connect this process to Ray (once) as ``executor.address`` says; returns a description."""
    global _started_here
    ray = ray_module()
    address = config.executor.address
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if not ray.is_initialized():
        try:
            try:
                ray.init(address=address, **options)
            except ConnectionError:
                if address != "auto":
                    raise
                ray.init(address="local", num_cpus=config.executor.ray_num_cpus, **options)
                _started_here = True
        except Exception as exc:  # no cluster there, a refused token, Ray Client missing, ...
            raise StreamfxError(
                f"executor.address: cannot connect to Ray at {address!r}: {_reason(exc)}"
            ) from None
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    where = "a local Ray instance" if _started_here else f"the Ray cluster at {address}"
    return f"running on {where}: {nodes} node(s), {cpus} CPUs, {gpus} GPUs"


def cluster_lanes(config: PipelineConfig) -> tuple[int, int, str]:
    """CPUs and GPUs of the cluster (the default lane sizes), and a notice saying where.

    At least one CPU worker: on a cluster whose CPU nodes have not joined yet (a head started
    with ``--num-cpus=0``), its task waits for one instead of its eras going nowhere.
    """
    notice = connect(config)
    resources = ray_module().cluster_resources()
    return max(1, int(resources.get("CPU", 0))), int(resources.get("GPU", 0)), notice


def disconnect() -> None:
    """Stop the Ray instance this process started (a cluster it joined keeps running)."""
    global _started_here
    if _started_here:
        ray_module().shutdown()
        _started_here = False


def node_name() -> str:
    """This node, as ``hostname (ip)``."""
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


def _run_worker(config: PipelineConfig, dsn: str, spec: WorkerSpec) -> Iterator[tuple[str, Any]]:
    """A Ray task (streaming generator): ``node``, then events, then ``done`` (or ``fatal``)."""
    yield ("node", node_name())
    try:
        for event in EraWorker(config, dsn, spec).run():
            yield ("event", event)
    except DatabaseLost as exc:
        yield ("fatal", str(exc))
        return
    yield ("done", peak_rss_mb())


@dataclass
class _Task:
    """A worker's Ray task as the driver sees it."""

    spec: WorkerSpec
    stream: Any  # ray.ObjectRefGenerator
    left: list[Era]  # eras without an outcome yet, in order
    in_flight: Started | None = None
    since: float = 0.0  # when the pass in flight started (monotonic, on the driver)
    began: bool = False  # it started at least one pass


def _reason(exc: BaseException) -> str:
    """A Ray error in a few words: its type and the first line of its message."""
    cause = getattr(exc, "cause", None)  # RayTaskError: the worker's own exception
    if isinstance(cause, BaseException):
        exc = cause
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class RayExecutor:
    """GPU and CPU lanes as Ray tasks, one per worker of the plan."""

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        self.ray = ray_module()
        self.config = config
        self.dsn = dsn
        self.retry = config.executor.retry
        timeout = config.executor.era_timeout
        self.timeout = timeout.total_seconds() if timeout else None
        self.reports: dict[str, WorkerReport] = {}
        self.env = {k: v for k, v in os.environ.items() if k.startswith("STREAMFX_")}

    def run(self, workers: list[WorkerSpec]) -> Iterator[Event]:
        ray = self.ray
        try:
            connect(self.config)
            # a fresh process per worker: its own peak memory, its GPU memory freed at the end
            self.remote = ray.remote(max_calls=1)(_run_worker)
            running = {w.name: self._start(w) for w in workers if w.eras}
            self.reports = {name: WorkerReport(name) for name in running}
            try:
                while running:
                    yield from self._stop_overdue(running)
                    streams = [t.stream for t in running.values()]
                    ready, _ = ray.wait(streams, num_returns=1, timeout=self._wait_s(running))
                    for name, task in list(running.items()):
                        if any(task.stream is r for r in ready):
                            yield from self._receive(name, task, running)
            finally:
                for task in running.values():
                    self._cancel(task)
        finally:
            disconnect()

    def _start(self, spec: WorkerSpec) -> _Task:
        lane = {"num_gpus": 1, "num_cpus": 0} if spec.lane == "gpu" else {"num_cpus": 1}
        stream = self.remote.options(
            num_returns="streaming",
            max_retries=0,  # streamfx retries, era by era; Ray would redo the whole worker
            name=f"streamfx-{spec.name}",
            runtime_env={"env_vars": self.env} if self.env else None,
            **lane,
        ).remote(self.config, self.dsn, spec)
        return _Task(spec, stream, list(spec.eras))

    def _wait_s(self, running: dict[str, _Task]) -> float:
        if self.timeout is None:
            return 5.0
        now = time.monotonic()
        deadlines = [t.since + self.timeout - now for t in running.values() if t.in_flight]
        return max(0.05, min(deadlines, default=5.0))

    def _receive(self, name: str, task: _Task, running: dict[str, _Task]) -> Iterator[Event]:
        try:
            kind, payload = self.ray.get(next(task.stream))
        except StopIteration:  # ended without "done": cannot happen, but do not wait forever
            kind, payload = "done", 0.0
        except self.ray.exceptions.RayTaskError as exc:  # streamfx's code raised in the worker
            yield from self._replace(name, task, running, f"raised {_reason(exc)}", raised=True)
            return
        except self.ray.exceptions.RayError as exc:  # process killed, node lost, OOM, ...
            yield from self._replace(name, task, running, f"died ({_reason(exc)})")
            return
        report = self.reports[name]
        if kind == "node":
            report.node = payload
        elif kind == "event":
            if isinstance(payload, Started):
                task.in_flight, task.since, task.began = payload, time.monotonic(), True
            else:
                task.left.remove(payload.era)
                flight = task.in_flight
                if flight and all(e not in task.left for e in flight.eras):
                    task.in_flight = None
            yield payload
        elif kind == "done":
            report.peak_rss_mb, report.exit_code = payload, 0
            del running[name]
        else:  # fatal: the database is gone for good
            raise DatabaseLost(payload)

    def _stop_overdue(self, running: dict[str, _Task]) -> Iterator[Event]:
        if self.timeout is None:
            return
        now = time.monotonic()
        for name, task in list(running.items()):
            if task.in_flight and now - task.since > self.timeout:
                self._cancel(task)
                yield from self._replace(
                    name, task, running, f"timed out after {self.timeout:g} s", timed_out=True
                )

    def _replace(
        self,
        name: str,
        task: _Task,
        running: dict[str, _Task],
        reason: str,
        timed_out: bool = False,
        raised: bool = False,
    ) -> Iterator[Event]:
        """A task died or was stopped: fail or retry its eras in flight, restart the rest.

        The same decisions as ``LocalExecutor._replace``; one difference: a task lost before
        its first era to something other than streamfx's own code (a node going away) is
        started again, up to ``retry.attempts`` times, since there a retry does help.
        """
        report = self.reports[name]
        del running[name]
        if not task.began and (raised or report.restarts >= self.retry.attempts):
            for era in task.left:
                yield EraFailure(era, f"worker {name} {reason} before its first era", 0.0, name)
            return
        flight = task.in_flight
        in_flight = [e for e in (flight.eras if flight else ()) if e in task.left]
        attempts = dict(task.spec.attempts)
        if flight:
            attempts.update(zip((e.id for e in flight.eras), flight.attempts, strict=True))
        retry: list[Era] = []
        for era in in_flight:
            tries = attempts[era.id]
            if len(flight.eras) > 1:  # a shared pass: redo each era alone, no try counted
                attempts[era.id] = tries - 1
                retry.append(era)
            elif timed_out or tries >= self.retry.attempts:  # a hang would only hang again
                task.left.remove(era)
                yield EraFailure(era, f"worker {name} {reason}", 0.0, name, tries)
            else:
                retry.append(era)
        rest = [e for e in task.left if e not in retry]
        if not retry and not rest:
            return
        report.restarts += 1
        spec = replace(
            task.spec,
            eras=tuple(retry + rest),
            solo=len(retry),
            attempts=attempts,
            retrying=f"worker {name} {reason}",
        )
        running[name] = self._start(spec)

    def _cancel(self, task: _Task) -> None:
        with contextlib.suppress(Exception):  # already finished or gone
            self.ray.cancel(task.stream, force=True)  # kills the process: a hung kernel too
