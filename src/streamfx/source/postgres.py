"""Read eras and their readings from PostgreSQL as Arrow record batches, in one long schema.

Every identifier comes from pipeline.yaml, so each is checked against the catalog and quoted;
era bounds and partitions are bound parameters. Each era's readings stream with
``fetch_record_batch`` and are normalized batch by batch with polars into
``model.READINGS_SCHEMA``; the readings table is never read whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from ..database import primary_key, qualified, quote_ident, table_columns
from ..errors import StreamfxError
from ..model import READINGS_SCHEMA, Era
from .config import SourceConfig, check_window_count, window_count

_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
_NUMERIC_TYPES = ("smallint", "integer", "bigint", "real", "double precision", "numeric")
_JSON_TYPES = ("jsonb", "json")
_UTC = dt.timezone.utc


class Source:
    """The readings and eras tables of one pipeline, checked against the database on creation.

    ``notify`` receives what the era analysis finds wrong with the data (JSON values that are
    not numbers); reading eras reports nothing, so workers may leave it out."""

    def __init__(
        self, config: SourceConfig, conn: Any, notify: Callable[[str], None] = lambda _: None
    ) -> None:
        self.config = config
        self.conn = conn
        self.notify = notify
        self.readings = config.readings
        self.eras = config.eras
        self.schema = config.schema_
        self.readings_table = qualified(self.schema, self.readings.table)
        self.readings_columns = self._columns("source.readings", self.readings.table)
        self.era_columns: dict[str, str] = {}
        if self.eras.table:
            self.era_columns = self._columns("source.eras", self.eras.table)
        self.sensors = self._check()

    # -- checks ---------------------------------------------------------------------------

    def _columns(self, where: str, table: str) -> dict[str, str]:
        columns = table_columns(self.conn, self.schema, table)
        if columns is None:
            raise StreamfxError(f"{where}.table: table {self.schema}.{table} does not exist")
        return columns

    def _need(self, where: str, table: str, columns: dict[str, str], name: str, types=None) -> None:
        if name not in columns:
            raise StreamfxError(
                f"{where}: column {name!r} not found in table {self.schema}.{table} "
                f"(columns: {', '.join(columns)})"
            )
        if types and columns[name] not in types:
            raise StreamfxError(
                f"{where}: column {self.schema}.{table}.{name} has type {columns[name]}; "
                f"expected one of: {', '.join(types)}"
            )

    def _check(self) -> list[str] | None:
        """Check every configured column; return the sensors to read: the wide layout's
        columns, else ``sensors:`` (None: every sensor name or JSON key found)."""
        r, cols = self.readings, self.readings_columns
        self._need("source.readings.time_column", r.table, cols, r.time_column, _TIME_TYPES)
        if r.partition_column:
            self._need("source.readings.partition_column", r.table, cols, r.partition_column)
        if self.eras.table:
            e, ecols = self.eras, self.era_columns
            self._need("source.eras.id_column", e.table, ecols, e.id_column)
            self._need("source.eras.start_column", e.table, ecols, e.start_column, _TIME_TYPES)
            self._need("source.eras.end_column", e.table, ecols, e.end_column, _TIME_TYPES)
            if e.partition_column:
                self._need("source.eras.partition_column", e.table, ecols, e.partition_column)
            if bool(e.partition_column) != bool(r.partition_column):
                raise StreamfxError(
                    "source: set partition_column on both readings and eras, or on neither"
                )
        if r.layout == "long":
            self._need("source.readings.sensor_column", r.table, cols, r.sensor_column)
            self._need(
                "source.readings.value_column", r.table, cols, r.value_column, _NUMERIC_TYPES
            )
            return r.sensors
        if r.layout == "jsonb":
            self._need("source.readings.json_column", r.table, cols, r.json_column, _JSON_TYPES)
            version = self._query("SELECT current_setting('server_version_num')::int", None)
            if version.column(0)[0].as_py() < 160000:  # pg_input_is_valid, see _json_number
                raise StreamfxError("source.readings.layout: jsonb needs PostgreSQL 16 or newer")
            return list(r.sensors) if r.sensors is not None else self._json_keys()
        if r.sensors is not None:
            for sensor in r.sensors:
                self._need("source.readings.sensors", r.table, cols, sensor, _NUMERIC_TYPES)
            return list(r.sensors)
        skip = {r.time_column, r.partition_column} | primary_key(self.conn, self.schema, r.table)
        sensors = [
            c
            for c, t in cols.items()
            if t in _NUMERIC_TYPES and c not in skip and c != "id" and not c.endswith("_id")
        ]
        if not sensors:
            raise StreamfxError(
                f"source.readings: wide table {self.schema}.{r.table} has no numeric sensor columns"
            )
        return sensors

    def _json_keys(self) -> list[str]:
        """Every key of the jsonb column's objects: the sensors, found as a wide table's are
        found in the catalog (one scan of the documents, about 0.1 s per 34,000 rows)."""
        r = self.readings
        doc = f"r.{quote_ident(r.json_column)}::jsonb"
        keys = self._query(
            f"SELECT DISTINCT k FROM {self.readings_table} r CROSS JOIN LATERAL"
            f" jsonb_object_keys(CASE WHEN jsonb_typeof({doc}) = 'object' THEN {doc} END) AS k"
            " ORDER BY 1",
            None,
        )
        if not keys.num_rows:
            raise StreamfxError(
                f"source.readings: jsonb column {self.schema}.{r.table}.{r.json_column} holds"
                " no objects with keys (sensors)"
            )
        return keys.column(0).to_pylist()

    # -- eras -----------------------------------------------------------------------------

    def list_eras(self) -> list[Era]:
        """All eras of the pipeline in time order: from the era table or as fixed windows."""
        eras = self._table_eras() if self.eras.table else self._window_eras()
        if not eras:
            what = f"era table {self.schema}.{self.eras.table}" if self.eras.table else "readings"
            span = " in the configured from/to range" if self.eras.from_ or self.eras.to else ""
            raise StreamfxError(f"source.eras: no eras found in {what}{span}")
        return eras

    def _table_eras(self) -> list[Era]:
        e = self.eras
        partition = f"{quote_ident(e.partition_column)}::text" if e.partition_column else "NULL"
        start, end = quote_ident(e.start_column), quote_ident(e.end_column)
        where, params = [], []
        if e.from_:
            params.append(e.from_)
            where.append(f"{end} > ${len(params)}::timestamptz")
        if e.to:
            params.append(e.to)
            where.append(f"{start} < ${len(params)}::timestamptz")
        sql = (
            f"SELECT {quote_ident(e.id_column)}::text AS id, {start}::timestamptz AS start,"
            f" {end}::timestamptz AS end, {partition} AS partition"
            f" FROM {qualified(self.schema, e.table)}"
            f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY 2, 1"
        )
        table = self._query(sql, tuple(params) or None)
        eras = [
            Era(id=row["id"], start=row["start"], end=row["end"], partition=row["partition"])
            for row in table.to_pylist()
        ]
        for era in eras:
            if era.id is None or era.start is None or era.end is None or era.end <= era.start:
                raise StreamfxError(
                    f"source.eras: era {era.id!r} in {self.schema}.{e.table} has an empty or "
                    f"missing time span ({era.start} to {era.end})"
                )
        self._refuse_repeats(eras)
        return eras

    def _refuse_repeats(self, eras: list[Era]) -> None:
        """An era is its (partition, era_id): ids may repeat across partitions, not within one
        (two spans of one name would overwrite each other's features)."""
        seen: set[str] = set()
        repeated: list[str] = []
        for era in eras:
            if era.key in seen and era.key not in repeated:
                repeated.append(era.key)
            seen.add(era.key)
        if repeated:
            where = f"{self.schema}.{self.eras.table}"
            within = "within a partition " if self.eras.partition_column else ""
            shown = ", ".join(repeated[:10]) + (", ..." if len(repeated) > 10 else "")
            raise StreamfxError(
                f"source.eras: era id(s) repeat {within}in {where}: {shown} (an era is its"
                f" {'(partition, id)' if within else 'id'}; give each span its own id)"
            )

    def _window_eras(self) -> list[Era]:
        """Fixed windows of ``every`` covering the readings (per partition), aligned to epoch."""
        r, e = self.readings, self.eras
        time = quote_ident(r.time_column)
        part = f"{quote_ident(r.partition_column)}::text" if r.partition_column else "NULL::text"
        sql = (
            f"SELECT {part} AS partition, min({time})::timestamptz AS lo,"
            f" max({time})::timestamptz AS hi FROM {self.readings_table} GROUP BY 1 ORDER BY 1"
        )
        step = e.every
        assert step is not None
        spans = []
        for row in self._query(sql, None).to_pylist():
            if row["lo"] is not None:
                lo = e.from_ or _floor(row["lo"], step)
                spans.append((row, lo, min(e.to, row["hi"] + step) if e.to else row["hi"] + step))
        try:
            check_window_count(sum(window_count(lo, hi, step) for _, lo, hi in spans), step)
        except ValueError as exc:
            raise StreamfxError(f"source.eras.every: {exc}") from None
        eras: list[Era] = []
        for row, lo, hi in spans:
            start = lo
            while start < hi and start <= row["hi"]:
                end = min(start + step, e.to) if e.to else start + step
                if end > row["lo"]:
                    label = start.isoformat().replace("+00:00", "Z")
                    eras.append(Era(label, start, end, row["partition"]))
                start = end
        return sorted(eras, key=lambda era: (era.start, era.key))

    # -- analysis -------------------------------------------------------------------------

    def era_stats(self, eras: list[Era]) -> pl.DataFrame:
        """Readings per (era, sensor) for all eras in ONE aggregate query.

        Columns: ``era`` (the era's position in ``eras``), ``sensor``, ``readings``; eras and
        sensors without readings are absent. When no two eras of a partition overlap (fixed
        windows always, era tables usually), every reading is given the era that started last
        before it by a binary search (``width_bucket``) in its partition's sorted era starts, so
        the query takes time in proportion to the readings (and can scan them in parallel),
        whatever the number of eras: 1.3-1.7 s for 17,520 eras over 3.2 M readings on 2 cores,
        where one sort of the readings took 4.6 s. Overlapping eras are joined to the readings
        by time range instead, which costs eras x readings.

        A jsonb table's values that are not numbers are counted too and reported once per
        sensor through ``notify`` (a value in two overlapping eras is counted in both).
        """
        if not eras:
            return pl.DataFrame(schema={"era": pl.Int64, "sensor": pl.String, "readings": pl.Int64})
        order = sorted(range(len(eras)), key=lambda i: (eras[i].partition or "", eras[i].start))
        r = self.readings
        cast = self._time_cast()
        params: tuple[Any, ...] = (
            order,
            [eras[i].start for i in order],
            [eras[i].end for i in order],
            [eras[i].partition for i in order],
        )
        time = f"r.{quote_ident(r.time_column)}"
        overlapping = _overlapping(eras, order)
        part, meets = "NULL::text", "TRUE"  # how a reading's partition meets its eras'
        if r.partition_column:
            column = f"r.{quote_ident(r.partition_column)}"
            ptype = self.readings_columns[r.partition_column]
            part, meets = f"{column}::text", "m.part = e.key"
            if not overlapping and _plain_type(ptype):  # no cast per reading: 1.7 s, not 2.6
                part, meets = column, f"m.part = e.key::{ptype}"
        # (expression, its name, its type) of what is counted: the sensor column of a long
        # table, each key of a jsonb one with its value, or each sensor column of a wide one
        pairs = ""
        if r.layout == "long":
            sensor = f"r.{quote_ident(r.sensor_column)}::text"
            data = [(sensor, "sensor", "text")]
            filters = [_finite(f"r.{quote_ident(r.value_column)}"), f"{sensor} IS NOT NULL"]
            if r.sensors is not None:
                filters.append(f"{sensor} = ANY($5::text[])")
                params += (list(r.sensors),)
            counts, by = "m.sensor, count(*) AS readings", ", m.sensor"
        elif r.layout == "jsonb":
            pairs = self._json_pairs("r")
            data = [("j.key", "sensor", "text"), (_json_number("j.value"), "value", "float8")]
            filters = ["TRUE"]
            if r.sensors is not None:
                filters.append("j.key = ANY($5::text[])")
                params += (list(r.sensors),)
            counts = (
                f"m.sensor, count(*) FILTER (WHERE {_finite('m.value')}) AS readings,"
                " count(*) FILTER (WHERE m.value IS NULL) AS skipped"
            )
            by = ", m.sensor"
        else:
            data = [(f"r.{quote_ident(s)}", quote_ident(s), "float8") for s in self.sensors]
            filters = ["TRUE"]
            counts = ", ".join(
                f"count(*) FILTER (WHERE {_finite('m.' + n)}) AS {n}" for _, n, _ in data
            )
            by = ""
        values = ", ".join(f"{expr} AS {name}" for expr, name, _ in data)
        readings = (
            f"SELECT {part} AS part, {time} AS t, {values}"
            f" FROM {self.readings_table} r{pairs} WHERE {' AND '.join(filters)}"
        )
        if overlapping:  # each reading joined to every era around it
            within = f"m.t >= e.start::{cast} AND m.t < e.stop::{cast}"
            same = " AND m.part = e.part" if r.partition_column else ""
            sql = (
                "WITH e AS (SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[],"
                f" $4::text[]) AS e(era, start, stop, part)), m AS ({readings})"
                f" SELECT e.era, {counts} FROM e JOIN m ON {within}{same} GROUP BY e.era{by}"
            )
        else:  # each reading finds the era that started last before it: a binary search
            sql = (
                "WITH u AS (SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[],"
                " $4::text[]) AS u(era, start, stop, part)), e AS (SELECT coalesce(part, '') AS"
                f" key, array_agg(start::{cast} ORDER BY start) AS starts, array_agg(stop::{cast}"
                " ORDER BY start) AS stops, array_agg(era ORDER BY start) AS eras FROM u GROUP BY"
                f" 1), m AS ({readings}), b AS (SELECT m.*, width_bucket(m.t, e.starts) AS i,"
                f" e.eras, e.stops FROM m JOIN e ON {meets})"
                f" SELECT m.eras[m.i] AS era, {counts} FROM b AS m WHERE m.i > 0"
                f" AND m.t < m.stops[m.i] GROUP BY 1{by}"
            )
        # room to aggregate in memory: a hash of (era, sensor), not a sort spilled to disk
        stats = pl.from_arrow(self._query(sql, params, work_mem="256MB"))
        if r.layout == "wide":
            stats = stats.unpivot(
                index="era", on=self.sensors, variable_name="sensor", value_name="readings"
            )
        if r.layout == "jsonb":
            self._report_skipped(stats)
        return stats.filter(pl.col("readings") > 0).select(
            pl.col("era").cast(pl.Int64),
            pl.col("sensor").cast(pl.String),
            pl.col("readings").cast(pl.Int64),
        )

    # -- readings -------------------------------------------------------------------------

    def read_eras(self, eras: Sequence[Era]) -> pa.Table:
        """The readings of ``eras`` in READINGS_SCHEMA, sorted by era (in the given order),
        sensor and time; nulls, NaN and infinities dropped.

        One query for them all: a pass of many short eras costs one round trip, not one per
        era. Each era's rows are found by its own (index) scan: the eras are joined LATERAL to
        a subquery that ``OFFSET 0`` keeps from being flattened into a join, which the planner
        would answer with a scan of the whole table (345 ms instead of 1.6 ms for 8 eras)."""
        r = self.readings
        cast = self._time_cast()
        m = "streamfx_m"
        columns = [
            "e.streamfx_era AS era",
            f"{m}.{quote_ident(r.time_column)}::timestamptz AS time",
        ]
        if r.layout == "long":
            columns += [
                f"{m}.{quote_ident(r.sensor_column)}::text AS sensor",
                f"{m}.{quote_ident(r.value_column)}::float8 AS value",
            ]
        elif r.layout == "jsonb":  # each sensor's value looked up: a wide row per document
            doc = f"{m}.{quote_ident(r.json_column)}::jsonb"
            columns += [
                f"{_json_number(f'({doc} ->> ($5::text[])[{i + 1}])')} AS s{i}"
                for i in range(len(self.sensors))
            ]
        else:
            columns += [f"{m}.{quote_ident(s)}::float8 AS {quote_ident(s)}" for s in self.sensors]
        params: list[Any] = [
            list(range(len(eras))),
            [era.start for era in eras],
            [era.end for era in eras],
            [era.partition for era in eras],
        ]
        time = f"{m}.{quote_ident(r.time_column)}"
        where = [
            f"{time} >= e.streamfx_lo::{cast}",
            f"{time} < e.streamfx_hi::{cast}",
        ]
        if r.partition_column:
            ptype = self.readings_columns[r.partition_column]
            part = f"{m}.{quote_ident(r.partition_column)}"
            where.append(
                f"{part} = e.streamfx_part::{ptype}"
                if _plain_type(ptype)
                else f"{part}::text = e.streamfx_part"
            )
        if r.layout == "jsonb":  # the keys, bound: names from the data are never SQL text
            params.append(list(self.sensors))
        elif r.sensors is not None and r.layout == "long":
            params.append(list(r.sensors))
            where.append(f"{m}.{quote_ident(r.sensor_column)}::text = ANY($5::text[])")
        sql = (
            f"SELECT {', '.join(columns)} FROM unnest($1::int[], $2::timestamptz[],"
            " $3::timestamptz[], $4::text[]) AS e(streamfx_era, streamfx_lo, streamfx_hi,"
            f" streamfx_part) CROSS JOIN LATERAL (SELECT * FROM {self.readings_table} AS {m}"
            f" WHERE {' AND '.join(where)} OFFSET 0) AS {m}"
        )
        parts = []
        with self._values_in_range(), self.conn.cursor() as cur:
            cur.execute(sql, parameters=tuple(params))
            for batch in cur.fetch_record_batch():
                parts.append(self._normalize(pl.from_arrow(batch)))
        self.conn.commit()
        frame = pl.concat(parts) if parts else pl.DataFrame(schema=_PASS_SCHEMA)
        frame = frame.sort("era", "sensor", "time")
        ids = pl.Series("era_id", [era.key for era in eras], dtype=pl.String)
        frame = frame.select(ids.gather(frame["era"]), pl.exclude("era"))
        return frame.to_arrow().cast(READINGS_SCHEMA)

    def _json_pairs(self, alias: str) -> str:
        """FROM-clause tail: each key and value (as text) of the row's JSON object as ``j``;
        rows whose document is not an object (null, an array, a scalar) give none, not an
        error."""
        doc = f"{alias}.{quote_ident(self.readings.json_column)}::jsonb"
        return (
            f" CROSS JOIN LATERAL jsonb_each_text(CASE WHEN jsonb_typeof({doc}) = 'object'"
            f" THEN {doc} END) AS j"
        )

    def _report_skipped(self, stats: pl.DataFrame) -> None:
        """One notice per sensor whose JSON values were not all numbers: those are skipped."""
        r = self.readings
        skipped = stats.group_by("sensor").agg(pl.col("skipped").sum())
        for sensor, n in skipped.filter(pl.col("skipped") > 0).sort("sensor").iter_rows():
            self.notify(
                f"source.readings: skipped {n:,} values of sensor {sensor!r} in "
                f"{self.schema}.{r.table}.{r.json_column} that are not numbers (null, booleans,"
                " other strings, objects, arrays, numbers beyond double precision)"
            )

    def _time_cast(self) -> str:
        """Era bounds are cast to the time column's own type, so an index on it is used."""
        return self.readings_columns[self.readings.time_column]

    def _normalize(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self.readings.layout == "jsonb":  # columns s0, s1, ... hold the sensors' values
            frame = frame.rename({f"s{i}": sensor for i, sensor in enumerate(self.sensors)})
        if self.readings.layout in ("wide", "jsonb"):
            frame = frame.unpivot(index=["era", "time"], variable_name="sensor", value_name="value")
        return (
            frame.lazy()
            .filter(
                pl.col("value").is_finite()
                & pl.col("sensor").is_not_null()
                & pl.col("time").is_not_null()
            )
            .select(
                pl.col("era").cast(pl.Int32),
                pl.col("sensor").cast(pl.String),
                pl.col("time").cast(pl.Datetime("us", "UTC")),
                pl.col("value").cast(pl.Float64),
            )
            .collect()
        )

    def _query(
        self, sql: str, params: tuple[Any, ...] | None, *, work_mem: str | None = None
    ) -> pa.Table:
        with self._values_in_range(), self.conn.cursor() as cur:
            if work_mem is not None:  # for this transaction only
                cur.execute(f"SET LOCAL work_mem = '{work_mem}'")
            cur.execute(sql, parameters=params)
            table = cur.fetch_arrow_table()
        self.conn.commit()
        return table

    @contextlib.contextmanager
    def _values_in_range(self) -> Iterator[None]:
        """A ``numeric`` reading beyond double precision (1e400) fails the cast to float8;
        say so in one line, not with PostgreSQL's message of its 400 digits."""
        try:
            yield
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != "22003" and "SQLSTATE: 22003" not in str(exc):
                raise
            with contextlib.suppress(Exception):
                self.conn.rollback()
            r = self.readings
            key = {"long": "value_column", "wide": "sensors"}.get(r.layout, "layout")
            raise StreamfxError(
                f"source.readings.{key}: {self.schema}.{r.table} holds a value beyond double"
                " precision (about 1.8e308), the type streamfx reads values as"
            ) from None


_PASS_SCHEMA = {
    "era": pl.Int32,
    "sensor": pl.String,
    "time": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
}


def _plain_type(type_name: str) -> bool:
    """Catalog type names that can be used directly in a cast (not USER-DEFINED, ARRAY...)."""
    return type_name.replace(" ", "").isalpha() and type_name not in ("USER-DEFINED", "ARRAY")


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=_UTC)
    return epoch + ((moment - epoch) // step) * step


def _overlapping(eras: list[Era], order: list[int]) -> bool:
    """Whether two eras of one partition overlap (``order``: by partition, then start)."""
    for previous, current in itertools.pairwise(order):
        a, b = eras[previous], eras[current]
        if a.partition == b.partition and b.start < a.end:
            return True
    return False


def _json_number(text: str) -> str:
    """SQL: the text of a JSON value (``jsonb_each_text``) as float8, else NULL, never an error.

    Numbers and numeric strings are read; ``pg_input_is_valid`` (PostgreSQL 16) refuses what
    the cast would fail on: ``abc``, ``true``, ``{...}``, ``[...]``, ``1e400``. JSON null is
    NULL already."""
    return f"CASE WHEN pg_input_is_valid({text}, 'float8') THEN {text}::float8 END"


def _finite(expr: str) -> str:
    """SQL condition: a reading that counts (not null, not NaN, not infinite)."""
    return f"{expr} IS NOT NULL AND {expr}::float8 NOT IN ('NaN', 'Infinity', '-Infinity')"
