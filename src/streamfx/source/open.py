"""Opening the source: the DSN (``${VAR}`` expanded, or the embedded server started), the
connection, the demo data where the embedded default asks for it, and the checked tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..database import EMBEDDED, connect, expand_env, start_embedded, table_columns
from .config import SourceConfig
from .postgres import Source

Notify = Callable[[str], None]


def resolve_dsn(config: SourceConfig, notify: Notify = lambda _: None) -> str:
    """The source DSN with ``${VAR}`` expanded; ``embedded`` starts the embedded server."""
    dsn = expand_env(config.dsn, "source.dsn")
    if dsn.strip() != EMBEDDED:
        return dsn
    data_dir = config.embedded.data_dir
    notify(f"starting embedded PostgreSQL in {data_dir}")
    return start_embedded(data_dir)


#: The readings tables of the shipped pipelines (pipeline.yaml, pipelines/*.yaml).
SHIPPED_READINGS = frozenset(
    {"sensor_readings", "greenhouse_wide", "iot_readings", "preprocessed_features"}
)


def will_seed(src: SourceConfig, conn: Any) -> bool:
    """Whether the embedded server's missing readings table gets demo data: only in schema
    public, and only when public holds no table yet (a new server) or the table has a shipped
    pipeline's name. A misspelt schema or table is then an error, not 244,771 demo readings."""
    if not src.embedded.seed_demo or src.schema_ != "public":
        return False
    if table_columns(conn, src.schema_, src.readings.table) is not None:
        return False
    if src.readings.table in SHIPPED_READINGS:
        return True
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        (tables,) = cur.fetchone()
    conn.commit()
    return tables == 0


def seed_demo_if_missing(src: SourceConfig, conn: Any, notify: Notify) -> bool:
    """Seed the demo dataset under the configured names when the readings table is missing:
    in the configured layout, or in the reference system's shape with ``embedded.seed:
    reference`` (era ids restarting in each compartment)."""
    from .datasets.demo import DemoTables, seed_demo

    if not will_seed(src, conn):
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
        json_column=r.json_column,
        eras_table=e.table,
        era_id_column=e.id_column,
        era_start_column=e.start_column,
        era_end_column=e.end_column,
        era_partition_column=e.partition_column or "compartment_id",
        era_ids_per_partition=src.embedded.seed == "reference",
    )
    counts = seed_demo(conn, tables)
    eras = f", {counts['eras']} eras in {src.schema_}.{e.table}" if e.table else ""
    rows = "readings" if r.layout == "long" else "rows"  # a wide or jsonb row holds many
    notify(
        f"seeded {src.embedded.seed} data: {counts['readings']:,} {rows} in"
        f" {src.schema_}.{r.table}{eras}"
    )
    return True


def open_source(config: SourceConfig, notify: Notify) -> tuple[str, Any, Source]:
    """Connect, seed demo data where the embedded default asks for it, and check the tables."""
    dsn = resolve_dsn(config, notify)
    conn = connect(dsn)
    if config.dsn.strip() == EMBEDDED:
        seed_demo_if_missing(config, conn, notify)
    return dsn, conn, Source(config, conn, notify)
