"""One pipeline run: open the database, list eras, extract each, stream results to the sinks."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import PipelineConfig
from .database import EMBEDDED, connect, expand_env, start_embedded, table_columns
from .errors import StreamfxError
from .executor import EraFailure, LocalExecutor
from .model import Era, EraResult
from .sinks import Sink
from .source import Source

Notify = Callable[[str], None]


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
        eras_table=e.table or "eras",
        era_id_column=e.id_column,
        era_start_column=e.start_column,
        era_end_column=e.end_column,
        era_partition_column=e.partition_column or "compartment_id",
    )
    counts = seed_demo(conn, tables)
    notify(
        f"seeded demo data: {counts['readings']:,} readings in {src.schema_}.{r.table}, "
        f"{counts['eras']} eras in {src.schema_}.{tables.eras_table}"
    )
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


def build_sinks(config: PipelineConfig, dsn: str, run_id: str) -> list[Sink]:
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
            )
        )
    if config.sinks.postgres:
        pg = config.sinks.postgres
        sink_dsn = expand_env(pg.dsn, "sinks.postgres.dsn") if pg.dsn else dsn
        sinks.append(PostgresSink(sink_dsn, schema=pg.schema_, table=pg.table, run_id=run_id))
    return sinks


@dataclass
class RunSummary:
    """What a run did, for the closing summary and the exit status."""

    run_id: str
    pipeline: str
    eras_total: int = 0
    done: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[EraFailure] = field(default_factory=list)
    features: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def run_pipeline(
    config: PipelineConfig,
    *,
    era_ids: Sequence[str] | None = None,
    limit: int | None = None,
    notify: Notify = lambda _: None,
    on_era: Callable[[Era, str], None] = lambda era, status: None,
    on_eras: Callable[[int], None] = lambda total: None,
) -> RunSummary:
    """Run the whole pipeline; per-era problems are collected, input problems raise."""
    started = time.perf_counter()
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    dsn, conn, source = open_source(config, notify)
    try:
        eras = select_eras(source.list_eras(), era_ids, limit)
    finally:
        conn.close()
    summary = RunSummary(run_id=run_id, pipeline=config.name, eras_total=len(eras))
    on_eras(len(eras))
    sinks = build_sinks(config, dsn, run_id)
    batch: list[EraResult] = []

    def flush() -> None:
        for sink in sinks:
            summary.rows_written[sink.name] = summary.rows_written.get(sink.name, 0) + sink.write(
                batch
            )
        batch.clear()

    try:
        for outcome in LocalExecutor(config, dsn).run(eras):
            if isinstance(outcome, EraFailure):
                summary.failed.append(outcome)
                on_era(outcome.era, "failed")
                notify(f"era {outcome.era.id} failed: {outcome.error}")
                continue
            if outcome.empty:
                summary.skipped.append(outcome.era.id)
                on_era(outcome.era, "skipped")
                continue
            summary.done += 1
            summary.features += outcome.features.num_rows
            batch.append(outcome)
            if len(batch) >= config.executor.batch_eras:
                flush()
            on_era(outcome.era, "done")
        if batch:
            flush()
    finally:
        summary.outputs = [sink.close() for sink in sinks]
    summary.seconds = time.perf_counter() - started
    return summary
