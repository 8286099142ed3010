"""One pipeline run, as named steps: prepare -> plan -> execute -> finish.

- **prepare**: open the source (the embedded server and demo data where asked), list and select
  the eras, check the stages, fingerprint the feature settings, start the sinks and ask them
  which eras they already hold (resume);
- **plan**: analyse every era in one query, route each, pack each lane's eras onto its workers
  (``classify.plan``);
- **execute**: the executor runs the workers; every finished era goes to the sinks in batches,
  every change of an era's state to the sinks that keep a status, both through the sinks'
  writer (``run.writer``: a thread per sink), so writing overlaps with extraction; on Ray the
  workers write the sinks that let them themselves (``handoff``);
- **finish**: close the sinks, then write the run report (``run.report``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..classify.analysis import analyze_eras, extractor_costs
from ..classify.classifier import Classifier
from ..classify.plan import Plan, make_plan
from ..config import PipelineConfig, sink_options
from ..errors import SinkFailed, StreamfxError
from ..extract.extractor import Warmable
from ..extract.feature_sets import TSFRESH_CALCULATORS
from ..extract.plugin_calculators import check_calculators
from ..extract.warmup import KernelWarmup
from ..model import Era, EraFailure, EraRecord, EraResult, RunSummary, Span, Try
from ..plugins.manager import extractors, feature_calculators, get_extractor, sink_plugins
from ..sinks import (
    CloseProgress,
    EraStatus,
    ProgressiveClose,
    ResumableSink,
    Sink,
    SinkContext,
    WorkerWritable,
)
from ..source.open import open_source
from ..source.postgres import Source
from ..version import __version__
from .lock import RunLock
from .progress import NoProgress, RunProgress
from .report import write_report
from .supervisor import Executor
from .worker import Handoff, Retrying, Started
from .writer import SinkWriter

Notify = Callable[[str], None]


def select_eras(eras: list[Era], ids: Sequence[str] | None, limit: int | None) -> list[Era]:
    """Restrict to the eras named on the command line, then to the first ``limit``.

    An era is named by its key (``partition/era_id``) or, where no other partition has an era
    of that id, by its id alone."""
    if ids:
        by_key = {era.key: era for era in eras}
        by_id: dict[str, list[Era]] = {}
        for era in eras:
            by_id.setdefault(era.id, []).append(era)
        wanted: set[str] = set()
        missing, ambiguous = [], []
        for name in ids:
            if name in by_key:
                wanted.add(name)
            elif len(by_id.get(name, ())) == 1:
                wanted.add(by_id[name][0].key)
            elif name in by_id:
                keys = [e.key for e in by_id[name]]
                ambiguous.append(
                    f"{name} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                )
            else:
                missing.append(name)
        if missing:
            raise StreamfxError(f"--eras: unknown era id(s): {', '.join(missing)}")
        if ambiguous:
            raise StreamfxError(
                "--eras: era id(s) in more than one partition, name them as partition/era_id: "
                + ", ".join(ambiguous)
            )
        eras = [era for era in eras if era.key in wanted]
    return eras[:limit] if limit is not None else eras


def check_stages(config: PipelineConfig) -> Classifier:
    """Fail early on a profile, extractor or calculator that no installed plugin provides.

    Calling every hook here also surfaces broken plugins before any work starts.
    """
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


def make_executor(config: PipelineConfig, dsn: str) -> Executor:
    """The executor ``executor.kind`` names (ray is imported only when chosen)."""
    if config.executor.kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(config, dsn)
    from .local import LocalExecutor

    return LocalExecutor(config, dsn)


def gpu_extractor() -> str | None:
    """The extractor that serves the GPU lane: the first registered one whose device is gpu."""
    return next((name for name, e in extractors().items() if e.device == "gpu"), None)


def plan_eras(
    config: PipelineConfig,
    source: Source,
    eras: list[Era],
    classifier: Classifier,
    executor: Executor,
) -> Plan:
    """Analyse every era in one query, route each, and pack each lane's eras onto its workers."""
    costs = extractor_costs(get_extractor(config.stages.extract.extractor))
    analyses = analyze_eras(eras, source.era_stats(eras), classifier, costs)
    sensors = {s for a in analyses for s in a.readings_per_sensor}
    refuse_colliding_sensors(sensors, classifier, config.stages.extract.rolling_windows)
    plan = make_plan(config, analyses, executor.capacity(), gpu_extractor())
    unmatched = classifier.profile_notice(s for a in analyses for s in a.readings_per_sensor)
    plan.notices += [unmatched] if unmatched else []
    return plan


