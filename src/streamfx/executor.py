"""Executors run the per-era work (read, classify, extract) and yield results as eras finish.

The pipeline depends only on ``Executor.run``; the local executor below works in-process, and
pooled or distributed executors plug in behind the same interface.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from .classify import Classifier
from .config import PipelineConfig
from .database import connect
from .model import FEATURES_SCHEMA, Era, EraResult
from .plugins import get_extractor
from .source import Source


@dataclass
class EraFailure:
    """An era whose extraction raised; the run goes on without it."""

    era: Era
    error: str
    seconds: float = 0.0


class EraWorker:
    """Everything one worker needs to turn an era into features: connection, source, extractor."""

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        self.config = config
        self.conn = connect(dsn)
        self.source = Source(config.source, self.conn)
        self.classifier = Classifier(config.stages.classify)
        self.extractor = get_extractor(config.stages.extract.extractor)
        self.n_jobs = config.stages.extract.n_jobs

    def process(self, era: Era) -> EraResult:
        started = time.perf_counter()
        readings = self.source.read_era(era)
        sensors = pl.from_arrow(readings.select(["sensor"])).unique()["sensor"].sort().to_list()
        if readings.num_rows == 0:
            features = FEATURES_SCHEMA.empty_table()
        else:
            features = self.extractor.extract(
                readings, self.classifier.fc_parameters(sensors), n_jobs=self.n_jobs
            )
        return EraResult(
            era=era,
            readings=readings.num_rows,
            features=features,
            seconds=time.perf_counter() - started,
            sensors={s: self.classifier.sensor_class(s).features for s in sensors},
        )

    def close(self) -> None:
        self.conn.close()


class Executor(Protocol):
    def run(self, eras: Iterable[Era]) -> Iterator[EraResult | EraFailure]:
        """Process eras, yielding each result (or failure) as soon as it is ready."""
        ...


class LocalExecutor:
    """Runs eras one after another in this process (the extractor parallelizes with n_jobs)."""

    def __init__(self, config: PipelineConfig, dsn: str) -> None:
        self.config = config
        self.dsn = dsn

    def run(self, eras: Iterable[Era]) -> Iterator[EraResult | EraFailure]:
        worker = EraWorker(self.config, self.dsn)
        try:
            for era in eras:
                started = time.perf_counter()
                try:
                    yield worker.process(era)
                except Exception as exc:  # one bad era must not stop the run
                    message = " ".join(f"{type(exc).__name__}: {exc}".split())
                    yield EraFailure(era, message, time.perf_counter() - started)
        finally:
            worker.close()
