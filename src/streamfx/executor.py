"""Executors run the per-era work (read, extract) and yield outcomes as eras finish.

The local executor runs one process per worker of each lane (GPU lane, CPU lane). Each worker
keeps its own ADBC connection and processes the eras the plan packed onto it; outcomes stream
back through a bounded queue, so the sinks write eras as they finish and memory does not grow
with the number of eras. With a single worker it runs in-process. The pipeline depends only on
``Executor.run``, so a distributed executor can stand in.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
from array_api_compat import numpy as array_numpy

from .classify import Classifier
from .config import PipelineConfig
from .database import connect
from .model import FEATURES_SCHEMA, Era, EraFailure, EraResult
from .plugins import get_extractor
from .rolling import rolling_features
from .source import Source

Outcome = EraResult | EraFailure


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a lane: its name, its extractor, its eras (in order) and tsfresh n_jobs."""

    name: str
    lane: str
    extractor: str
    eras: tuple[Era, ...]
    n_jobs: int = 0


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


class EraWorker:
    """Everything one worker needs to turn an era into features: connection, source, extractor."""

    def __init__(self, config: PipelineConfig, dsn: str, spec: WorkerSpec) -> None:
        self.spec = spec
        self.conn = connect(dsn)
        self.source = Source(config.source, self.conn)
        self.classifier = Classifier(config.stages.classify)
        self.extractor = get_extractor(spec.extractor)
        if hasattr(self.extractor, "memory_limit_gb"):  # the GPU extractor's pool cap
            self.extractor.memory_limit_gb = config.executor.gpu_memory_limit_gb
        self.rolling_windows = config.stages.extract.rolling_windows

    def process(self, era: Era) -> Outcome:
        started = time.perf_counter()
        try:
            readings = self.source.read_era(era)
            sensors = pl.from_arrow(readings.select(["sensor"]))["sensor"].unique().sort()
            features = FEATURES_SCHEMA.empty_table()
            if readings.num_rows:
                features = self.extractor.extract(
                    readings,
                    self.classifier.fc_parameters(sensors.to_list()),
                    n_jobs=self.spec.n_jobs,
                )
                gpu_suitable = [s for s in sensors if self.classifier.sensor_class(s).lane == "gpu"]
                if self.rolling_windows and gpu_suitable:
                    rolled = rolling_features(
                        readings,
                        gpu_suitable,
                        self.rolling_windows,
                        getattr(self.extractor, "xp", array_numpy),
                    )
                    features = pa.concat_tables([features, rolled])
        except Exception as exc:  # one bad era must not stop the run
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            return EraFailure(era, message, time.perf_counter() - started, self.spec.name)
        return EraResult(
            era=era,
            readings=readings.num_rows,
            features=features,
            seconds=time.perf_counter() - started,
            sensors={s: self.classifier.sensor_class(s).features for s in sensors},
            worker=self.spec.name,
            peak_rss_mb=peak_rss_mb(),
        )

    def run(self) -> Iterator[Outcome]:
        try:
            for era in self.spec.eras:
                yield self.process(era)
        finally:
            self.conn.close()


class Executor(Protocol):
    def run(self, workers: list[WorkerSpec]) -> Iterator[Outcome]:
        """Process every worker's eras, yielding each outcome as soon as it is ready."""
        ...


@dataclass
class WorkerReport:
    """What a worker reported when it finished (for the run report)."""

    name: str
    peak_rss_mb: float = 0.0
    exit_code: int | None = None


def _worker_main(config: PipelineConfig, dsn: str, spec: WorkerSpec, results: Any) -> None:
    """Entry point of a worker process: stream outcomes, then a final ``done`` message."""
    for outcome in EraWorker(config, dsn, spec).run():
        results.put(("outcome", spec.name, outcome))
    results.put(("done", spec.name, peak_rss_mb()))


class LocalExecutor:
    """GPU and CPU lanes as worker processes on this machine."""

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        self.config = config
        self.dsn = dsn
        self.reports: dict[str, WorkerReport] = {}
        self._seen_dead: set[str] = set()

    def run(self, workers: list[WorkerSpec]) -> Iterator[Outcome]:
        workers = [w for w in workers if w.eras]
        self.reports = {w.name: WorkerReport(w.name) for w in workers}
        if len(workers) == 1:  # no process to spawn for a single worker
            yield from EraWorker(self.config, self.dsn, workers[0]).run()
            self.reports[workers[0].name].peak_rss_mb = peak_rss_mb()
            return
        yield from self._run_processes(workers)

    def _run_processes(self, workers: list[WorkerSpec]) -> Iterator[Outcome]:
        # spawn, not fork: polars and the ADBC driver hold threads that fork would copy broken
        context = mp.get_context("spawn")
        results = context.Queue(maxsize=2 * len(workers))
        processes = {
            w.name: context.Process(
                target=_worker_main,
                args=(self.config, self.dsn, w, results),
                name=f"streamfx-{w.name}",
            )
            for w in workers
        }
        pending = {w.name: list(w.eras) for w in workers}
        for process in processes.values():
            process.start()
        try:
            while pending:
                try:
                    kind, name, payload = results.get(timeout=1.0)
                except queue.Empty:
                    yield from self._reap_dead(processes, pending)
                    continue
                if kind == "done":
                    self.reports[name].peak_rss_mb = payload
                    processes[name].join()
                    self.reports[name].exit_code = processes[name].exitcode
                    pending.pop(name, None)
                else:
                    pending[name].remove(payload.era)
                    yield payload
        finally:
            for process in processes.values():
                if process.is_alive():
                    process.terminate()
                process.join()

    def _reap_dead(
        self, processes: dict[str, Any], pending: dict[str, list[Era]]
    ) -> Iterator[Outcome]:
        """A worker that died without saying ``done``: its remaining eras fail.

        A worker is reaped only when seen dead on two consecutive empty polls, so messages it
        sent just before exiting are read first.
        """
        for name in list(pending):
            process = processes[name]
            if process.exitcode is None:
                continue
            if name not in self._seen_dead:
                self._seen_dead.add(name)
                continue
            self.reports[name].exit_code = process.exitcode
            for era in pending.pop(name):
                yield EraFailure(
                    era, f"worker {name} died (exit code {process.exitcode})", 0.0, name
                )
