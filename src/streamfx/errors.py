"""The one exception type that the CLI turns into a clean, one-line error (exit status 2)."""

from __future__ import annotations


class StreamfxError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The message names what is wrong and where (file and key path, table, column, era).
    The CLI prints it on one line, without a traceback, and exits with status 2.
    """
