"""The PostgreSQL sink: replaces each era's features (arrays per era and sensor, see ``layout``),
one transaction per batch, and keeps each era's status beside them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ...database import Connection
from ...model import EraResult, era_key
from .. import EraStatus, SinkContext
from ..batch import ERA, batch_features, refuse_duplicates
from .layout import Layout, names_id
from .runs import write_run_tables

#: The rows written per (era, sensor): its values in the order of its feature names.
VALUES_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.string()),
        pa.field("era_id", pa.string()),
        pa.field("sensor", pa.string()),
        pa.field("names_id", pa.int64()),
        pa.field("values", pa.list_(pa.float64())),
        pa.field("run_id", pa.string()),
        pa.field("extracted_at", pa.timestamp("us", tz="UTC")),
    ]
)
NAMES_SCHEMA = pa.schema(
    [pa.field("names_id", pa.int64()), pa.field("features", pa.list_(pa.string()))]
)
STAGING_NAMES = "streamfx_staging_names"


class PostgresSink:
    """Keeps ``<schema>.<table>`` current: the view of each era's features (see ``layout``).

    Every write is one transaction: an era's rows and its "done" status land together or not
    at all, and a rerun replaces an era's rows whole. With a ``reconnect`` policy a lost
    connection is reopened and the transaction redone.
    """

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        run: SinkContext,
        *,
        schema: str = "public",
        table: str = "streamfx_features",
    ) -> None:
        self.dsn = dsn
        self.reconnect = run.reconnect
        self.schema = schema
        self.table = table
        self.run_id = run.run_id
        self.pipeline = run.pipeline
        self.fingerprint = run.fingerprint
        self.layout = Layout(schema, table)
        self.known_names: set[int] = set()  # feature-name lists already in the dictionary
        self.rows = 0
        self.db: Connection | None = Connection(dsn, run.reconnect)
        try:
            self._run(self._create)
        except BaseException:
            self.db.close()
            raise

    def _run(self, work: Any) -> Any:
        assert self.db is not None, "the sink is closed"
        return self.db.run(work)

    def _create(self, conn: Any) -> None:
        with conn.cursor() as cur:
            self.layout.create(cur)

    def write(self, results: Sequence[EraResult]) -> int:
        if not results:
            return 0
        rows, names, values = _arrays(results, self.run_id)
        new_names = names.filter(
            pc.invert(pc.is_in(names["names_id"], pa.array(list(self.known_names), pa.int64())))
        )
        done = [EraStatus(r.era, "done", r.attempts, r.worker) for r in results]
        eras = ([r.era.partition or "" for r in results], [r.era.id for r in results])
        layout = self.layout

        def replace_eras(conn: Any) -> None:
            with conn.cursor() as cur:
                if new_names.num_rows:
                    cur.adbc_ingest(STAGING_NAMES, new_names, mode="replace", temporary=True)
                    cur.execute(
                        f"INSERT INTO {layout.names} SELECT * FROM pg_temp.{STAGING_NAMES}"
                        " ON CONFLICT (names_id) DO NOTHING"
                    )
                    cur.execute(f"DROP TABLE pg_temp.{STAGING_NAMES}")
                # An era's rows equal exactly its latest extraction: replace them whole.
                cur.execute(
                    f"DELETE FROM {layout.values} WHERE (partition, era_id) IN"
                    " (SELECT * FROM unnest($1::text[], $2::text[]))",
                    parameters=eras,
                )
                cur.adbc_ingest(layout.values_name, rows, mode="append", db_schema_name=self.schema)
                self._mark(cur, done)

        self._run(replace_eras)
        self.known_names.update(names["names_id"].to_pylist())
        self.rows += values
        return values

    def _mark(self, cur: Any, entries: Sequence[EraStatus]) -> None:
        """Upsert the status rows of ``entries``: one statement, the entries as arrays."""
        cur.execute(
            f"INSERT INTO {self.layout.status} AS s (pipeline, partition, era_id, features_table,"
            " fingerprint, status, attempts, error, worker, run_id, started_at, finished_at)"
            " SELECT $1, e.partition, e.era_id, $2, $3, e.status, e.attempts, e.error, e.worker, $4,"
            "  CASE WHEN e.status = 'running' THEN now() END,"
            "  CASE WHEN e.status IN ('done', 'failed') THEN now() END"
            " FROM unnest($5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::text[])"
            " AS e(partition, era_id, status, attempts, error, worker)"
            " ON CONFLICT (pipeline, features_table, partition, era_id) DO UPDATE SET"
            " fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,"
            " attempts = EXCLUDED.attempts, error = EXCLUDED.error, worker = EXCLUDED.worker,"
            " run_id = EXCLUDED.run_id, finished_at = EXCLUDED.finished_at,"
            " started_at = CASE EXCLUDED.status WHEN 'running' THEN now()"
            "  WHEN 'pending' THEN NULL ELSE s.started_at END",
            parameters=(
                self.pipeline,
                self.layout.view,
                self.fingerprint,
                self.run_id,
                [e.era.partition or "" for e in entries],
                [e.era.id for e in entries],
                [e.status for e in entries],
                [e.attempts for e in entries],
                [e.error for e in entries],
                [e.worker for e in entries],
            ),
        )

    def record_status(self, entries: Sequence[EraStatus]) -> None:
        """Record eras pending, running or failed (a failed era's features stay as they were)."""
        if not entries:
            return

        def mark(conn: Any) -> None:
            with conn.cursor() as cur:
                self._mark(cur, entries)

        self._run(mark)

    def done_eras(self) -> set[str]:
        """Keys of the eras this table holds for the same pipeline and feature fingerprint."""

        def select(conn: Any) -> list[Any]:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT era_id, NULLIF(partition, '') FROM {self.layout.status}"
                    " WHERE pipeline = $1"
                    " AND features_table = $2 AND fingerprint = $3 AND status = 'done'",
                    parameters=(self.pipeline, self.layout.view, self.fingerprint),
                )
                return cur.fetchall()

        return {era_key(era_id, partition) for era_id, partition in self._run(select)}

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


