"""``features.parquet`` imputed as a whole (``stages.extract.impute: tsfresh``), replaced once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ...extract.impute import impute_parquet
from .files import put


def put_imputed(
    fs: pafs.FileSystem,
    path: str,
    write: Callable[[pa.NativeFile], None],
    columns: Sequence[str],
    values: int,
    **writer_options: Any,
) -> None:
    """``put`` the file ``write`` composes, with ``columns`` imputed as tsfresh's ``impute``
    would the whole table: composed beside ``path`` first (``.<name>.raw``, removed after),
    then imputed into place, about ``values`` values at a time, so readers see the old file
    or the imputed one, never the raw."""
    folder, _, name = path.rpartition("/")
    raw = f"{folder}/.{name}.raw"
    put(fs, raw, write)
    with fs.open_input_file(raw) as source:
        put(
            fs,
            path,
            lambda out: impute_parquet(source, out, columns, values, **writer_options),
        )
    fs.delete_file(raw)
