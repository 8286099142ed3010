"""Exceptions the CLI turns into one clean line: bad input (exit 2), a database lost (exit 1)."""

from __future__ import annotations


class StreamfxError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The message names what is wrong and where (file and key path, table, column, era).
    The CLI prints it on one line, without a traceback, and exits with ``exit_code``.
    """

    exit_code = 2


class DatabaseLost(StreamfxError):
    """The database went away mid-run and did not come back within the reconnect budget.

    Eras written before it are whole; the run stops with exit status 1 (a rerun resumes).
    """

    exit_code = 1


class SinkFailed(StreamfxError):
    """A sink written by the workers themselves raised (see ``sinks.WorkerWritable``): the run
    stops with exit status 1, as when a sink fails in the run's own process; what was written
    before is whole."""

    exit_code = 1
