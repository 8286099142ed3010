"""The plan: every era's analysis and route, and each lane's eras packed onto its workers.

``streamfx plan`` shows it; ``streamfx run`` runs it. Planning extracts nothing: it needs the
eras' analyses (one query), the routing options, and what the executor can run on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import StreamfxError
from ..model import Capacity, WorkerSpec
from .analysis import EraAnalysis
from .balance import imbalance, lpt
from .routing import Route, route, routing_policy

if TYPE_CHECKING:
    from ..config import PipelineConfig


@dataclass(frozen=True)
class PlannedEra:
    """An era's analysis, the routing decision, and where it will actually run."""

    analysis: EraAnalysis
    route: Route
    lane: str | None  # after GPU availability; None = skipped (no readings)
    worker: str | None


@dataclass
class Plan:
    """Everything decided before extraction starts: shown by `streamfx plan`, run by `run`."""

    policy: str
    gpu_devices: int
    eras: list[PlannedEra]
    workers: list[WorkerSpec]
    loads: dict[str, float]
    notices: list[str] = field(default_factory=list)

    def processes(self) -> list[str]:
        """What runs at once, lane by lane: worker processes, tsfresh's, and their threads."""
        lines = []
        gpu = [w for w in self.workers if w.lane == "gpu"]
        if gpu:
            lines.append(f"gpu lane: {len(gpu)} worker processes, each driving a GPU")
        cpu = [w for w in self.workers if w.lane == "cpu"]
        if cpu:
            jobs = cpu[0].n_jobs
            tsfresh = (
                f"each starting n_jobs {jobs} tsfresh processes while tsfresh computes "
                f"(up to {len(cpu) * jobs} in all)"
                if jobs
                else "tsfresh (where it computes) inside each (n_jobs 0)"
            )
            threads = f"{jobs} threads" if jobs else "one thread"
            lines.append(
                f"cpu lane: {len(cpu)} worker processes, {tsfresh}; the native kernels "
                f"compute on {threads} per worker"
            )
        return lines

    def imbalance(self, lane: str) -> float | None:
        """max / mean estimated load over the lane's workers (1.0 = perfectly even)."""
        return imbalance([load for name, load in self.loads.items() if name.startswith(f"{lane}-")])


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_plan(
    config: PipelineConfig,
    analyses: list[EraAnalysis],
    capacity: Capacity,
    gpu_extractor: str | None,
) -> Plan:
    """Route each analysed era and pack each lane's eras onto its workers.

    ``capacity`` is what the executor runs on; ``gpu_extractor`` the registered extractor that
    serves the GPU lane (None: none is installed, GPU-routed eras run on the CPU lane).
    """
    routing, executor, extract = (
        config.stages.classify.routing,
        config.executor,
        config.stages.extract,
    )
    policy = routing_policy(routing)
    routes = [route(a, routing, policy) for a in analyses]
    notices = [capacity.notice] if capacity.notice else []
    devices = 0 if executor.gpu == "off" else capacity.gpus
    if executor.gpu == "required" and devices == 0:
        raise StreamfxError(
            "executor.gpu: required, but no usable CUDA device was found (CuPy or cuDF must "
            "import and see a GPU: pip install -e '.[gpu]')"
        )
    gpu_lane = devices > 0 and gpu_extractor is not None
    wanting_gpu = sum(r.lane == "gpu" for r in routes)
    if wanting_gpu and not gpu_lane:
        why = (
            "executor.gpu is off"
            if executor.gpu == "off"
            else "no CUDA device or CuPy/cuDF"
            if devices == 0
            else "no GPU extractor installed"
        )
        notices.append(
            f"GPU lane unavailable ({why}): {wanting_gpu} GPU-routed eras run on the CPU lane"
        )
    lanes = {
        "gpu": executor.gpu_workers or devices if gpu_lane else 0,
        "cpu": executor.cpu_workers or capacity.cpus,
    }
    lane_of = [
        None if r.lane is None else (r.lane if r.lane == "cpu" or gpu_lane else "cpu")
        for r in routes
    ]
    # n_jobs as written: each CPU worker's tsfresh runs that many processes (0, 1: in itself)
    cpu_jobs = extract.n_jobs if extract.n_jobs > 1 else 0
    if cpu_jobs and lanes["cpu"] * cpu_jobs > capacity.cpus:
        notices.append(
            f"stages.extract.n_jobs {cpu_jobs} x {lanes['cpu']} CPU workers: up to "
            f"{lanes['cpu'] * cpu_jobs} tsfresh processes on {capacity.cpus} cores (set "
            f"executor.cpu_workers: {max(1, capacity.cpus // cpu_jobs)} to fit them)"
        )

    workers: list[WorkerSpec] = []
    loads: dict[str, float] = {}
    worker_of: dict[int, str] = {}
    for lane, count in lanes.items():
        members = [i for i, lane_i in enumerate(lane_of) if lane_i == lane]
        if not members or count == 0:
            continue
        packing = lpt([analyses[i].estimated_cost for i in members], count)
        for w, bin_ in enumerate(packing.bins):
            name = f"{lane}-{w}"
            indexes = sorted(members[k] for k in bin_)
            worker_of.update({i: name for i in indexes})
            loads[name] = packing.loads[w]
            workers.append(
                WorkerSpec(
                    name=name,
                    lane=lane,
                    extractor=gpu_extractor if lane == "gpu" else extract.extractor,
                    eras=tuple(analyses[i].era for i in indexes),
                    n_jobs=0 if lane == "gpu" else cpu_jobs,
                    eras_per_pass=executor.eras_per_pass,
                )
            )
    planned = [
        PlannedEra(a, r, lane_of[i], worker_of.get(i))
        for i, (a, r) in enumerate(zip(analyses, routes, strict=True))
    ]
    return Plan(policy, devices, planned, workers, loads, notices)
