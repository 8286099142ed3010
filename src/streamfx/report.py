"""The run report: the reference's monitoring list as JSON beside the output and as tables.

Era distribution GPU vs CPU, processing time per era, worker load balance (estimated and
actual), peak memory per worker and extraction success rate. Written to
``<parquet path>/runs/<run_id>.json`` (or ``.streamfx/runs/`` without a Parquet sink) and, with a PostgreSQL sink, into
``streamfx_runs`` / ``streamfx_era_runs`` beside its features table.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from . import __version__
from .balance import imbalance
from .database import connect, qualified, quote_ident
from .sinks.parquet import Location, put

if TYPE_CHECKING:
    from .config import PipelineConfig
    from .pipeline import RunSummary

RUNS_TABLE = "streamfx_runs"
ERA_RUNS_TABLE = "streamfx_era_runs"


def _ratio(values: list[float]) -> float | None:
    ratio = imbalance(values)
    return round(ratio, 3) if ratio is not None else None


def build_report(summary: RunSummary) -> dict[str, Any]:
    records = list(summary.records.values())
    done, failed = summary.done, len(summary.failed)
    times = [r.seconds for r in records if r.status == "done"]
    workers = []
    for spec in summary.plan.workers:
        mine = [r for r in records if r.worker == spec.name]
        workers.append(
            {
                "worker": spec.name,
                "lane": spec.lane,
                "eras": len(mine),
                "estimated_load_s": round(summary.plan.loads.get(spec.name, 0.0), 3),
                "busy_s": round(sum(r.seconds for r in mine), 3),
                "peak_rss_mb": round(summary.worker_peak_rss_mb.get(spec.name, 0.0), 1),
                "restarts": summary.worker_restarts.get(spec.name, 0),
                "node": summary.worker_nodes.get(spec.name),
            }
        )
    balance = {}
    for lane in ("gpu", "cpu"):
        lane_workers = [w for w in workers if w["lane"] == lane]
        if lane_workers:
            balance[lane] = {
                "workers": len(lane_workers),
                "estimated_imbalance": _ratio([w["estimated_load_s"] for w in lane_workers]),
                "actual_imbalance": _ratio([w["busy_s"] for w in lane_workers]),
            }
    return {
        "run_id": summary.run_id,
        "pipeline": summary.pipeline,
        "fingerprint": summary.fingerprint,
        "streamfx_version": __version__,
        "started_at": summary.started_at.isoformat(),
        "seconds": round(summary.seconds, 3),
        "timings_s": {k: round(v, 3) for k, v in summary.timings.items()},
        "ended": summary.ended,
        "routing_policy": summary.plan.policy,
        "gpu_devices": summary.plan.gpu_devices,
        "notices": summary.plan.notices,
        "eras": {
            "total": summary.eras_total,
            "done": done,
            "skipped": len(summary.skipped),
            "failed": failed,
            "resumed": summary.resumed,
        },
        "success_rate": round(done / (done + failed), 4) if done + failed else None,
        "distribution": {
            "routed": {
                lane: sum(p.route.lane == lane for p in summary.plan.eras)
                for lane in ("gpu", "cpu")
            },
            "ran": {
                lane: sum(r.lane == lane and r.status == "done" for r in records)
                for lane in ("gpu", "cpu")
            },
        },
        "era_seconds": {
            "mean": round(statistics.fmean(times), 3) if times else None,
            "median": round(statistics.median(times), 3) if times else None,
            "max": round(max(times), 3) if times else None,
        },
        "workers": workers,
        "balance": balance,
        "features": summary.features,
        "warnings": sum(len(r.warnings) for r in records),
        "rows_written": summary.rows_written,
        "eras_detail": [
            {
                "era_id": r.era.id,
                "partition": r.era.partition,
                "start": r.era.start.isoformat(),
                "end": r.era.end.isoformat(),
                "status": r.status,
                "lane": r.lane,
                "rule": r.rule,
                "worker": r.worker,
                "estimated_cost_s": round(r.estimated_cost, 4),
                "readings": r.readings,
                "features": r.features,
                "seconds": round(r.seconds, 4),
                "peak_rss_mb": round(r.peak_rss_mb, 1),
                "attempts": r.attempts,
                "error": r.error,
                "warnings": r.warnings,
            }
            for r in records
        ],
    }


def _write_json(report: dict[str, Any], folder: str | Path) -> str:
    """``<folder>/runs/<run_id>.json`` (a local folder or a URI), replaced whole; its name."""
    location = Location(folder)
    location.fs.create_dir(location.path("runs"), recursive=True)
    name = f"{report['run_id']}.json"
    text = json.dumps(report, indent=2, default=str)
    put(location.fs, location.path("runs", name), lambda out: out.write(text.encode()))
    return location.show("runs", name)


def _write_tables(report: dict[str, Any], dsn: str, schema: str) -> None:
    """Append the run and its eras to the run tables, in one transaction."""
    runs, era_runs = qualified(schema, RUNS_TABLE), qualified(schema, ERA_RUNS_TABLE)
    eras = report["eras_detail"]
    era_table = pa.table(
        {
            "run_id": [report["run_id"]] * len(eras),
            **{
                key: [e[key] for e in eras]
                for key in ("era_id", "status", "lane", "rule", "worker", "error")
            },
            "readings": pa.array([e["readings"] for e in eras], pa.int64()),
            "features": pa.array([e["features"] for e in eras], pa.int64()),
            "seconds": pa.array([e["seconds"] for e in eras], pa.float64()),
            "peak_rss_mb": pa.array([e["peak_rss_mb"] for e in eras], pa.float64()),
        },
        schema=pa.schema(
            [
                (k, pa.string())
                for k in ("run_id", "era_id", "status", "lane", "rule", "worker", "error")
            ]
            + [
                ("readings", pa.int64()),
                ("features", pa.int64()),
                ("seconds", pa.float64()),
                ("peak_rss_mb", pa.float64()),
            ]
        ),
    )
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {runs} (run_id text PRIMARY KEY, pipeline text NOT NULL,"
                " fingerprint text, started_at timestamptz, seconds double precision,"
                " eras_total int, eras_done int, eras_skipped int, eras_failed int,"
                " success_rate double precision, features bigint, report jsonb)"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {era_runs} (run_id text NOT NULL, era_id text NOT NULL,"
                " status text NOT NULL, lane text, rule text, worker text, error text,"
                " readings bigint, features bigint, seconds double precision,"
                " peak_rss_mb double precision, PRIMARY KEY (run_id, era_id))"
            )
            e = report["eras"]
            cur.execute(
                f"INSERT INTO {runs} VALUES ($1, $2, $3, $4::timestamptz, $5, $6, $7, $8, $9, $10,"
                " $11, $12::jsonb)",
                parameters=(
                    report["run_id"],
                    report["pipeline"],
                    report["fingerprint"],
                    report["started_at"],
                    report["seconds"],
                    e["total"],
                    e["done"],
                    e["skipped"],
                    e["failed"],
                    report["success_rate"],
                    report["features"],
                    json.dumps(
                        {k: v for k, v in report.items() if k != "eras_detail"}, default=str
                    ),
                ),
            )
            if eras:
                cur.adbc_ingest(ERA_RUNS_TABLE, era_table, mode="append", db_schema_name=schema)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()


def write_report(
    config: PipelineConfig, dsn: str, summary: RunSummary, notify: Callable[[str], None]
) -> str:
    """Write the JSON report and the run tables; return a one-line description.

    The JSON file is always written; the tables are best effort (the database may be the
    reason the run stopped), with a notice when they could not be.
    """
    from .pipeline import sink_dsn

    report = build_report(summary)
    path = _write_json(report, config.sinks.parquet.path if config.sinks.parquet else ".streamfx")
    if not config.sinks.postgres:  # write to the database only where the user asked to
        return f"report: {path}"
    schema = config.sinks.postgres.schema_
    try:
        _write_tables(report, sink_dsn(config, dsn), schema)
    except Exception as exc:
        notify(f"run report not written to the database ({' '.join(str(exc).split())})")
        return f"report: {path}"
    return f"report: {path} and {schema}.{RUNS_TABLE} / {schema}.{ERA_RUNS_TABLE}"
