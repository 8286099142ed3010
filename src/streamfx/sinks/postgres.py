"""PostgreSQL sink: replaces each era's rows of the long features table, one transaction per batch."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from .. import database
from ..database import qualified, quote_ident
from ..errors import StreamfxError
from ..model import EraResult

#: Staging columns are all nullable, so the target table's constraints are the ones enforced.
STAGING_SCHEMA = pa.schema(
    [
        pa.field("era_id", pa.string()),
        pa.field("sensor", pa.string()),
        pa.field("feature", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("run_id", pa.string()),
        pa.field("extracted_at", pa.timestamp("us", tz="UTC")),
    ]
)
FEATURE_SCHEMA = pa.schema(list(STAGING_SCHEMA)[:4])
COLUMNS = [field.name for field in STAGING_SCHEMA]
STAGING = "streamfx_staging"
STAGING_ERAS = "streamfx_staging_eras"
#: Per-era status, committed in the same transaction as the era's features (resume reads it).
STATUS_TABLE = "streamfx_era_status"


class PostgresSink:
    """Keeps ``<schema>.<table>`` (era_id, sensor, feature, value, run_id, extracted_at) current."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        table: str = "streamfx_features",
        run_id: str,
        pipeline: str = "",
        fingerprint: str = "",
    ) -> None:
        self.schema = schema
        self.table = table
        self.run_id = run_id
        self.pipeline = pipeline
        self.fingerprint = fingerprint
        self.target = qualified(schema, table)
        self.status = qualified(schema, STATUS_TABLE)
        self.rows = 0
        self.conn: Any = database.connect(dsn)
        try:
            self._create_table()
        except BaseException:
            self.conn.close()
            raise

    def _create_table(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                parameters=(self.schema,),
            )
            if cur.fetchone() is None:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.target} ("
                "era_id text NOT NULL, sensor text NOT NULL, feature text NOT NULL, "
                "value double precision, run_id text NOT NULL, "
                "extracted_at timestamptz NOT NULL, "
                "PRIMARY KEY (era_id, sensor, feature))"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.status} ("
                "pipeline text NOT NULL, era_id text NOT NULL, features_table text NOT NULL, "
                "fingerprint text NOT NULL, status text NOT NULL, attempts int NOT NULL, "
                "error text, worker text, run_id text NOT NULL, finished_at timestamptz NOT NULL, "
                "PRIMARY KEY (pipeline, features_table, era_id))"
            )
        self.conn.commit()
        columns = database.table_columns(self.conn, self.schema, self.table) or {}
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise StreamfxError(
                f"table {self.schema}.{self.table} exists without column(s) {', '.join(missing)}"
            )

    def _staging(self, results: Sequence[EraResult]) -> pa.Table:
        extracted_at = dt.datetime.now(dt.timezone.utc)
        tables = [r.features.select(FEATURE_SCHEMA.names).cast(FEATURE_SCHEMA) for r in results]
        features = pa.concat_tables(tables)
        n = features.num_rows
        features = features.append_column(
            STAGING_SCHEMA.field("run_id"), pa.repeat(pa.scalar(self.run_id), n)
        ).append_column(
            STAGING_SCHEMA.field("extracted_at"),
            pa.repeat(pa.scalar(extracted_at, STAGING_SCHEMA.field("extracted_at").type), n),
        )
        return features.cast(STAGING_SCHEMA)

    def write(self, results: Sequence[EraResult]) -> int:
        if not results:
            return 0
        staging = self._staging(results)
        eras = pa.table(
            {
                "era_id": pa.array([r.era.id for r in results], pa.string()),
                "worker": pa.array([r.worker for r in results], pa.string()),
            }
        )
        columns = ", ".join(quote_ident(c) for c in COLUMNS)
        try:
            with self.conn.cursor() as cur:
                cur.adbc_ingest(STAGING, staging, mode="replace", temporary=True)
                cur.adbc_ingest(STAGING_ERAS, eras, mode="replace", temporary=True)
                # An era's rows equal exactly its latest extraction: replace them whole (an
                # upsert per era; deleting by the primary key's prefix and inserting is much
                # cheaper than ON CONFLICT row by row).
                cur.execute(
                    f"DELETE FROM {self.target} "
                    f"WHERE era_id IN (SELECT era_id FROM pg_temp.{STAGING_ERAS})"
                )
                cur.execute(
                    f"INSERT INTO {self.target} ({columns}) SELECT {columns} FROM pg_temp.{STAGING}"
                )
                self._mark(
                    cur,
                    f"SELECT era_id, worker, NULL::text AS error FROM pg_temp.{STAGING_ERAS}",
                    "done",
                )
                cur.execute(f"DROP TABLE pg_temp.{STAGING}")
                cur.execute(f"DROP TABLE pg_temp.{STAGING_ERAS}")
            self.conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                self.conn.rollback()
            raise
        self.rows += staging.num_rows
        return staging.num_rows

    def _mark(self, cur: Any, eras_sql: str, status: str) -> None:
        """Upsert the status of the eras ``eras_sql`` selects (era_id, worker, error)."""
        cur.execute(
            f"INSERT INTO {self.status} AS s (pipeline, era_id, features_table, fingerprint,"
            " status, attempts, error, worker, run_id, finished_at)"
            f" SELECT $1, e.era_id, $2, $3, $4, 1, e.error, e.worker, $5, now() FROM ({eras_sql}) AS e"
            " ON CONFLICT (pipeline, features_table, era_id) DO UPDATE SET"
            " fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, error = EXCLUDED.error,"
            " worker = EXCLUDED.worker, run_id = EXCLUDED.run_id, finished_at = now(),"
            " attempts = CASE WHEN s.run_id = EXCLUDED.run_id THEN s.attempts + 1 ELSE 1 END",
            parameters=(self.pipeline, self.target, self.fingerprint, status, self.run_id),
        )

    def record_failures(self, failures: Sequence[tuple[str, str, str | None]]) -> None:
        """Mark eras failed: (era_id, error, worker) each; their features stay as they were."""
        if not failures:
            return
        table = pa.table(
            {
                "era_id": [f[0] for f in failures],
                "error": [f[1] for f in failures],
                "worker": pa.array([f[2] for f in failures], pa.string()),
            }
        )
        try:
            with self.conn.cursor() as cur:
                cur.adbc_ingest(STAGING_ERAS, table, mode="replace", temporary=True)
                self._mark(
                    cur, f"SELECT era_id, worker, error FROM pg_temp.{STAGING_ERAS}", "failed"
                )
                cur.execute(f"DROP TABLE pg_temp.{STAGING_ERAS}")
            self.conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self.conn.rollback()
            raise

    def done_eras(self) -> set[str]:
        """Eras this table already holds for the same pipeline and feature fingerprint."""
        with self.conn.cursor() as cur:
            cur.execute(
                f"SELECT era_id FROM {self.status} WHERE pipeline = $1 AND features_table = $2"
                " AND fingerprint = $3 AND status = 'done'",
                parameters=(self.pipeline, self.target, self.fingerprint),
            )
            rows = cur.fetchall()
        self.conn.commit()
        return {row[0] for row in rows}

    def close(self) -> str:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        return f"postgres: {self.schema}.{self.table} ({self.rows:,} rows this run)"
