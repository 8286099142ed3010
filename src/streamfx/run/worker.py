"""A worker: reads its eras pass by pass, extracts their features, and says what happened.

The same :class:`EraWorker` runs in a local worker process and in a Ray task; what it tells
its executor is :func:`worker_messages`. Inside a worker, an era that raises is tried again
after a pause that doubles each time (``executor.retry``); a pass of several eras that fails is
redone one era at a time, so one bad era fails alone; a lost database connection is reopened
with backoff (``executor.reconnect``) and only the read in flight is redone, and past that
budget the worker reports the database lost for good.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from ..classify.classifier import Classifier
from ..config import PipelineConfig
from ..database import Connection, reconnect
from ..errors import DatabaseLost, SinkFailed
from ..extract.era_features import EraFeatures
from ..extract.extractor import MemoryBounded
from ..model import FEATURES_SCHEMA, Era, EraFailure, EraResult, WorkerSpec
from ..plugins.manager import get_extractor, load_local_plugins
from ..sinks import BatchWriter
from ..source.postgres import Source

Outcome = EraResult | EraFailure


@dataclass(frozen=True)
class Started:
    """A worker began a pass over ``eras`` (``attempts[i]`` is the try number of ``eras[i]``)."""

    eras: tuple[Era, ...]
    worker: str
    attempts: tuple[int, ...]
    retrying: str | None = None  # why this is a retry (the previous try's error), if it is


@dataclass(frozen=True)
class Retrying:
    """A try of ``era`` on ``worker`` ended in ``error``, and the era will be tried again (the
    report's timeline ends that try here, not when the next one starts)."""

    era: Era
    worker: str
    error: str


Event = Started | Retrying | EraResult | EraFailure


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class EraWorker:
    """Everything one worker needs to turn an era into features: connection, source, extractor."""

    def __init__(
        self,
        config: PipelineConfig,
        dsn: str,
        spec: WorkerSpec,
        writers: Sequence[BatchWriter] = (),
        *,
        keep_features: bool = True,
    ) -> None:
        load_local_plugins(config.plugins)  # a spawned worker starts with built-ins only
        self.config = config
        self.spec = spec
        self.writers = tuple(writers)  # sinks this worker writes its eras to itself
        self.keep_features = keep_features  # False: every sink is written here; send counts
        self.retry = config.executor.retry
        self.attempts = dict(spec.attempts)
        policy = config.executor.reconnect  # a database blip while workers start is waited out
        self.db = Connection(dsn, policy, reconnect(dsn, policy, first_wait=False))
        self.source = Source(config.source, self.db.conn)
        self.classifier = Classifier(config.stages.classify)
        extractor = get_extractor(spec.extractor)
        if isinstance(extractor, MemoryBounded):  # the GPU extractor's pool cap
            extractor = extractor.with_memory_limit(config.executor.gpu_memory_limit_gb)
        extract = config.stages.extract
        self.features = EraFeatures(
            extractor,
            self.classifier,
            rolling_windows=extract.rolling_windows,
            on_calculator_error=extract.on_calculator_error,
            n_jobs=spec.n_jobs,
            fill=extract.fill,
        )

    def read(self, eras: Sequence[Era]) -> pa.Table:
        """The eras' readings; a dead connection is reopened (with backoff) and the read redone."""

        def read(conn: Any) -> pa.Table:
            if conn is not self.source.conn:  # reopened after the connection was lost
                self.source = Source(self.config.source, conn)
            return self.source.read_eras(eras)

        return self.db.run(read)  # DatabaseLost past the reconnect budget

    def process(self, eras: Sequence[Era], retrying: str | None = None) -> Iterator[Event]:
        """Extract several eras in one pass (one extractor call, one device transfer).

        If the pass fails, each era is redone alone, so one bad era fails by itself; a single
        era is tried again after a pause until ``retry.attempts`` tries are used.
        """
        eras = tuple(eras)
        for era in eras:
            self.attempts[era.key] = self.attempts.get(era.key, 0) + 1
        yield Started(eras, self.spec.name, tuple(self.attempts[e.key] for e in eras), retrying)
        started = time.perf_counter()
        try:
            outcomes = self._extract(eras, started)
            self._store(outcomes)
        except DatabaseLost:
            raise
        except SinkFailed:
            raise
        except Exception as exc:
            if len(eras) > 1:
                for era in eras:  # a shared pass failing is no single era's try
                    self.attempts[era.key] -= 1
                    why = f"its pass of {len(eras)} eras failed, redone alone: {_one_line(exc)}"
                    yield Retrying(era, self.spec.name, why)
                for era in eras:
                    yield from self.process((era,))
                return
            tries = self.attempts[eras[0].key]
            if tries < self.retry.attempts:
                yield Retrying(eras[0], self.spec.name, _one_line(exc))
                time.sleep(self.retry.delay(tries))
                yield from self.process(eras, retrying=_one_line(exc))
                return
            elapsed = time.perf_counter() - started
            yield EraFailure(eras[0], _one_line(exc), elapsed, self.spec.name, tries)
            return
        yield from outcomes

    def _store(self, outcomes: list[Outcome]) -> None:
        """Write the pass's finished eras to the sinks this worker writes itself (one part
        each); what the run's process then gets is marked written (and, when every sink is,
        stripped of its features)."""
        done = [o for o in outcomes if isinstance(o, EraResult) and not o.empty]
        if not done or not self.writers:
            return
        for writer in self.writers:
            try:
                writer.write(done)
            except Exception as exc:
                raise SinkFailed(f"sinks.{writer.name}: {_one_line(exc)}") from exc
        names = tuple(writer.name for writer in self.writers)
        for result in done:
            result.written = names
            if not self.keep_features:
                result.left_behind = result.features.num_rows
                result.features = FEATURES_SCHEMA.empty_table()

    def _extract(self, eras: tuple[Era, ...], started: float) -> list[Outcome]:
        readings = self.read(eras)
        features = self.features(readings)
        elapsed = time.perf_counter() - started
        total = readings.num_rows or 1
        by_era = pl.from_arrow(features).partition_by("era_id", as_dict=True)
        counts = {
            era_id: (n, sensors)
            for era_id, n, sensors in pl.from_arrow(readings.select(["era_id", "sensor"]))
            .group_by("era_id")
            .agg(pl.len(), pl.col("sensor").unique().sort())
            .iter_rows()
        }
        peak = peak_rss_mb()
        outcomes: list[Outcome] = []
        for era in eras:
            era_features = by_era.get((era.key,))
            n, sensors = counts.get(era.key, (0, []))
            outcomes.append(
                EraResult(
                    era=era,
                    readings=n,
                    features=(
                        era_features.to_arrow().cast(FEATURES_SCHEMA)
                        if era_features is not None
                        else FEATURES_SCHEMA.empty_table()
                    ),
                    seconds=elapsed * n / total,  # the pass, shared by size
                    sensors={s: self.classifier.sensor_class(s).features for s in sensors},
                    worker=self.spec.name,
                    peak_rss_mb=peak,
                    warnings=[w for w in self.features.warnings if f" on era {era.key}, " in w],
                    attempts=self.attempts[era.key],
                )
            )
        return outcomes

    def run(self) -> Iterator[Event]:
        try:
            for i, eras in enumerate(self.spec.passes()):
                retrying = self.spec.retrying if i < self.spec.solo else None
                tries = self.spec.attempts.get(eras[0].key, 0)
                if retrying and tries:  # the dead worker's try counts: pause as after a raise
                    time.sleep(self.retry.delay(tries))
                yield from self.process(eras, retrying)
        finally:
            self.db.close()


@dataclass(frozen=True)
class Handoff:
    """What workers do with their finished eras besides sending them: the sinks they write
    themselves, and whether the features still go to the run's process (for its other sinks)."""

    writers: tuple[BatchWriter, ...] = ()
    keep_features: bool = True


def worker_messages(
    config: PipelineConfig, dsn: str, spec: WorkerSpec, node: str, handoff: Handoff = Handoff()
) -> Iterator[tuple[str, Any]]:
    """What a worker tells its executor: ``node``, its events, then ``done`` (or ``fatal``)."""
    yield ("node", node)
    try:
        worker = EraWorker(config, dsn, spec, handoff.writers, keep_features=handoff.keep_features)
        for event in worker.run():
            yield ("event", event)
    except DatabaseLost as exc:
        yield ("fatal", str(exc))
        return
    except SinkFailed as exc:
        yield ("sink failed", str(exc))
        return
    yield ("done", peak_rss_mb())
