"""One pipeline run: open the database, plan (analyse, route, balance), extract, stream to sinks."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .balance import imbalance, lpt
from .classify import Classifier, EraAnalysis, Route, analyze_eras, route, routing_policy
from .config import PipelineConfig
from .database import EMBEDDED, connect, expand_env, start_embedded, table_columns
from .errors import StreamfxError
from .executor import Started, WorkerSpec, make_executor
from .gpu import gpu_devices
from .model import Era, EraFailure, EraResult
from .plugins import extractors, feature_calculators, get_extractor, sink_plugins
from .sinks import EraStatus, Sink, SinkContext
from .source import Source

Notify = Callable[[str], None]
GPU_EXTRACTOR = "gpu"


def resolve_dsn(config: PipelineConfig, notify: Notify = lambda _: None) -> str:
    """The source DSN with ``${VAR}`` expanded; ``embedded`` starts the embedded server."""
    dsn = expand_env(config.source.dsn, "source.dsn")
    if dsn.strip() != EMBEDDED:
        return dsn
    data_dir = config.source.embedded.data_dir
    notify(f"starting embedded PostgreSQL in {data_dir}")
    return start_embedded(data_dir)


def seed_demo_if_missing(config: PipelineConfig, conn: Any, notify: Notify) -> bool:
    """Seed the demo dataset under the configured names when the readings table is missing."""
    from .datasets.demo import DemoTables, seed_demo

    src = config.source
    if table_columns(conn, src.schema_, src.readings.table) is not None:
        return False
    r, e = src.readings, src.eras
    tables = DemoTables(
        schema=src.schema_,
        layout=r.layout,
        readings_table=r.table,
        time_column=r.time_column,
        partition_column=r.partition_column or "compartment_id",
        sensor_column=r.sensor_column,
        value_column=r.value_column,
        eras_table=e.table,
        era_id_column=e.id_column,
        era_start_column=e.start_column,
        era_end_column=e.end_column,
        era_partition_column=e.partition_column or "compartment_id",
    )
    counts = seed_demo(conn, tables)
    eras = f", {counts['eras']} eras in {src.schema_}.{e.table}" if e.table else ""
    notify(f"seeded demo data: {counts['readings']:,} readings in {src.schema_}.{r.table}{eras}")
    return True


def open_source(config: PipelineConfig, notify: Notify) -> tuple[str, Any, Source]:
    """Connect, seed demo data where the embedded default asks for it, and check the tables."""
    dsn = resolve_dsn(config, notify)
    conn = connect(dsn)
    if config.source.dsn.strip() == EMBEDDED and config.source.embedded.seed_demo:
        seed_demo_if_missing(config, conn, notify)
    return dsn, conn, Source(config.source, conn)


def select_eras(eras: list[Era], ids: Sequence[str] | None, limit: int | None) -> list[Era]:
    """Restrict to the eras named on the command line, then to the first ``limit``."""
    if ids:
        known = {era.id for era in eras}
        missing = [i for i in ids if i not in known]
        if missing:
            raise StreamfxError(f"--eras: unknown era id(s): {', '.join(missing)}")
        wanted = set(ids)
        eras = [era for era in eras if era.id in wanted]
    return eras[:limit] if limit is not None else eras


# -- planning -----------------------------------------------------------------------------


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

    def imbalance(self, lane: str) -> float | None:
        """max / mean estimated load over the lane's workers (1.0 = perfectly even)."""
        return imbalance([load for name, load in self.loads.items() if name.startswith(f"{lane}-")])


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_stages(config: PipelineConfig) -> Classifier:
    """Fail early on a profile, extractor or calculator that no installed plugin provides.

    Calling every hook here also surfaces broken plugins before any work starts.
    """
    from .feature_sets import TSFRESH_CALCULATORS
    from .plugin_calculators import check_calculators

    get_extractor(config.stages.extract.extractor)
    if config.executor.kind == "ray":
        from .ray_executor import ray_module

        ray_module()  # the one-line error when the ray extra is missing
    for name in feature_calculators():
        if name in TSFRESH_CALCULATORS:
            raise StreamfxError(
                f"plugin feature calculator {name!r} has the name of a tsfresh calculator: "
                "rename it, so built-in feature sets keep their meaning"
            )
    for pattern, rule in config.stages.classify.sensors.items():
        check_calculators(rule.calculators, f"stages.classify.sensors.{pattern}.calculators")
    classifier = Classifier(config.stages.classify)
    for rule in classifier.rules:  # a profile's extra calculators must exist too
        check_calculators(rule.calculators, f"sensor profile rule {rule.pattern!r}")
    return classifier


