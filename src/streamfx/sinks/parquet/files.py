"""Files in a local folder or behind a pyarrow filesystem URI, each replaced whole."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from ...database import redact


class Location:
    """A folder named by a local path (relative to the current directory) or by a URI that
    ``pyarrow.fs.FileSystem.from_uri`` understands: ``file:///abs/path``, ``s3://bucket/prefix``,
    ``gs://``, ``hdfs://``, ``abfs://``. Raises pyarrow's error when the URI's filesystem is
    unknown or cannot be set up (no credentials, no libhdfs).
    """

    def __init__(self, where: str | Path) -> None:
        text = str(where)
        self.uri = "://" in text
        if self.uri:
            self.fs, root = pafs.FileSystem.from_uri(text)
            self.shown = redact(text.rstrip("/"), text)
        else:
            self.fs, root = pafs.LocalFileSystem(), os.path.abspath(text)
            self.shown = str(Path(text))
        self.root = root.rstrip("/")
        #: names this folder from any process of the run: the URI, or the absolute local path
        self.portable = text if self.uri else self.root

    def path(self, *names: str) -> str:
        """The path of ``names`` under this folder, inside ``fs``."""
        return "/".join([self.root, *names])

    def show(self, *names: str) -> str:
        """How messages name ``names`` under this folder: as the user wrote it, no password."""
        return "/".join([self.shown, *names]) if self.uri else str(Path(self.shown, *names))


#: Filesystems with an atomic rename; on the others (object stores) a file is one upload.
RENAMING = {"local", "hdfs"}


def put(fs: pafs.FileSystem, path: str, write: Callable[[pa.NativeFile], None]) -> None:
    """``write(stream)`` the file ``path`` so that a reader sees the old file or the new one.

    Local disk (and HDFS): a temp file beside ``path``, fsynced (local), renamed over ``path``.
    Object stores (S3, GCS, Azure): written in memory, then uploaded as one object; an upload is
    atomic (readers see the old object or the new one, never half) and a failed ``write`` uploads
    nothing.
    """
    if fs.type_name not in RENAMING:
        buffer = pa.BufferOutputStream()
        write(buffer)
        with fs.open_output_stream(path) as out:
            out.write(buffer.getvalue())
        return
    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        if fs.type_name == "local":
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        fs.move(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            fs.delete_file(tmp)
        raise
