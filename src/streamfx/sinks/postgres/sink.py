"""The PostgreSQL sink: replaces each era's rows of the long features table, one transaction
per batch, and keeps each era's status beside it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ... import database
from ...database import Connection, qualified, quote_ident
from ...errors import StreamfxError
from ...model import EraResult
from ...options import RetryConfig
from .. import EraStatus
from .runs import write_run_tables

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
#: Per-era status (pending, running, done, failed), "done" committed in the same transaction
#: as the era's features, so resume can trust it.
STATUS_TABLE = "streamfx_era_status"
STATUS_SCHEMA = pa.schema(
    [
        pa.field("era_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("attempts", pa.int32()),
        pa.field("worker", pa.string()),
        pa.field("error", pa.string()),
    ]
)


class PostgresSink:
    """Keeps ``<schema>.<table>`` (era_id, sensor, feature, value, run_id, extracted_at) current.

    Every write is one transaction: an era's rows and its "done" status land together or not
    at all. With a ``reconnect`` policy a lost connection is reopened and the transaction redone.
    """

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
        reconnect: RetryConfig | None = None,
    ) -> None:
        self.dsn = dsn
        self.reconnect = reconnect
        self.schema = schema
        self.table = table
        self.run_id = run_id
        self.pipeline = pipeline
        self.fingerprint = fingerprint
        self.target = qualified(schema, table)
        self.status = qualified(schema, STATUS_TABLE)
        self.rows = 0
        self.db: Connection | None = Connection(dsn, reconnect)
        try:
            self._create_tables()
        except BaseException:
            self.db.close()
            raise

    def _run(self, work: Any) -> Any:
        assert self.db is not None, "the sink is closed"
        return self.db.run(work)

    def _create_tables(self) -> None:
        def create(conn: Any) -> None:
            with conn.cursor() as cur:
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
                    "pipeline text NOT NULL, era_id text NOT NULL, features_table text NOT NULL,"
                    " fingerprint text NOT NULL, status text NOT NULL, attempts int NOT NULL,"
                    " error text, worker text, run_id text NOT NULL, started_at timestamptz,"
                    " finished_at timestamptz, PRIMARY KEY (pipeline, features_table, era_id))"
                )
                # tables from streamfx 0.1 lack started_at and required finished_at
                cur.execute(
                    f"ALTER TABLE {self.status} ADD COLUMN IF NOT EXISTS started_at timestamptz"
                )
                cur.execute(f"ALTER TABLE {self.status} ALTER COLUMN finished_at DROP NOT NULL")

        self._run(create)
        columns = self._run(lambda conn: database.table_columns(conn, self.schema, self.table))
        missing = [c for c in COLUMNS if c not in (columns or {})]
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
        done = _status_table([EraStatus(r.era.id, "done", r.attempts, r.worker) for r in results])
        columns = ", ".join(quote_ident(c) for c in COLUMNS)

        def replace_eras(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.adbc_ingest(STAGING, staging, mode="replace", temporary=True)
                cur.adbc_ingest(STAGING_ERAS, done, mode="replace", temporary=True)
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
                self._mark(cur)
                cur.execute(f"DROP TABLE pg_temp.{STAGING}")

        self._run(replace_eras)
        self.rows += staging.num_rows
        return staging.num_rows

    def _mark(self, cur: Any) -> None:
        """Upsert the status rows staged in ``pg_temp.STAGING_ERAS``, then drop them."""
        cur.execute(
            f"INSERT INTO {self.status} AS s (pipeline, era_id, features_table, fingerprint,"
            " status, attempts, error, worker, run_id, started_at, finished_at)"
            " SELECT $1, e.era_id, $2, $3, e.status, e.attempts, e.error, e.worker, $4,"
            "  CASE WHEN e.status = 'running' THEN now() END,"
            "  CASE WHEN e.status IN ('done', 'failed') THEN now() END"
            f" FROM pg_temp.{STAGING_ERAS} AS e"
            " ON CONFLICT (pipeline, features_table, era_id) DO UPDATE SET"
            " fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,"
            " attempts = EXCLUDED.attempts, error = EXCLUDED.error, worker = EXCLUDED.worker,"
            " run_id = EXCLUDED.run_id, finished_at = EXCLUDED.finished_at,"
            " started_at = CASE EXCLUDED.status WHEN 'running' THEN now()"
            "  WHEN 'pending' THEN NULL ELSE s.started_at END",
            parameters=(self.pipeline, self.target, self.fingerprint, self.run_id),
        )
        cur.execute(f"DROP TABLE pg_temp.{STAGING_ERAS}")

    def record_status(self, entries: Sequence[EraStatus]) -> None:
        """Record eras pending, running or failed (a failed era's features stay as they were)."""
        if not entries:
            return
        table = _status_table(entries)

        def mark(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.adbc_ingest(STAGING_ERAS, table, mode="replace", temporary=True)
                self._mark(cur)

        self._run(mark)

    def done_eras(self) -> set[str]:
        """Eras this table already holds for the same pipeline and feature fingerprint."""

        def select(conn: Any) -> list[Any]:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT era_id FROM {self.status} WHERE pipeline = $1"
                    " AND features_table = $2 AND fingerprint = $3 AND status = 'done'",
                    parameters=(self.pipeline, self.target, self.fingerprint),
                )
                return cur.fetchall()

        return {row[0] for row in self._run(select)}

    def close(self) -> str:
        if self.db is not None:
            self.db.close()
            self.db = None
        return f"postgres: {self.schema}.{self.table} ({self.rows:,} rows this run)"

    def record_run(self, report: Mapping[str, Any]) -> str:
        """Append the run and its eras to the run tables beside the features table.

        A run that lost the database does not wait for it again (no reconnect budget)."""
        lost = str(report.get("ended", "")).startswith("aborted")
        db = Connection(self.dsn, None if lost else self.reconnect)
        try:
            return db.run(lambda conn: write_run_tables(conn, report, self.schema))
        finally:
            db.close()


def _status_table(entries: Sequence[EraStatus]) -> pa.Table:
    return pa.table(
        {
            "era_id": [e.era_id for e in entries],
            "status": [e.status for e in entries],
            "attempts": [e.attempts for e in entries],
            "worker": [e.worker for e in entries],
            "error": [e.error for e in entries],
        },
        schema=STATUS_SCHEMA,
    )