def make_plan(config: PipelineConfig, source: Source, eras: list[Era]) -> Plan:
    """Analyse every era in one query, route each, and pack each lane's eras onto its workers."""
    classifier = check_stages(config)
    analyses = analyze_eras(
        eras, source.era_stats(eras), classifier, config.stages.extract.extractor
    )
    policy = routing_policy(config.stages.classify.routing)
    routes = [route(a, config.stages.classify.routing, policy) for a in analyses]
    executor = config.executor
    extract = config.stages.extract

    cores, cluster_gpus, notices = available_cores(), None, []
    if executor.kind == "ray":  # lanes sized to the cluster, not to this machine
        from .ray_executor import cluster_lanes

        cores, cluster_gpus, where = cluster_lanes(config)
        notices.append(where)
    if executor.gpu == "off":
        devices = 0
    else:
        devices = gpu_devices() if cluster_gpus is None else cluster_gpus
    if executor.gpu == "required" and devices == 0:
        raise StreamfxError(
            "executor.gpu: required, but no usable CUDA device was found (CuPy or cuDF must "
            "import and see a GPU: pip install -e '.[gpu]')"
        )
    gpu_lane = devices > 0 and GPU_EXTRACTOR in extractors()
    wanting_gpu = sum(r.lane == "gpu" for r in routes)
    if wanting_gpu and not gpu_lane:
        why = (
            "executor.gpu is off"
            if executor.gpu == "off"
            else "no CUDA device or CuPy/cuDF"
            if devices == 0
            else f"no {GPU_EXTRACTOR!r} extractor installed"
        )
        notices.append(
            f"GPU lane unavailable ({why}): {wanting_gpu} GPU-routed eras run on the CPU lane"
        )
    lanes = {
        "gpu": executor.gpu_workers or devices if gpu_lane else 0,
        "cpu": executor.cpu_workers or cores,
    }
    lane_of = [
        None if r.lane is None else (r.lane if r.lane == "cpu" or gpu_lane else "cpu")
        for r in routes
    ]
    # tsfresh's own pool only helps when a worker has spare cores to itself.
    spare = available_cores() // max(1, lanes["cpu"])
    cpu_jobs = min(extract.n_jobs, spare) if min(extract.n_jobs, spare) > 1 else 0

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
                    extractor=GPU_EXTRACTOR if lane == "gpu" else extract.extractor,
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


def plan_pipeline(
    config: PipelineConfig,
    *,
    era_ids: Sequence[str] | None = None,
    limit: int | None = None,
    notify: Notify = lambda _: None,
) -> tuple[str, Plan]:
    """Open the source and plan the run (no extraction). Returns the DSN and the plan."""
    dsn, conn, source = open_source(config, notify)
    try:
        eras = select_eras(source.list_eras(), era_ids, limit)
        return dsn, make_plan(config, source, eras)
    finally:
        conn.close()


# -- running ------------------------------------------------------------------------------


