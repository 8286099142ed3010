"""The Parquet sink: one part file per era, composed into one wide ``features.parquet`` on close."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ...database import redact
from ...errors import StreamfxError
from ...model import EraResult, era_key
from ...names import NameStyle, safe_names
from ...version import __version__
from .. import CloseProgress, SinkContext
from ..batch import ERA, batch_features, refuse_duplicates
from .files import Location, put
from .impute import put_imputed

FEATURES_FILE = "features.parquet"
MANIFEST_FILE = "manifest.json"
NAMES_FILE = "feature_names.json"  # names: safe: each column's tsfresh name
PARTS_DIR = "parts"
FINGERPRINT_KEY = "streamfx.fingerprint"
PIPELINE_KEY = "streamfx.pipeline"  # the pipeline that wrote a part: its sink touches no other
ERAS_KEY = "streamfx.eras"  # a part's eras and their columns, as JSON
#: Values composed into features.parquet at a time (one row group): memory holds about this
#: many, whatever the number of eras in the run. Row groups of a few hundred eras or more
#: (at 5,700 columns, 128-era groups took 6× as long to write as 1,024-era ones).
CHUNK_VALUES = 4_000_000
MIN_CHUNK_ERAS = 128

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


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _plain(fields: Sequence[pa.Field]) -> list[pa.Field]:
    """Plain Arrow types (string, not large_string) so every reader sees the same schema."""
    return [f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in fields]


def _write_parquet(frame: pl.DataFrame, file: pa.NativeFile, metadata: dict[str, str]) -> None:
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    schema = pa.schema(_plain(table.schema), metadata=metadata)
    pq.write_table(table.cast(schema), file, compression="zstd")


def _wide_chunk(
    matrix: np.ndarray, valid: np.ndarray, eras: pl.DataFrame, names: list[str]
) -> pa.Table:
    """One row per era of ``eras`` (its columns first, in its order), one float64 column per
    name. Null marks a feature the era does not have (its sensor had no readings); NaN stays
    NaN (an undefined feature)."""
    head = eras.to_arrow(compat_level=pl.CompatLevel.oldest())
    by_column = matrix.T  # column-major (see _chunks): each column's values are contiguous
    complete = valid.all(axis=0)  # most columns: no null, so no mask to build
    columns = [
        pa.array(by_column[j]) if complete[j] else pa.array(by_column[j], mask=~valid[:, j])
        for j in range(len(names))
    ]
    return pa.Table.from_arrays([*head.columns, *columns], names=[*head.column_names, *names])


@dataclass(frozen=True)
class Part:
    """A part file of this sink's pipeline and what its metadata says: its eras' columns and
    its fingerprint."""

    info: pafs.FileInfo
    fingerprint: str
    eras: list[list[Any]]  # [era_id, partition, start, end, readings], times as ISO strings

    @property
    def order(self) -> tuple[int, str]:
        return (self.info.mtime_ns or 0, self.info.base_name)

    @property
    def keys(self) -> list[str]:
        """Its eras' keys (partition/era_id), in the order of ``eras``."""
        return [era_key(era[0], era[1]) for era in self.eras]


