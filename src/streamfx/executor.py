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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from array_api_compat import numpy as array_numpy

from .classify import Classifier
from .config import PipelineConfig
from .database import connect
from .model import FEATURES_SCHEMA, Era, EraFailure, EraResult
from .plugin_calculators import extract_all
from .plugins import get_extractor, load_local_plugins
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
    eras_per_pass: int = 1


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


class EraWorker:
    """Everything one worker needs to turn an era into features: connection, source, extractor."""

    def __init__(self, config: PipelineConfig, dsn: str, spec: WorkerSpec) -> None:
        load_local_plugins(config.plugins)  # a spawned worker starts with built-ins only
        self.spec = spec
        self.conn = connect(dsn)
        self.source = Source(config.source, self.conn)
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

    def process(self, eras: Sequence[Era]) -> list[Outcome]:
        """Extract several eras in one pass (one extractor call, one device transfer).

        If the pass fails, each era is retried alone, so one bad era fails by itself.
        """
        started = time.perf_counter()
        self.warnings.clear()
        try:
            parts = [self.source.read_era(era) for era in eras]
            features = self.features(pa.concat_tables(parts))
        except Exception as exc:
            if len(eras) > 1:
                return [outcome for era in eras for outcome in self.process([era])]
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            return [EraFailure(eras[0], message, time.perf_counter() - started, self.spec.name)]
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
                )
            )
        return outcomes

    def run(self) -> Iterator[Outcome]:
        step = self.spec.eras_per_pass
        try:
            for i in range(0, len(self.spec.eras), step):
                yield from self.process(self.spec.eras[i : i + step])
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