def feature_fingerprint(config: PipelineConfig, classifier: Classifier) -> str:
    """A hash of everything that decides an era's features: readings, sensor classes (YAML and
    profile rules), extractor settings and the streamfx version. Executor and sink settings are
    left out: changing worker counts must not recompute anything."""
    extract = config.stages.extract.model_dump(mode="json", exclude={"n_jobs", "selection"})
    blob = json.dumps(
        {
            "version": __version__,
            "readings": config.source.readings.model_dump(mode="json"),
            "schema": config.source.schema_,
            "classify": config.stages.classify.model_dump(mode="json"),
            "rules": [repr(rule) for rule in classifier.rules],
            "extract": extract,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def already_done(sinks: Sequence[Sink]) -> set[str]:
    """Eras every sink already holds with the current fingerprint (resume skips them)."""
    done: set[str] | None = None
    for sink in sinks:
        reader = getattr(sink, "done_eras", None)
        if reader is None:  # a sink that cannot tell: recompute everything
            return set()
        done = reader() if done is None else done & reader()
    return done or set()


def build_sinks(config: PipelineConfig, dsn: str, run_id: str, fingerprint: str = "") -> list[Sink]:
    from .sinks.parquet import ParquetSink
    from .sinks.postgres import PostgresSink

    sinks: list[Sink] = []
    if config.sinks.parquet:
        selection = config.stages.extract.selection
        sinks.append(
            ParquetSink(
                config.sinks.parquet.path,
                pipeline=config.name,
                run_id=run_id,
                variance_threshold=selection.variance_threshold if selection else None,
                fingerprint=fingerprint,
            )
        )
    if config.sinks.postgres:
        pg = config.sinks.postgres
        sinks.append(
            PostgresSink(
                sink_dsn(config, dsn),
                schema=pg.schema_,
                table=pg.table,
                run_id=run_id,
                pipeline=config.name,
                fingerprint=fingerprint,
                reconnect=config.executor.reconnect,
            )
        )
    plugins = sink_plugins()
    context = SinkContext(pipeline=config.name, run_id=run_id, dsn=dsn)
    for name, options in config.sinks.plugin_sinks().items():
        try:
            sink = plugins[name].create(dict(options), context)
        except StreamfxError as exc:
            raise StreamfxError(f"sinks.{name}: {exc}") from exc
        except Exception as exc:
            raise StreamfxError(
                f"plugin sink {name!r} failed to start: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(sink, Sink):
            raise StreamfxError(
                f"plugin sink {name!r} returned {type(sink).__name__}: expected a Sink "
                "(name, write, close)"
            )
        sinks.append(sink)
    return sinks


def sink_dsn(config: PipelineConfig, source_dsn: str) -> str:
    """The database the postgres sink (and the run tables) write to: its own DSN or the source's."""
    pg = config.sinks.postgres
    return expand_env(pg.dsn, "sinks.postgres.dsn") if pg and pg.dsn else source_dsn


@dataclass
class EraRecord:
    """One era's fate in a run, for the summary and the run report."""

    era: Era
    status: str  # done | skipped | failed | resumed (done by an earlier run)
    lane: str | None
    rule: str
    worker: str | None
    estimated_cost: float
    readings: int = 0
    features: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    attempts: int = 0


@dataclass
class RunSummary:
    """What a run did, for the closing summary, the run report and the exit status."""

    run_id: str
    pipeline: str
    fingerprint: str
    started_at: dt.datetime
    plan: Plan
    records: dict[str, EraRecord] = field(default_factory=dict)
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    worker_restarts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # where the run's time went, s
    worker_nodes: dict[str, str | None] = field(default_factory=dict)
    ended: str = "completed"  # completed | interrupted | aborted: <why>

    @contextlib.contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Add the time the block takes to ``timings[key]``."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - begin

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records.values())

    @property
    def eras_total(self) -> int:
        return len(self.records)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> list[str]:
        return [r.era.id for r in self.records.values() if r.status == "skipped"]

    @property
    def resumed(self) -> int:
        return self.count("resumed")

    @property
    def failed(self) -> list[EraRecord]:
        return [r for r in self.records.values() if r.status == "failed"]

    @property
    def features(self) -> int:
        return sum(r.features for r in self.records.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.ended != "completed" else 0


def run_pipeline(
    config: PipelineConfig,
    *,
    era_ids: Sequence[str] | None = None,
    limit: int | None = None,
    force: bool = False,
    notify: Notify = lambda _: None,
    on_era: Callable[[Era, str], None] = lambda era, status: None,
    on_eras: Callable[[int], None] = lambda total: None,
) -> RunSummary:
    """Run the whole pipeline; per-era problems are collected, input problems raise.

    Eras that every sink already holds with the same feature fingerprint are skipped
    (resume); ``force`` recomputes them.
    """
    from .report import write_report

    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    dsn, conn, source = open_source(config, notify)
    sinks: list[Sink] = []
    try:
        eras = select_eras(source.list_eras(), era_ids, limit)
        fingerprint = feature_fingerprint(config, check_stages(config))
        sinks = build_sinks(config, dsn, run_id, fingerprint)
        done = set() if force else already_done(sinks)
        plan = make_plan(config, source, [era for era in eras if era.id not in done])
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    finally:
        conn.close()
    for notice in plan.notices:
        notify(notice)
    resumed = sum(era.id in done for era in eras)
    if resumed:
        notify(
            f"{resumed} eras already done with this configuration: not recomputed (--force does)"
        )
    summary = RunSummary(run_id, config.name, fingerprint, now, plan)
    summary.timings["plan"] = time.perf_counter() - started
    planned = {p.analysis.era.id: p for p in plan.eras}
    for era in eras:  # in time order
        p = planned.get(era.id)
        summary.records[era.id] = (
            EraRecord(era, "resumed", None, "already done", None, 0.0)
            if p is None
            else EraRecord(
                era=era,
                status="skipped" if p.lane is None else "pending",
                lane=p.lane,
                rule=p.route.rule,
                worker=p.worker,
                estimated_cost=p.analysis.estimated_cost,
            )
        )
    on_eras(len(summary.records))
    for record in summary.records.values():
        if record.status in ("skipped", "resumed"):
            on_era(record.era, record.status)
    batch: list[EraResult] = []

    def flush() -> None:
        for sink in sinks:
            with summary.timed(f"write {sink.name}"):
                written = sink.write(batch)
            summary.rows_written[sink.name] = summary.rows_written.get(sink.name, 0) + written
        batch.clear()

    pending = [EraStatus(r.era.id, "pending") for r in summary.records.values() if r.lane]
    with summary.timed("era status"):
        record_status(sinks, pending)
    executor = make_executor(config, dsn)

    def own_time() -> float:  # what the runner itself spends writing, apart from the workers
        return sum(v for k, v in summary.timings.items() if k.startswith(("write ", "era status")))

    extracting, own_before = time.perf_counter(), own_time()
    try:
        for event in executor.run(plan.workers):
            if isinstance(event, Started):
                with summary.timed("era status"):
                    mark_started(summary, event, sinks, notify)
                continue
            record = summary.records[event.era.id]
            record.seconds, record.attempts = event.seconds, event.attempts
            if isinstance(event, EraFailure):
                record.status, record.error = "failed", event.error
                notify(f"era {event.era.id} failed after {event.attempts} tries: {event.error}")
                failed = EraStatus(
                    event.era.id, "failed", event.attempts, event.worker, event.error
                )
                with summary.timed("era status"):
                    record_status(sinks, [failed])
            elif event.empty:
                record.status = "skipped"
            else:
                record.status = "done"
                record.readings = event.readings
                record.features = event.features.num_rows
                record.peak_rss_mb = event.peak_rss_mb
                record.warnings = event.warnings
                for warning in event.warnings:
                    notify(f"warning: {warning}")
                batch.append(event)
                if len(batch) >= config.executor.batch_eras:
                    flush()
            on_era(event.era, record.status)
        if batch:
            flush()
        # waiting on the workers: the loop, less what the runner wrote meanwhile
        summary.timings["extract"] = time.perf_counter() - extracting - (own_time() - own_before)
    except Exception as exc:
        summary.ended = f"aborted: {exc}"
        raise
    except BaseException:  # Ctrl-C, SIGTERM: keep what is finished, the rest reruns
        summary.ended = "interrupted"
        if batch:
            notify(f"writing {len(batch)} finished eras before stopping")
            flush()
        raise
    finally:
        summary.outputs = []
        for sink in sinks:
            with summary.timed(f"close {sink.name}"):
                summary.outputs.append(sink.close())
        summary.worker_peak_rss_mb = {n: r.peak_rss_mb for n, r in executor.reports.items()}
        summary.worker_restarts = {n: r.restarts for n, r in executor.reports.items()}
        summary.worker_nodes = {n: r.node for n, r in executor.reports.items()}
        summary.seconds = time.perf_counter() - started
        summary.outputs.append(write_report(config, dsn, summary, notify))
    return summary


def mark_started(
    summary: RunSummary, event: Started, sinks: Sequence[Sink], notify: Notify
) -> None:
    """A worker began a pass: mark its eras running (and say so when it is a retry)."""
    for era, attempt in zip(event.eras, event.attempts, strict=True):
        record = summary.records[era.id]
        record.attempts, record.worker = attempt, event.worker
        if event.retrying:
            notify(f"era {era.id}: try {attempt} on worker {event.worker} ({event.retrying})")
    running = [
        EraStatus(era.id, "running", attempt, event.worker)
        for era, attempt in zip(event.eras, event.attempts, strict=True)
    ]
    record_status(sinks, running)


def record_status(sinks: Sequence[Sink], entries: Sequence[EraStatus]) -> None:
    """Tell the sinks that keep a status table; the features, not the status, are what count."""
    for sink in sinks:
        recorder = getattr(sink, "record_status", None)
        if recorder is not None and entries:
            recorder(entries)
