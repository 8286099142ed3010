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

Balancing: streamfx's packing, not Ray's scheduling. ``classify.plan.make_plan`` packs each lane's eras onto
its workers by estimated cost (longest first onto the least-loaded worker), sized by default to
the cluster's CPUs and GPUs; Ray decides only *where* each worker runs. Per-era Ray tasks would
balance dynamically, but each would open its own database connection and warm up its extractor
(numba's compiled kernels, a CUDA context) for one era, eras could no longer be extracted
``eras_per_pass`` at a time (one transfer and one set of kernel launches on the GPU), and
``streamfx plan`` could not show what will run where, nor the report compare estimated and actual
load per worker. With one worker per CPU the packing's imbalance is small (see the run report).

Failures are handled as by the local executor (see ``run.supervisor`` and ``run.worker``): an era
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
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from ..config import PipelineConfig
from ..errors import StreamfxError
from ..model import Capacity, WorkerSpec
from .supervisor import Supervisor, Tracked, WorkerLost
from .worker import Event, Handoff, worker_messages

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


def cluster_capacity(config: PipelineConfig) -> Capacity:
    """CPUs and GPUs of the cluster (the default lane sizes), and a notice saying where.

    At least one CPU worker: on a cluster whose CPU nodes have not joined yet (a head started
    with ``--num-cpus=0``), its task waits for one instead of its eras going nowhere.
    """
    notice = connect(config)
    resources = ray_module().cluster_resources()
    return Capacity(max(1, int(resources.get("CPU", 0))), int(resources.get("GPU", 0)), notice)


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


def _run_worker(
    config: PipelineConfig, dsn: str, spec: WorkerSpec, handoff: Handoff
) -> Iterator[tuple[str, Any]]:
    """A Ray task (streaming generator): the worker's messages, as a local worker sends them."""
    yield from worker_messages(config, dsn, spec, node_name(), handoff)


def _reason(exc: BaseException) -> str:
    """A Ray error in a few words: its type and the first line of its message."""
    cause = getattr(exc, "cause", None)  # RayTaskError: the worker's own exception
    if isinstance(cause, BaseException):
        exc = cause
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class RayExecutor(Supervisor):
    """GPU and CPU lanes as Ray tasks, one per worker of the plan."""

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        super().__init__(config, dsn)
        self.ray = ray_module()
        self.env = {k: v for k, v in os.environ.items() if k.startswith("STREAMFX_")}

    def capacity(self) -> Capacity:
        return cluster_capacity(self.config)

    def run(self, workers: list[WorkerSpec], handoff: Handoff = Handoff()) -> Iterator[Event]:
        try:
            connect(self.config)
            # a fresh process per worker: its own peak memory, its GPU memory freed at the end
            self.remote = self.ray.remote(max_calls=1)(_run_worker)
            yield from super().run(workers, handoff)
        finally:
            disconnect()

    def _start(self, spec: WorkerSpec) -> Any:
        lane = {"num_gpus": 1, "num_cpus": 0} if spec.lane == "gpu" else {"num_cpus": 1}
        return self.remote.options(
            num_returns="streaming",
            max_retries=0,  # streamfx retries, era by era; Ray would redo the whole worker
            name=f"streamfx-{spec.name}",
            runtime_env={"env_vars": self.env} if self.env else None,
            **lane,
        ).remote(self.config, self.dsn, spec, self.handoff)

    def _wait(self, running: dict[str, Tracked], timeout: float) -> list[str]:
        streams = [w.handle for w in running.values()]
        ready, _ = self.ray.wait(streams, num_returns=1, timeout=timeout)
        return [name for name, w in running.items() if any(w.handle is r for r in ready)]

    def _read(self, worker: Tracked) -> tuple[str, Any]:
        try:
            return self.ray.get(next(worker.handle))
        except StopIteration:  # ended without "done": cannot happen, but do not wait forever
            return "done", 0.0
        except self.ray.exceptions.RayTaskError as exc:  # streamfx's code raised in the worker
            raise WorkerLost(f"raised {_reason(exc)}") from None
        except self.ray.exceptions.RayError as exc:  # process killed, node lost, OOM, ...
            # a node going away before the first era may well pass: worth starting again
            raise WorkerLost(f"died ({_reason(exc)})", retryable=True) from None

    def _stop(self, worker: Tracked) -> int | None:
        if worker.left:
            with contextlib.suppress(Exception):  # already finished or gone
                self.ray.cancel(worker.handle, force=True)  # kills the process: a hang too
            return None
        return 0
