"""The PostgreSQL sink's tables: values as arrays, their feature names once, a long-form view.

Measured on 2 cores, 480 hourly eras of the demo data (2.3 M values): one row per (era,
feature) in a long table took 25.9 s to write (most of it the text primary-key index) and
706 MB; one row per (era, sensor) holding a ``float8[]`` of its values took 2.4 s and 8.8 MB,
beside a 6.8 MB Parquet file. So for ``sinks.postgres.table: T``:

- ``T_values (partition, era_id, sensor, names_id, values float8[], run_id, extracted_at)``,
  primary key ``(partition, era_id, sensor)`` (``partition`` is ``''`` for eras without one);
- ``T_names (names_id, features text[])``: each distinct list of feature names once, keyed by
  a hash of the list, so ``values[i]`` is the value of ``features[i]``;
- the view ``T (era_id, sensor, feature, value, run_id, extracted_at, partition)``: one row per
  value, as the long table of streamfx 0.1 had, so SQL written against it keeps working.

NaN stays NaN inside the arrays and a missing feature has no element, so the view keeps an
undefined feature (NaN) apart from one an era does not have (no row).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ...database import key_by_partition, qualified, quote_ident
from ...errors import StreamfxError

#: Per-era status (pending, running, done, failed), "done" committed in the same transaction
#: as the era's features, so resume can trust it.
STATUS_TABLE = "streamfx_era_status"

#: An era's status row: its pipeline, features table and (partition, era_id).
STATUS_KEY = ("pipeline", "features_table", "partition", "era_id")

#: The columns of streamfx 0.1's long table, which is refused (see ``Layout.create``).
V01_COLUMNS = ("era_id", "sensor", "feature", "value", "run_id", "extracted_at")


def names_id(key: str) -> int:
    """The dictionary key of a list of feature names, given as the names joined by ``\x1f``
    (a null name as NUL, which the names table refuses): its SHA-256's first 8 bytes, signed."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class Layout:
    """The qualified names of one features table's relations."""

    schema: str
    table: str

    @property
    def view(self) -> str:
        return qualified(self.schema, self.table)

    @property
    def values(self) -> str:
        return qualified(self.schema, self.values_name)

    @property
    def values_name(self) -> str:
        return f"{self.table}_values"

    @property
    def names(self) -> str:
        return qualified(self.schema, f"{self.table}_names")

    @property
    def status(self) -> str:
        return qualified(self.schema, STATUS_TABLE)

    def create(self, cur: Any) -> None:
        """Create what is missing; refuse a 0.1 long table (or anything else) named ``table``."""
        cur.execute(
            "SELECT c.relkind::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            parameters=(self.schema, self.table),
        )
        found = cur.fetchone()
        if found is not None and found[0] != "v":
            raise StreamfxError(self._refusal(cur))
        cur.execute(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", parameters=(self.schema,)
        )
        if cur.fetchone() is None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.names} (names_id bigint PRIMARY KEY,"
            " features text[] NOT NULL"
            " CONSTRAINT feature_names_not_null CHECK (array_position(features, NULL) IS NULL))"
        )
        cur.execute("SELECT to_regclass($1) IS NULL", parameters=(self.values,))
        (new,) = cur.fetchone()
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.values} (partition text NOT NULL,"
            " era_id text NOT NULL, sensor text NOT NULL, names_id bigint NOT NULL,"
            " values double precision[] NOT NULL, run_id text NOT NULL,"
            " extracted_at timestamptz NOT NULL, PRIMARY KEY (partition, era_id, sensor))"
        )
        cur.execute(
            f"CREATE OR REPLACE VIEW {self.view} AS SELECT v.era_id, v.sensor, u.feature,"
            " u.value, v.run_id, v.extracted_at, NULLIF(v.partition, '') AS partition"
            f" FROM {self.values} AS v JOIN {self.names} AS n USING (names_id)"
            " CROSS JOIN LATERAL unnest(n.features, v.values) AS u(feature, value)"
        )
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.status} ("
            "pipeline text NOT NULL, partition text NOT NULL DEFAULT '', era_id text NOT NULL,"
            " features_table text NOT NULL, fingerprint text NOT NULL, status text NOT NULL,"
            " attempts int NOT NULL, error text, worker text, run_id text NOT NULL,"
            " started_at timestamptz, finished_at timestamptz,"
            " PRIMARY KEY (pipeline, features_table, partition, era_id))"
        )
        key_by_partition(cur, self.status, STATUS_KEY)
        # status tables from streamfx 0.1 lack started_at and required finished_at
        cur.execute(f"ALTER TABLE {self.status} ADD COLUMN IF NOT EXISTS started_at timestamptz")
        cur.execute(f"ALTER TABLE {self.status} ALTER COLUMN finished_at DROP NOT NULL")
        if new:  # eras "done" into a table of this name before (a renamed 0.1 one) are not here
            cur.execute(
                f"DELETE FROM {self.status} WHERE features_table = $1", parameters=(self.view,)
            )

    def _refusal(self, cur: Any) -> str:
        cur.execute(
            "SELECT column_name::text FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = $2",
            parameters=(self.schema, self.table),
        )
        columns = {row[0] for row in cur.fetchall()}
        where = f"{self.schema}.{self.table}"
        if set(V01_COLUMNS) <= columns:
            return (
                f"{where} is a features table of streamfx 0.1 (one row per value); streamfx now"
                f" keeps {self.values_name} and a view named {self.table}: rename the old table"
                f" (ALTER TABLE {self.view} RENAME TO {quote_ident(self.table + '_v01')}) and"
                " rerun to recompute its eras, or set sinks.postgres.table to another name"
            )
        return (
            f"{where} exists and is not streamfx's features view: set sinks.postgres.table to "
            "another name"
        )
