"""Exceptions the CLI turns into one clean line: bad input (exit 2), a database lost (exit 1);
and the Python API's bad input, a ``ValueError`` as in tsfresh."""

from __future__ import annotations


class StreamfxError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The message names what is wrong and where (file and key path, table, column, era).
    The CLI prints it on one line, without a traceback, and exits with ``exit_code``.
    """

    exit_code = 2


class InvalidInput(StreamfxError, ValueError):
    """Bad input to the Python API (``streamfx.extract_features`` and its companions).

    A ``ValueError`` too, as tsfresh raises, so code written to catch tsfresh's errors catches
    streamfx's. ``StreamfxError`` itself is none: pydantic takes a ``ValueError`` raised inside
    a validator for a validation error of its own, which would reword the CLI's messages.
    """


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