def refuse_colliding_sensors(
    sensors: set[str], classifier: Classifier, rolling_windows: Sequence[str]
) -> None:
    """Stop before any work when a sensor's feature columns could take another's names.

    A feature column is ``sensor__feature``, and a feature's name starts with its calculator
    (``median``, ``quantile__q_0.1``, ``rolling_mean_1h__median``). Sensor ``a__x`` then
    collides with sensor ``a`` when ``a`` gets a calculator ``x``: ``a__x__median`` would be
    both ``a__x``'s median and ``a``'s ``x__median``. Found mid-run, it would fail every
    batch holding both sensors."""
    for sensor in sorted(sensors):
        head, sep, rest = sensor.rpartition("__")
        while sep:
            if head in sensors:
                calculators = set(classifier.fc_parameters([head])[head])
                if classifier.rolling_sensors([head]):
                    calculators |= {
                        f"rolling_{stat}_{w}" for stat in ("mean", "std") for w in rolling_windows
                    }
                calculator = rest.split("__")[0]
                if calculator in calculators:
                    raise StreamfxError(
                        f"sensor {sensor!r}: its feature columns ({sensor}__<feature>) would"
                        f" take the names of sensor {head!r}'s {calculator} features"
                        f" ({head}__{calculator}__...): rename the sensor"
                    )
            head, sep, tail = head.rpartition("__")
            rest = f"{tail}__{rest}"


def plan_pipeline(
    config: PipelineConfig,
    *,
    era_ids: Sequence[str] | None = None,
    limit: int | None = None,
    notify: Notify = lambda _: None,
) -> tuple[str, Plan]:
    """Open the source and plan the run (no extraction). Returns the DSN and the plan."""
    dsn, conn, source = open_source(config.source, notify)
    try:
        eras = select_eras(source.list_eras(), era_ids, limit)
        classifier = check_stages(config)
        return dsn, plan_eras(config, source, eras, classifier, make_executor(config, dsn))
    finally:
        conn.close()


def feature_settings(config: PipelineConfig, classifier: Classifier) -> dict[str, Any]:
    """Everything that decides an era's features: readings, sensor classes (YAML and profile
    rules), extractor settings and the streamfx version. Executor and sink settings are left
    out, and so is ``impute`` (the sinks impute what they compose, the parts stay raw):
    changing them must not recompute anything."""
    return {
        "version": __version__,
        "readings": config.source.readings.model_dump(mode="json"),
        "schema": config.source.schema_,
        "classify": config.stages.classify.model_dump(mode="json"),
        "rules": [repr(rule) for rule in classifier.rules],
        "extract": config.stages.extract.model_dump(mode="json", exclude={"n_jobs", "impute"}),
    }


def feature_fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of :func:`feature_settings`: what resume compares."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def already_done(sinks: Sequence[Sink]) -> set[str]:
    """Eras every sink already holds with the current fingerprint (resume skips them)."""
    done: set[str] | None = None
    for sink in sinks:
        if not isinstance(sink, ResumableSink):  # a sink that cannot tell: recompute everything
            return set()
        done = sink.done_eras() if done is None else done & sink.done_eras()
    return done or set()