def _arrays(results: Sequence[EraResult], run_id: str) -> tuple[pa.Table, pa.Table, int]:
    """The batch as VALUES_SCHEMA rows (one per era and sensor, values in the order of its
    feature names), the NAMES_SCHEMA lists they use, and the number of values.

    A sensor's names come in the extractor's order, the same era after era, so one list (and
    one ``names_id``) serves them all; nothing is sorted."""
    long = batch_features(results)
    grouped = long.group_by(ERA, "sensor", maintain_order=True).agg(
        pl.col("feature"),
        pl.col("value").alias("values"),
        (pl.col("feature").n_unique() < pl.len()).alias("repeats"),
    )
    if grouped["repeats"].any():
        refuse_duplicates(long, ["sensor", "feature"], results)
    grouped = grouped.with_columns(  # one key per distinct list (a null name kept distinct)
        pl.col("feature").list.eval(pl.element().fill_null("\x00")).list.join("\x1f").alias("key")
    )
    lists = grouped.select("key", "feature").unique("key", maintain_order=True)
    ids = [names_id(key) for key in lists["key"].to_list()]
    lists = lists.with_columns(pl.Series("names_id", ids, dtype=pl.Int64))
    eras = pl.DataFrame(
        {
            ERA: pl.int_range(len(results), eager=True, dtype=pl.Int32),
            "partition": [r.era.partition or "" for r in results],
            "era_id": [r.era.id for r in results],
        },
        schema_overrides={"partition": pl.String, "era_id": pl.String},
    )
    rows = (
        grouped.join(lists.select("key", "names_id"), on="key", how="left", maintain_order="left")
        .join(eras, on=ERA, how="left", maintain_order="left")
        .select(
            "partition",
            "era_id",
            "sensor",
            "names_id",
            "values",
            pl.lit(run_id, pl.String).alias("run_id"),
            pl.lit(dt.datetime.now(dt.timezone.utc), pl.Datetime("us", "UTC")).alias(
                "extracted_at"
            ),
        )
    )
    names = lists.select("names_id", pl.col("feature").alias("features"))
    return (
        rows.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(VALUES_SCHEMA),
        names.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(NAMES_SCHEMA),
        long.height,
    )
