"""The Parquet sink: one part file per era, composed into one wide ``features.parquet`` on close."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ...database import redact
from ...errors import StreamfxError
from ...model import EraResult
from ...version import __version__
from .files import Location, put

FEATURES_FILE = "features.parquet"
MANIFEST_FILE = "manifest.json"
PARTS_DIR = "parts"
FINGERPRINT_KEY = "streamfx.fingerprint"
ERA_KEY = "streamfx.era_id"

#: The per-era columns that come first in every part and in the final table.
ERA_SCHEMA: dict[str, pl.DataType] = {
    "era_id": pl.String(),
    "partition": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "readings": pl.Int64(),
}
ERA_COLUMNS = list(ERA_SCHEMA)

TIMES = "\N{MULTIPLICATION SIGN}"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(era_id: str) -> str:
    """A file-system-safe part name, unique per ``era_id``: readable slug + short hash."""
    slug = _UNSAFE.sub("_", era_id).strip("._-")[:60] or "era"
    digest = hashlib.sha256(era_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}-{digest}"


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _write_parquet(
    frame: pl.DataFrame,
    file: pa.NativeFile,
    metadata: dict[str, str] | None = None,
    *,
    wide: bool = False,
) -> None:
    """Plain Arrow types (string, not large_string/view) so every reader sees the same schema.

    ``wide``: thousands of float columns; dictionaries and statistics only for the era columns
    (where readers filter), which halves the write time and the file size.
    """
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    schema = pa.schema(
        [f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema],
        metadata=metadata,
    )
    era_columns = [c for c in ERA_SCHEMA if c in table.column_names]
    options = {"use_dictionary": era_columns, "write_statistics": era_columns} if wide else {}
    pq.write_table(table.cast(schema), file, compression="zstd", **options)


def era_part(result: EraResult) -> pl.DataFrame:
    """One era in long form: era columns, then (name, value) per ``sensor__feature``.

    Parts stay long so composing many eras costs memory in proportion to their values, not to
    eras × columns; the wide table is pivoted once, on close.
    """
    era = result.era
    long = pl.from_arrow(result.features.select(["sensor", "feature", "value"]))
    assert isinstance(long, pl.DataFrame)
    long = long.select(
        name=pl.col("sensor") + "__" + pl.col("feature"), value=pl.col("value").cast(pl.Float64)
    )
    if long["name"].null_count():
        raise StreamfxError(f"era {era.id!r}: features with a null sensor or feature name")
    duplicated = long.filter(pl.col("name").is_duplicated())["name"]
    if duplicated.len():
        raise StreamfxError(f"era {era.id!r}: duplicate feature {duplicated[0]!r}")
    if long.height == 0:  # an era without features still gets its row
        long = pl.DataFrame({"name": [None], "value": [None]}, schema=PART_VALUES)
    head = {
        "era_id": era.id,
        "partition": era.partition,
        "start": _utc(era.start),
        "end": _utc(era.end),
        "readings": result.readings,
    }
    return long.select(
        *(pl.lit(v, ERA_SCHEMA[k]).alias(k) for k, v in head.items()), "name", "value"
    )


PART_VALUES = {"name": pl.String(), "value": pl.Float64()}


def _pivot(values: pl.DataFrame, era_ids: pl.Series) -> pl.DataFrame:
    """Long (era_id, name, value) -> one row per ``era_ids`` entry, one column per name (sorted).

    A dense eras x names matrix filled by index: polars' generic pivot takes seconds for the
    thousands of columns a feature table has, this takes milliseconds. Null marks a feature
    the era does not have (its sensor had no readings); NaN stays NaN (undefined feature).
    """
    names = values["name"].unique().sort()
    rows = values.join(
        pl.DataFrame({"era_id": era_ids, "row": pl.int_range(era_ids.len(), eager=True)}),
        on="era_id",
    ).join(pl.DataFrame({"name": names, "col": pl.int_range(names.len(), eager=True)}), on="name")
    matrix = np.full((era_ids.len(), names.len()), np.nan)
    valid = np.zeros(matrix.shape, dtype=bool)
    row, col = rows["row"].to_numpy(), rows["col"].to_numpy()
    matrix[row, col] = rows["value"].fill_null(np.nan).to_numpy()
    valid[row, col] = rows["value"].is_not_null().to_numpy()
    columns = [pa.array(matrix[:, j], mask=~valid[:, j]) for j in range(names.len())]
    wide = pl.from_arrow(pa.Table.from_arrays(columns, names=names.to_list()))
    assert isinstance(wide, pl.DataFrame)
    return wide


class ParquetSink:
    """Writes ``parts/<era>.parquet`` per era; on close ``features.parquet`` + ``manifest.json``.

    ``path`` is a local folder or a URI (see :class:`Location`); every file goes through
    :func:`put`, so each is replaced whole.
    """

    name = "parquet"

    def __init__(
        self,
        path: str | Path,
        *,
        pipeline: str,
        run_id: str,
        variance_threshold: float | None = None,
        fingerprint: str = "",
    ) -> None:
        try:
            self.location = Location(path)
            self.fs = self.location.fs
            self.fs.create_dir(self.location.path(PARTS_DIR), recursive=True)
        except (OSError, pa.ArrowException) as exc:
            reason = redact(" ".join(str(exc).split()), str(path))
            raise StreamfxError(
                f"sinks.parquet.path: cannot write to {redact(str(path), str(path))}: {reason}"
            ) from exc
        self.fingerprint = fingerprint
        self.pipeline = pipeline
        self.run_id = run_id
        self.variance_threshold = variance_threshold
        self.report_folder = path  # the run report goes to runs/ beside the features

    def part_path(self, era_id: str) -> str:
        return self.location.path(PARTS_DIR, f"{safe_name(era_id)}.parquet")

    def write(self, results: Sequence[EraResult]) -> int:
        rows = [(result.era.id, era_part(result)) for result in results]
        for era_id, frame in rows:
            metadata = {FINGERPRINT_KEY: self.fingerprint, ERA_KEY: era_id}
            put(
                self.fs,
                self.part_path(era_id),
                lambda out, f=frame, m=metadata: _write_parquet(f, out, m),
            )
        return len(rows)

    def _parts(self) -> list[tuple[pafs.FileInfo, str, str]]:
        """Each part file with its era_id and fingerprint, from its Parquet metadata (no data read)."""
        found = []
        selector = pafs.FileSelector(self.location.path(PARTS_DIR), allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.is_file and info.base_name.endswith(".parquet"):
                meta = pq.read_schema(info.path, filesystem=self.fs).metadata or {}
                era = meta.get(ERA_KEY.encode(), b"").decode()
                found.append((info, era, meta.get(FINGERPRINT_KEY.encode(), b"").decode()))
        return found

    def done_eras(self) -> set[str]:
        """Eras whose part was written by a pipeline with the same feature fingerprint."""
        return {era for _, era, fp in self._parts() if fp == self.fingerprint}

    def _read(self, path: str) -> pl.DataFrame:
        with self.fs.open_input_file(path) as file:
            return pl.read_parquet(file)

    def _compose(self) -> pl.DataFrame:
        """All current parts; parts of an earlier, different configuration are removed."""
        files = []
        for info, _, fingerprint in self._parts():
            if fingerprint == self.fingerprint:
                files.append(info)
            else:
                self.fs.delete_file(info.path)  # stale: other features, sensors or profiles
        files.sort(key=lambda info: (info.mtime_ns, info.base_name))
        if not files:
            return pl.DataFrame(schema=ERA_SCHEMA)
        long = pl.concat([self._read(info.path) for info in files], how="vertical_relaxed")
        # Parts are unique per era_id by name; keep the newest should two ever collide.
        eras = long.select(*ERA_SCHEMA).unique(subset="era_id", keep="last", maintain_order=True)
        values = long.filter(pl.col("name").is_not_null()).unique(
            subset=["era_id", "name"], keep="last", maintain_order=True
        )
        eras = eras.select(*(pl.col(c).cast(t) for c, t in ERA_SCHEMA.items()))
        wide = _pivot(values, eras["era_id"])
        table = pl.concat([eras, wide], how="horizontal") if wide.width else eras
        return table.sort(["partition", "start", "era_id"], nulls_last=False)

    def _select(self, table: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
        """Drop feature columns whose variance across eras is <= threshold or that hold no value."""
        features = [c for c in table.columns if c not in ERA_SCHEMA]
        if self.variance_threshold is None or not features:
            return table, []
        stats = table.select(
            *(pl.col(c).fill_nan(None).var(ddof=0).alias(c) for c in features)
        ).row(0, named=True)
        # var is None when a column has no non-null, non-NaN value; NaN (from ±inf) is kept.
        dropped = [c for c in features if stats[c] is None or stats[c] <= self.variance_threshold]
        return table.drop(dropped), dropped

    def close(self) -> str:
        table, dropped = self._select(self._compose())
        put(
            self.fs,
            self.location.path(FEATURES_FILE),
            lambda out: _write_parquet(table, out, wide=True),
        )
        features = table.width - len(ERA_SCHEMA)
        manifest = {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "streamfx_version": __version__,
            "file": FEATURES_FILE,
            "rows": table.height,
            "features": features,
            "eras": table["era_id"].to_list(),
            "selection": {"variance_threshold": self.variance_threshold, "dropped": dropped},
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        put(self.fs, self.location.path(MANIFEST_FILE), lambda out: out.write(text.encode()))
        target = self.location.show(FEATURES_FILE)
        return f"parquet: {target} ({table.height:,} eras {TIMES} {features:,} features)"