def build_sinks(config: PipelineConfig, context: SinkContext) -> list[Sink]:
    """Start every configured sink through its plugin, in the order sink types registered."""
    plugins = sink_plugins()
    sinks: list[Sink] = []
    try:
        for name, options in sink_options(config, "pipeline").items():
            sinks.append(_start_sink(name, plugins[name].create, options, context))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _start_sink(name: str, create: Any, options: Any, context: SinkContext) -> Sink:
    try:
        sink = create(options, context)
    except StreamfxError as exc:
        if not str(exc).startswith(f"sinks.{name}"):  # name the sink, keep the exit status
            exc.args = (f"sinks.{name}: {exc}",)
        raise
    except Exception as exc:
        raise StreamfxError(
            f"plugin sink {name!r} failed to start: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(sink, Sink):
        raise StreamfxError(
            f"plugin sink {name!r} returned {type(sink).__name__}: expected a Sink "
            "(name, write, close)"
        )
    return sink


@dataclass
class Prepared:
    """What the run starts from: eras to do, eras already done, the plan, sinks and executor."""

    summary: RunSummary
    eras: list[Era]
    done: set[str]
    sinks: list[Sink]
    executor: Executor
    dsn: str
    warmup: KernelWarmup | None  # the extractor's kernels, compiled while preparing
    lock: RunLock  # held until the run ends: one run of a pipeline at a time


def prepare(
    config: PipelineConfig,
    era_ids: Sequence[str] | None,
    limit: int | None,
    force: bool,
    wait: bool,
    notify: Notify,
    progress: RunProgress,
) -> Prepared:
    """Open the source, take the pipeline's lock (or wait for it), select the eras, start the
    sinks, ask them what is done, and plan."""
    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    extractor = extractors().get(config.stages.extract.extractor)  # unknown: checked below
    warmup = KernelWarmup(extractor.warm_up) if isinstance(extractor, Warmable) else None
    progress.phase("plan", note="opening the source")
    dsn, conn, source = open_source(config.source, notify)
    sinks: list[Sink] = []
    lock: RunLock | None = None
    try:
        lock = RunLock(dsn, config.name, run_id)
        lock.acquire(wait, notify)  # before the sinks: they create tables and read what is done
        progress.phase("plan", note="listing the eras")
        eras = select_eras(source.list_eras(), era_ids, limit)
        classifier = check_stages(config)
        settings = feature_settings(config, classifier)
        fingerprint = feature_fingerprint(settings)
        context = SinkContext(
            config.name,
            run_id,
            dsn,
            fingerprint,
            config.executor.reconnect,
            settings,
            config.stages.extract.impute,
        )
        progress.phase(
            "plan", note=f"starting the sinks, asking which of {len(eras):,} eras are done"
        )
        sinks = build_sinks(config, context)
        done = set() if force else already_done(sinks)
        executor = make_executor(config, dsn)
        todo = [era for era in eras if era.key not in done]
        progress.phase("plan", note=f"analysing and routing {len(todo):,} eras")
        plan = plan_eras(config, source, todo, classifier, executor)
    except BaseException:
        for sink in sinks:
            sink.close()
        if lock is not None:
            lock.release()
        raise
    finally:
        conn.close()
    summary = RunSummary(run_id, config.name, fingerprint, now, plan, clock=started)
    summary.add_time("plan", started)
    progress.end("plan")
    return Prepared(summary, eras, done, sinks, executor, dsn, warmup, lock)


def announce(prepared: Prepared, notify: Notify) -> None:
    """Say what the plan noticed, and how many eras an earlier run already did."""
    for notice in prepared.summary.plan.notices:
        notify(notice)
    resumed = sum(era.key in prepared.done for era in prepared.eras)
    if resumed:
        notify(
            f"{resumed} eras already done with this configuration: not recomputed (--force does)"
        )


def start_records(prepared: Prepared) -> None:
    """One record per era, in time order: pending, skipped (no readings) or resumed."""
    summary = prepared.summary
    planned = {p.analysis.era.key: p for p in summary.plan.eras}
    for era in prepared.eras:
        p = planned.get(era.key)
        summary.records[era.key] = (
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


def execute(
    config: PipelineConfig, prepared: Prepared, notify: Notify, progress: RunProgress
) -> None:
    """Run the plan's workers; hand finished eras and era states to the sinks' writer."""
    summary = prepared.summary
    records = summary.records.values()
    todo = sum(r.status == "pending" for r in records)
    before = [f"{n:,} {what}" for what, n in _not_extracted(records).items() if n]
    progress.phase("extract", todo, note=", ".join(before))
    progress.phase("write", todo)
    if prepared.warmup is not None:  # the workers load the kernels it compiled
        with summary.timed("compile kernels"):
            progress.phase("extract", note="waiting for the kernels to compile")
            prepared.warmup.wait(notify)
            progress.phase("extract", note=", ".join(before))
    writer = SinkWriter(
        prepared.sinks,
        summary,
        config.executor.batch_eras,
        lambda era: progress.advance("write", "written"),
    )
    writer.status([EraStatus(r.era, "pending") for r in records if r.lane])
    extracting = time.perf_counter()
    cursor: dict[str, float] = {}  # by worker: where its pass in flight is up to (end_try)
    try:
        for event in prepared.executor.run(summary.plan.workers, handoff(config, prepared.sinks)):
            if isinstance(event, Started):
                cursor[event.worker] = summary.now_s()
                mark_started(summary, event, writer, notify)
                continue
            record = summary.records[event.era.key]
            if isinstance(event, Retrying):
                record.end_try(summary.now_s(), "retried", event.error)
                continue
            record.seconds, record.attempts = event.seconds, event.attempts
            if isinstance(event, EraFailure):
                record.status, record.error = "failed", event.error
                end_try(summary, record, event, cursor)
                notify(f"era {event.era.key} failed after {event.attempts} tries: {event.error}")
                writer.status(
                    [EraStatus(event.era, "failed", event.attempts, event.worker, event.error)]
                )
            elif event.empty:
                record.status = "skipped"
                end_try(summary, record, event, cursor)
            else:  # done once every sink has committed it (the writer says so)
                end_try(summary, record, event, cursor)
                record_extracted(record, event, notify)
                writer.add(event)
                progress.advance("extract", "done")
                continue
            progress.advance("extract", "failed" if record.status == "failed" else "empty")
            progress.advance("write")  # nothing to write
        writer.flush()
        progress.end("extract")
        # waiting on the workers: the loop, less the time it waited for a sink to catch up
        summary.timings["extract"] = time.perf_counter() - extracting - writer.blocked_s
        summary.timings["wait for sinks"] = writer.blocked_s
        summary.spans.append(Span("extract", extracting - summary.clock, summary.now_s()))
        with summary.timed("write (after extraction)"):
            writer.close()
        progress.end("write")
    except Exception as exc:
        summary.ended = f"aborted: {exc}"
        writer.stop()  # what was handed over is written whole; nothing more
        writer.reset(unfinished(summary))
        raise
    except BaseException:  # Ctrl-C, SIGTERM: keep what is finished, the rest reruns
        summary.ended = "interrupted"
        if writer.waiting and not writer.failed:  # a cancelled write: nothing more to write
            notify(f"writing {len(writer.waiting)} finished eras before stopping")
            writer.flush()
        writer.stop()
        writer.reset(unfinished(summary))
        raise


def _not_extracted(records: Iterable[EraRecord]) -> dict[str, int]:
    """The eras the workers will not see, by why: for the extract phase's note."""
    return {
        "already done": sum(r.status == "resumed" for r in records),
        "without readings": sum(r.status == "skipped" for r in records),
    }


def end_try(
    summary: RunSummary,
    record: EraRecord,
    outcome: EraResult | EraFailure,
    cursor: dict[str, float],
) -> None:
    """An era's outcome came back: its try in flight ends. The eras of a pass come back
    together, so each takes the pass's span after the one before it (``cursor``: where the
    worker's pass is up to), for its share of the pass's time; a failure without a try (its
    worker could not start) is an instant on the timeline."""
    now = summary.now_s()
    if not record.tries or record.tries[-1].end_s is not None:
        record.tries.append(Try(outcome.attempts, outcome.worker, now))
    current = record.tries[-1]
    if isinstance(outcome, EraFailure):
        record.end_try(now, "failed", outcome.error)
        return
    current.start_s = max(current.start_s, cursor.get(outcome.worker, 0.0))
    end = min(now, current.start_s + outcome.seconds)
    cursor[outcome.worker] = end
    record.end_try(end, "skipped" if outcome.empty else "done")


def unfinished(summary: RunSummary) -> list[Era]:
    """The eras of the plan that a stopped run leaves neither done nor failed."""
    return [r.era for r in summary.records.values() if r.lane and r.status == "pending"]


def handoff(config: PipelineConfig, sinks: Sequence[Sink]) -> Handoff:
    """On Ray, the workers write the sinks that let them (Parquet: parts beside its path), so
    the features need not come through this process; when every sink does, only the eras'
    counts come back. The local executor's workers share this machine: they hand every era
    over (one writer per sink here costs the same CPU and keeps one part per batch)."""
    if config.executor.kind != "ray":
        return Handoff()
    writable = [sink for sink in sinks if isinstance(sink, WorkerWritable)]
    writers = tuple(sink.worker_writer() for sink in writable)
    return Handoff(writers, keep_features=len(writable) < len(sinks))


def record_extracted(record: EraRecord, result: EraResult, notify: Notify) -> None:
    """An era finished with features: note them (and say what its calculators warned of)."""
    record.readings = result.readings
    record.features = result.feature_rows
    record.peak_rss_mb = result.peak_rss_mb
    record.warnings = result.warnings
    for warning in result.warnings:
        notify(f"warning: {warning}")


def mark_started(summary: RunSummary, event: Started, writer: SinkWriter, notify: Notify) -> None:
    """A worker began a pass: mark its eras running (and say so when it is a retry)."""
    now = summary.now_s()
    for era, attempt in zip(event.eras, event.attempts, strict=True):
        record = summary.records[era.key]
        record.attempts, record.worker = attempt, event.worker
        record.tries.append(Try(attempt, event.worker, now))
        if event.retrying:
            notify(f"era {era.key}: try {attempt} on worker {event.worker} ({event.retrying})")
    writer.status(
        [
            EraStatus(era, "running", attempt, event.worker)
            for era, attempt in zip(event.eras, event.attempts, strict=True)
        ]
    )


def finish(
    prepared: Prepared, started: float, notify: Notify, progress: RunProgress
) -> SinkFailed | None:
    """Close the sinks (their output lines), note what the workers reported, write the report.

    A sink that fails to close does not keep the others from closing, nor the report from
    being written (the run ends aborted); its error is returned, for the caller to raise."""
    summary = prepared.summary
    summary.outputs = []
    failure: SinkFailed | None = None
    progress.phase("compose", len(prepared.sinks))
    for sink in prepared.sinks:
        progress.phase("compose", note=f"closing {sink.name}")
        if isinstance(sink, ProgressiveClose):
            sink.report_close_to(_close_note(progress, sink.name))
        try:
            with summary.timed(f"close {sink.name}"):
                summary.outputs.append(sink.close())
        except Exception as exc:
            error = SinkFailed(f"sinks.{sink.name}: {' '.join(str(exc).split())}")
            error.__cause__ = exc
            failure = failure or error
            if summary.ended == "completed":
                summary.ended = f"aborted: {error}"
        progress.advance("compose")
    progress.phase("compose", note="writing the run report")
    reports = prepared.executor.reports
    summary.worker_peak_rss_mb = {n: r.peak_rss_mb for n, r in reports.items()}
    summary.worker_restarts = {n: r.restarts for n, r in reports.items()}
    summary.worker_nodes = {n: r.node for n, r in reports.items()}
    summary.seconds = time.perf_counter() - started
    summary.outputs += write_report(summary, prepared.sinks, notify)
    progress.end("compose")
    return failure


def _close_note(progress: RunProgress, sink: str) -> CloseProgress:
    """The compose phase's note while ``sink`` closes: its eras done, their rate and ETA."""
    began = time.perf_counter()

    def report(done: int, total: int) -> None:
        note = f"closing {sink}: {done:,}/{total:,} eras"
        elapsed = time.perf_counter() - began
        if 0 < done < total and elapsed > 0:
            rate = done / elapsed
            left = dt.timedelta(seconds=round((total - done) / rate))
            note += f"  {rate:,.0f}/s  ETA {left}"
        progress.phase("compose", note=note)

    return report


def run_pipeline(
    config: PipelineConfig,
    *,
    era_ids: Sequence[str] | None = None,
    limit: int | None = None,
    force: bool = False,
    wait: bool = False,
    notify: Notify = lambda _: None,
    progress: RunProgress = NoProgress(),
) -> RunSummary:
    """Run the whole pipeline; per-era problems are collected, input problems raise.

    Eras that every sink already holds with the same feature fingerprint are skipped
    (resume); ``force`` recomputes them. Another run of the pipeline going on is an error,
    unless ``wait``: then this one waits for it to end. ``progress`` hears of each phase.
    """
    started = time.perf_counter()
    prepared = prepare(config, era_ids, limit, force, wait, notify, progress)
    announce(prepared, notify)
    start_records(prepared)
    try:
        try:
            execute(config, prepared, notify, progress)
        except BaseException:
            finish(prepared, started, notify, progress)  # the run's own error is the one to raise
            raise
        failure = finish(prepared, started, notify, progress)
        if failure is not None:
            raise failure
    finally:
        prepared.lock.release()
    return prepared.summary