class PartWriter:
    """Writes a batch of finished eras as one part file, from the run's process or a worker.

    Parts are named ``<run>-<n>.parquet``, or ``<run>-w<token>-<n>.parquet`` when written by a
    worker (``token``: drawn in the worker's process, so workers never share a name). The
    filesystem is opened where the writer is used: it is not part of what is pickled.
    """

    name = "parquet"

    def __init__(
        self,
        path: str | Path,
        run_id: str,
        fingerprint: str,
        pipeline: str,
        *,
        worker: bool = False,
        location: Location | None = None,  # the sink's own, in the run's process
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.fingerprint = fingerprint
        self.pipeline = pipeline
        self.worker = worker
        self.parts = 0
        self._location = location
        self._prefix = ""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_location": None, "_prefix": ""}

    def write(self, results: Sequence[EraResult]) -> int:
        """One part: ``era_id, name, value`` per feature (``era_id`` the era's key, ``name``
        ``sensor__feature``), the eras' own columns in its metadata. Parts stay long, so composing costs memory in
        proportion to a chunk's values, not to eras × columns; the wide table is built on close.
        """
        if not results:
            return 0
        long = batch_features(results).select(
            ERA, name=pl.col("sensor") + "__" + pl.col("feature"), value="value"
        )
        if long["name"].null_count():
            era = results[long.filter(pl.col("name").is_null())[ERA][0]].era.key
            raise StreamfxError(f"era {era!r}: features with a null sensor or feature name")
        if long.group_by(ERA).agg(pl.col("name").n_unique() < pl.len())["name"].any():
            refuse_duplicates(long, ["name"], results)
        ids = pl.Series([r.era.key for r in results], dtype=pl.String)
        frame = pl.DataFrame(
            {"era_id": ids.gather(long[ERA]), "name": long["name"], "value": long["value"]}
        )
        eras = [
            [
                r.era.id,
                r.era.partition,
                _utc(r.era.start).isoformat(),
                _utc(r.era.end).isoformat(),
                r.readings,
            ]
            for r in results
        ]
        metadata = {
            PIPELINE_KEY: self.pipeline,
            FINGERPRINT_KEY: self.fingerprint,
            ERAS_KEY: json.dumps(eras),
        }
        if self._location is None:
            self._location = Location(self.path)
        if not self._prefix:
            run = _UNSAFE.sub("_", self.run_id)
            self._prefix = f"{run}-w{uuid.uuid4().hex[:8]}" if self.worker else run
        self.parts += 1
        path = self._location.path(PARTS_DIR, f"{self._prefix}-{self.parts:06d}.parquet")
        put(self._location.fs, path, lambda out: _write_parquet(frame, out, metadata))
        return len(results)


class ParquetSink:
    """Writes a ``parts/<run>-<n>.parquet`` per batch; on close ``features.parquet`` (composed
    chunk by chunk, so memory holds a chunk of eras, never the run) + ``manifest.json``.

    ``path`` is a local folder or a URI (see :class:`Location`); every file goes through
    :func:`put`, so each is replaced whole.
    """

    name = "parquet"

    def __init__(
        self,
        path: str | Path,
        run: SinkContext,
        *,
        variance_threshold: float | None = None,
        names: NameStyle = "tsfresh",
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
        self.fingerprint = run.fingerprint
        self.pipeline = run.pipeline
        self.run_id = run.run_id
        self.variance_threshold = variance_threshold
        self.names = names
        self.impute = run.impute  # stages.extract.impute: the parts keep raw values
        self.settings = dict(run.settings)
        self.report_folder = path  # the run report goes to runs/ beside the features
        self._report: CloseProgress = lambda done, total: None
        self._check_manifest()
        self._writer = PartWriter(
            path, self.run_id, self.fingerprint, self.pipeline, location=self.location
        )

    def write(self, results: Sequence[EraResult]) -> int:
        return self._writer.write(results)

    def report_close_to(self, report: CloseProgress) -> None:
        """Composing features.parquet tells ``report`` the eras composed so far (twice over
        with a variance threshold: its pass over the eras counts too)."""
        self._report = report

    def worker_writer(self) -> PartWriter:
        """A writer of parts for the workers: theirs are named by a token of their process."""
        return PartWriter(
            self.location.portable, self.run_id, self.fingerprint, self.pipeline, worker=True
        )

    def _check_manifest(self) -> None:
        """Refuse a folder whose ``manifest.json`` another pipeline (or not streamfx) wrote:
        this sink would replace that pipeline's ``features.parquet`` and manifest with its own.
        Checked when the sink starts and again before it composes."""
        try:
            with self.fs.open_input_stream(self.location.path(MANIFEST_FILE)) as file:
                text = file.read().decode(errors="replace")
        except FileNotFoundError:
            return
        try:
            owner = json.loads(text).get("pipeline")
        except (ValueError, AttributeError):
            owner = None
        if owner != self.pipeline:
            whose = f"pipeline {owner!r}" if isinstance(owner, str) else "not streamfx"
            raise StreamfxError(
                f"sinks.parquet.path: {self.location.show()} holds the features of {whose}"
                f" ({MANIFEST_FILE}): give pipeline {self.pipeline!r} a folder of its own"
            )

    def _parts(self) -> list[Part]:
        """The part files this sink's pipeline wrote, with what their Parquet metadata says (no
        data read). Any other file in ``parts/`` (a user's, another pipeline's, one that is not
        Parquet) is neither composed nor removed."""
        found = []
        selector = pafs.FileSelector(self.location.path(PARTS_DIR), allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if not (info.is_file and info.base_name.endswith(".parquet")):
                continue
            try:
                meta = pq.read_schema(info.path, filesystem=self.fs).metadata or {}
            except (OSError, pa.ArrowException):  # not Parquet, or not readable: not ours
                continue
            if meta.get(PIPELINE_KEY.encode(), b"").decode() != self.pipeline:
                continue
            eras = json.loads(meta.get(ERAS_KEY.encode(), b"[]"))
            fingerprint = meta.get(FINGERPRINT_KEY.encode(), b"").decode()
            found.append(Part(info, fingerprint, eras))
        return found

    def done_eras(self) -> set[str]:
        """Eras in parts written by a pipeline with the same feature fingerprint."""
        return {
            key
            for part in self._parts()
            if part.fingerprint == self.fingerprint
            for key in part.keys
        }

    def _current(self) -> tuple[pl.DataFrame, dict[str, Part]]:
        """The eras to compose (era columns, sorted by partition, start, era_id) and the part
        holding each one's newest rows. This pipeline's parts of another configuration are
        removed, and so are its parts whose every era was written again since."""
        newest: dict[str, Part] = {}
        current = []
        for part in self._parts():
            if part.fingerprint != self.fingerprint:
                self.fs.delete_file(part.info.path)  # stale: other features, sensors or profiles
            else:
                current.append(part)
        current.sort(key=lambda part: part.order)
        rows: dict[str, list[Any]] = {}
        for part in current:  # oldest first: a later part of an era wins
            for key, era in zip(part.keys, part.eras, strict=True):
                newest[key] = part
                rows[key] = era
        for part in current:
            if all(newest[key] is not part for key in part.keys):
                self.fs.delete_file(part.info.path)  # every era in it was written again since
        eras = (
            pl.DataFrame(
                list(rows.values()),
                schema=["era_id", "partition", "start", "end", "readings"],
                orient="row",
            ).with_columns(
                pl.col("era_id").cast(pl.String),
                pl.col("partition").cast(pl.String),
                pl.col("start").str.to_datetime(time_unit="us", time_zone="UTC"),
                pl.col("end").str.to_datetime(time_unit="us", time_zone="UTC"),
                pl.col("readings").cast(pl.Int64),
            )
            if rows
            else pl.DataFrame(schema=ERA_SCHEMA)
        )
        return eras.sort(["partition", "start", "era_id"], nulls_last=False), newest

    def _chunks(
        self, eras: pl.DataFrame, newest: dict[str, Part], names: list[str]
    ) -> Iterator[tuple[pl.DataFrame, np.ndarray, np.ndarray]]:
        """(eras, matrix, validity) for a chunk of eras at a time (about CHUNK_VALUES values),
        in the final row order: ``matrix[i, j]`` is era i's value of ``names[j]`` (NaN when
        absent), ``validity`` False where the era has no such feature or a null value."""
        size = max(MIN_CHUNK_ERAS, CHUNK_VALUES // max(len(names), 1))
        columns = pa.array(names, pa.string())
        for start in range(0, eras.height, size):
            chunk = eras.slice(start, size)
            wanted: dict[str, dict[str, int]] = {}  # part -> its eras in this chunk -> row
            pairs = zip(chunk["era_id"].to_list(), chunk["partition"].to_list(), strict=True)
            for row, key in enumerate(era_key(era_id, part) for era_id, part in pairs):
                wanted.setdefault(newest[key].info.path, {})[key] = row
            # column-major: the file is written column by column, so no transposed copy
            matrix = np.full((chunk.height, len(names)), np.nan, order="F")
            valid = np.zeros(matrix.shape, dtype=bool)
            for path, rows in wanted.items():
                self._place(path, rows, columns, matrix, valid)
            yield chunk, matrix, valid

    def _place(
        self,
        path: str,
        rows: dict[str, int],
        columns: pa.Array,
        matrix: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """Put a part's values of the eras in ``rows`` into their cells. Era ids and names are
        read dictionary-encoded, so each distinct one is looked up once, not once per value."""
        with self.fs.open_input_file(path) as file:
            table = pq.read_table(
                file, columns=["era_id", "name", "value"], read_dictionary=["era_id", "name"]
            )
        table = table.unify_dictionaries().combine_chunks()
        if table.num_rows == 0:
            return
        era, name, value = (table[column].chunk(0) for column in table.column_names)
        era_rows = np.array([rows.get(e, -1) for e in era.dictionary.to_pylist()], dtype=np.int64)
        name_columns = pc.fill_null(pc.index_in(name.dictionary, value_set=columns), -1)
        row = era_rows[era.indices.to_numpy()]
        column = name_columns.to_numpy()[pc.fill_null(name.indices, 0).to_numpy()]
        keep = (row >= 0) & (column >= 0) & name.is_valid().to_numpy(zero_copy_only=False)
        row, column = row[keep], column[keep]
        matrix[row, column] = value.to_numpy(zero_copy_only=False)[keep]
        valid[row, column] = value.is_valid().to_numpy(zero_copy_only=False)[keep]

    def _names(self, newest: dict[str, Part]) -> list[str]:
        """Every feature name of the current parts, sorted (only their name column is read)."""
        names: set[str] = set()
        for part in {p.info.path: p for p in newest.values()}.values():
            with self.fs.open_input_file(part.info.path) as file:
                column = pq.read_table(file, columns=["name"], read_dictionary=["name"])["name"]
            for chunk in column.chunks:
                names.update(n for n in chunk.dictionary.to_pylist() if n is not None)
        return sorted(names)

    def _dropped(
        self, chunks: Iterator[tuple[pl.DataFrame, np.ndarray, np.ndarray]], names: list[str]
    ) -> list[str]:
        """Feature columns whose variance across eras is <= threshold or that hold no value
        (population variance, ignoring null and NaN; merged over ``chunks``, ``_chunks``'s of
        ``names``)."""
        if self.variance_threshold is None or not names:
            return []
        count = np.zeros(len(names))
        mean = np.zeros(len(names))
        m2 = np.zeros(len(names))
        for _, matrix, valid in chunks:
            present = valid & ~np.isnan(matrix)  # NaN (an undefined feature) is no value
            n = present.sum(axis=0)
            x = np.where(present, matrix, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                chunk_mean = np.where(n > 0, x.sum(axis=0) / n, 0.0)
                chunk_m2 = (np.where(present, matrix - chunk_mean, 0.0) ** 2).sum(axis=0)
                total = count + n
                delta = chunk_mean - mean
                mean = np.where(total > 0, mean + delta * n / np.maximum(total, 1), 0.0)
                m2 = m2 + chunk_m2 + delta**2 * count * n / np.maximum(total, 1)
            count = total
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = m2 / count
        return [
            name
            for name, n, var in zip(names, count, variance, strict=True)
            if n == 0 or var <= self.variance_threshold
        ]

    def close(self) -> str:
        self._check_manifest()  # another pipeline may have composed here since this one began
        eras, newest = self._current()
        names = self._names(newest)
        passes = 1 if self.variance_threshold is None or not names else 2
        done = 0

        def chunks(wanted: list[str]) -> Iterator[tuple[pl.DataFrame, np.ndarray, np.ndarray]]:
            nonlocal done
            for chunk in self._chunks(eras, newest, wanted):
                yield chunk
                done += chunk[0].height
                self._report(done, passes * eras.height)

        dropped = self._dropped(chunks(names), names)
        gone = set(dropped)
        kept = [name for name in names if name not in gone]
        columns = safe_names(kept) if self.names == "safe" else kept
        schema = _wide_schema(columns, self._file_metadata())

        options = {
            "compression": "zstd",
            "use_dictionary": list(ERA_SCHEMA),
            "write_statistics": list(ERA_SCHEMA),
        }

        def write(out: pa.NativeFile) -> None:
            with pq.ParquetWriter(out, schema, **options) as writer:
                for chunk, matrix, valid in chunks(kept):
                    writer.write_table(_wide_chunk(matrix, valid, chunk, columns).cast(schema))

        target = self.location.path(FEATURES_FILE)
        if self.impute == "tsfresh":
            put_imputed(self.fs, target, write, columns, CHUNK_VALUES, **options)
        else:
            put(self.fs, target, write)
        self._write_names(dict(zip(columns, kept, strict=True)))
        manifest = {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "streamfx_version": __version__,
            "fingerprint": self.fingerprint,
            "file": FEATURES_FILE,
            "rows": eras.height,
            "features": len(kept),
            "eras": [
                era_key(era_id, part)
                for era_id, part in zip(eras["era_id"], eras["partition"], strict=True)
            ],
            "selection": {"variance_threshold": self.variance_threshold, "dropped": dropped},
            "impute": self.impute,
            "names": self.names,
            "settings": self.settings,
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
        put(self.fs, self.location.path(MANIFEST_FILE), lambda out: out.write(text.encode()))
        target = self.location.show(FEATURES_FILE)
        return f"parquet: {target} ({eras.height:,} eras {TIMES} {len(kept):,} features)"

    def _write_names(self, tsfresh_names: dict[str, str]) -> None:
        """With ``names: safe``, feature_names.json: each column -> its tsfresh name, in the
        file's order; otherwise none (a file left by an earlier run would no longer be true)."""
        path = self.location.path(NAMES_FILE)
        if self.names != "safe":
            if self.fs.get_file_info(path).type != pafs.FileType.NotFound:
                self.fs.delete_file(path)
            return
        text = json.dumps(tsfresh_names, indent=2, ensure_ascii=False) + "\n"
        put(self.fs, path, lambda out: out.write(text.encode()))

    def _file_metadata(self) -> dict[str, str]:
        """What features.parquet says of itself: run, fingerprint, version, feature settings."""
        return {
            "streamfx.pipeline": self.pipeline,
            "streamfx.run_id": self.run_id,
            "streamfx.fingerprint": self.fingerprint,
            "streamfx.version": __version__,
            "streamfx.settings": json.dumps(self.settings, sort_keys=True, default=str),
        }


def _wide_schema(names: list[str], metadata: dict[str, str]) -> pa.Schema:
    """The era columns (plain Arrow types every reader shares), then one float64 per name."""
    era = pl.DataFrame(schema=ERA_SCHEMA).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
    floats = [pa.field(name, pa.float64()) for name in names]
    return pa.schema([*_plain(era), *floats], metadata=metadata)
