"""One run of a pipeline at a time: a PostgreSQL advisory lock in the database it reads.

Two runs of one pipeline would compute the same eras and write them at once (the second's
rows colliding with the first's). So a run takes a session-level advisory lock, keyed by a
hash of the pipeline's name, on a connection of its own that lives as long as the run: the
server releases it when that session ends, however the run ends (even ``kill -9``). The
source database holds it, since every pipeline has one, whatever its sinks; a read-only
login can take advisory locks. The holder names itself in its session's ``application_name``
(run id, pid, host), which a second run reads from ``pg_stat_activity`` to say who holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from ..database import connect
from ..errors import StreamfxError

#: How often a run started with ``--wait`` tries the lock again, in seconds.
POLL_S = 1.0
#: PostgreSQL keeps this many bytes of an application_name.
NAME_BYTES = 63


def lock_key(pipeline: str) -> int:
    """The advisory lock's key: a signed 64-bit hash of the pipeline's name."""
    digest = hashlib.sha256(f"streamfx run {pipeline}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class RunLock:
    """The pipeline's lock, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, dsn: str, pipeline: str, run_id: str) -> None:
        self.pipeline = pipeline
        self.key = lock_key(pipeline)
        self.conn: Any = connect(dsn)
        holder = f"streamfx run {run_id} pid {os.getpid()} on {socket.gethostname()}"
        self._sql(
            "SELECT set_config('application_name', $1, false)",
            holder.encode()[:NAME_BYTES].decode(errors="ignore"),
        )

    def acquire(self, wait: bool, notify: Callable[[str], None]) -> None:
        """Take the lock, or (``wait``) wait for it; else raise naming the run that holds it."""
        told = False
        while not self._sql("SELECT pg_try_advisory_lock($1)", self.key)[0][0]:
            holder = self.holder()
            if not wait:
                self.release()
                raise StreamfxError(
                    f"pipeline {self.pipeline!r} is already running ({holder}): "
                    "run it again when that run ends, or pass --wait"
                )
            if not told:
                notify(f"waiting for the other run of pipeline {self.pipeline!r} ({holder})")
                told = True
            time.sleep(POLL_S)

    def holder(self) -> str:
        """Who holds the lock, as its session says: application_name, since when."""
        rows = self._sql(
            "SELECT a.application_name, to_char(a.backend_start AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD HH24:MI:SS UTC') FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid::bigint = $1 AND l.objid::bigint = $2",
            (self.key >> 32) & 0xFFFFFFFF,
            self.key & 0xFFFFFFFF,
        )
        if not rows:
            return "a run that has just ended"
        name, since = rows[0]
        return f"{name or 'a session without a name'}, since {since or 'unknown'}"

    def release(self) -> None:
        """End the lock's session: the server releases the lock with it."""
        with contextlib.suppress(Exception):
            self.conn.close()

    def _sql(self, query: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(query, parameters=parameters)
            rows = cur.fetchall()
        self.conn.commit()
        return rows
