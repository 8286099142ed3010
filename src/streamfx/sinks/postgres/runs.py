"""The run tables beside the features table: one row per run, one per (run, era), an era
being its (partition, era_id)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ...database import key_by_partition, qualified, quote_ident

RUNS_TABLE = "streamfx_runs"
ERA_RUNS_TABLE = "streamfx_era_runs"


def write_run_tables(conn: Any, report: Mapping[str, Any], schema: str) -> str:
    """Append the run and its eras to the run tables (the caller commits); say where."""
    runs, era_runs = qualified(schema, RUNS_TABLE), qualified(schema, ERA_RUNS_TABLE)
    eras = report["eras_detail"]
    era_table = pa.table(
        {
            "run_id": [report["run_id"]] * len(eras),
            **{
                key: [e[key] for e in eras]
                for key in ("era_id", "status", "lane", "rule", "worker", "error")
            },
            "partition": [e["partition"] or "" for e in eras],
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
                ("partition", pa.string()),
                ("readings", pa.int64()),
                ("features", pa.int64()),
                ("seconds", pa.float64()),
                ("peak_rss_mb", pa.float64()),
            ]
        ),
    )
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
            " peak_rss_mb double precision, partition text NOT NULL DEFAULT '',"
            " PRIMARY KEY (run_id, partition, era_id))"
        )
        key_by_partition(cur, era_runs, ("run_id", "partition", "era_id"))
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
                json.dumps({k: v for k, v in report.items() if k != "eras_detail"}, default=str),
            ),
        )
        if eras:
            cur.adbc_ingest(ERA_RUNS_TABLE, era_table, mode="append", db_schema_name=schema)
    return f"{schema}.{RUNS_TABLE} / {schema}.{ERA_RUNS_TABLE}"
