"""PostgreSQL sink: upserts the long features table, one transaction per batch."""

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
    ) -> None:
        self.schema = schema
        self.table = table
        self.run_id = run_id
        self.target = qualified(schema, table)
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
        eras = pa.table({"era_id": pa.array([r.era.id for r in results], pa.string())})
        columns = ", ".join(quote_ident(c) for c in COLUMNS)
        try:
            with self.conn.cursor() as cur:
                cur.adbc_ingest(STAGING, staging, mode="replace", temporary=True)
                cur.adbc_ingest(STAGING_ERAS, eras, mode="replace", temporary=True)
                # An era's rows equal exactly its latest extraction: drop what it no longer has.
                cur.execute(
                    f"DELETE FROM {self.target} AS t "
                    f"WHERE t.era_id IN (SELECT era_id FROM pg_temp.{STAGING_ERAS}) "
                    f"AND NOT EXISTS (SELECT 1 FROM pg_temp.{STAGING} AS s "
                    "WHERE s.era_id = t.era_id AND s.sensor = t.sensor "
                    "AND s.feature = t.feature)"
                )
                cur.execute(
                    f"INSERT INTO {self.target} ({columns}) "
                    f"SELECT {columns} FROM pg_temp.{STAGING} "
                    "ON CONFLICT (era_id, sensor, feature) DO UPDATE SET "
                    "value = EXCLUDED.value, run_id = EXCLUDED.run_id, "
                    "extracted_at = EXCLUDED.extracted_at"
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

    def close(self) -> str:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        return f"postgres: {self.schema}.{self.table} ({self.rows:,} rows this run)"
