"""The Parquet and PostgreSQL sinks, against real files and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import streamfx
from streamfx.database import qualified
from streamfx.errors import StreamfxError
from streamfx.model import FEATURES_SCHEMA, Era, EraResult
from streamfx.sinks import Sink, SinkContext
from streamfx.sinks.parquet import ERA_COLUMNS, ParquetSink, put
from streamfx.sinks.postgres import PostgresSink
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import streamfx as streamfx_cli
from .helpers import write_pipeline

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
TIMES = "\N{MULTIPLICATION SIGN}"


def result(
    era_id: str,
    features: dict[tuple[str, str | None], float | None],
    *,
    day: int = 0,
    partition: str | None = "c5",
    readings: int = 100,
) -> EraResult:
    era = Era(era_id, T0 + dt.timedelta(days=day), T0 + dt.timedelta(days=day + 1), partition)
    keys = list(features)
    table = pa.table(
        {
            "era_id": pa.array([era_id] * len(keys), pa.string()),
            "sensor": pa.array([k[0] for k in keys], pa.string()),
            "feature": pa.array([k[1] for k in keys], pa.string()),
            "value": pa.array(list(features.values()), pa.float64()),
        }
    )
    if all(k[1] is not None for k in keys):
        table = table.cast(FEATURES_SCHEMA)
    return EraResult(era=era, readings=readings, features=table)


def run(run_id: str, fingerprint: str = "", *, reconnect=None) -> SinkContext:
    """What a sink knows of the run it writes for (pipeline "p")."""
    return SinkContext("p", run_id, "", fingerprint, reconnect)


THREE = [
    result("e1", {("temp", "mean"): 1.0, ("temp", "max"): 3.0}, day=0),
    result("e2", {("temp", "mean"): 2.0, ("co2", "mean"): 400.0}, day=1),
    result("e0", {("co2", "mean"): 410.0, ("temp", "max"): float("nan")}, day=2, partition=None),
]


# --------------------------------------------------------------------------- Parquet


@pytest.mark.parametrize("threshold", [None, 0.0])
def test_parquet_close_reports_its_progress(tmp_path: Path, monkeypatch, threshold) -> None:
    """Composing features.parquet tells how many eras it has been through, chunk by chunk
    (the variance pass counts as a pass over the eras too): the run shows it with a rate."""
    from streamfx.sinks import ProgressiveClose
    from streamfx.sinks.parquet import sink as parquet_sink

    monkeypatch.setattr(parquet_sink, "MIN_CHUNK_ERAS", 1)
    monkeypatch.setattr(parquet_sink, "CHUNK_VALUES", 3)  # one era per chunk
    sink = ParquetSink(tmp_path / "out", run("r1"), variance_threshold=threshold)
    assert isinstance(sink, ProgressiveClose)
    sink.write(THREE)
    reports: list[tuple[int, int]] = []
    sink.report_close_to(lambda done, total: reports.append((done, total)))
    sink.close()
    passes = 1 if threshold is None else 2
    assert reports == [(done, 3 * passes) for done in range(1, 3 * passes + 1)]


def test_parquet_union_of_columns_readable_everywhere(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "out", run("r1"))
    assert isinstance(sink, Sink)
    assert sink.write(THREE) == 3
    summary = sink.close()
    file = tmp_path / "out" / "features.parquet"
    assert summary == f"parquet: {file} (3 eras {TIMES} 3 features)"

    df = pl.read_parquet(file)
    assert df.columns == [*ERA_COLUMNS, "co2__mean", "temp__max", "temp__mean"]
    assert df.schema["start"] == pl.Datetime("us", "UTC")
    assert df.schema["readings"] == pl.Int64
    # sorted by (partition, start, era_id), null partition first
    assert df["era_id"].to_list() == ["e0", "e1", "e2"]
    assert df["partition"].to_list() == [None, "c5", "c5"]
    assert df["co2__mean"].to_list() == [410.0, None, 400.0]
    assert df["temp__mean"].to_list() == [None, 1.0, 2.0]
    assert math.isnan(df["temp__max"][0]) and df["temp__max"][2] is None

    arrow = pq.read_table(file)
    assert arrow.schema.field("start").type == pa.timestamp("us", tz="UTC")
    assert arrow.schema.field("partition").type == pa.string()
    duck = duckdb.sql(f"SELECT * FROM read_parquet('{file}')").arrow()
    duck = duck.read_all() if isinstance(duck, pa.RecordBatchReader) else duck
    expected = df.to_dicts()
    for other in (pl.from_arrow(arrow), pl.from_arrow(duck)):
        assert isinstance(other, pl.DataFrame)
        assert other.columns == df.columns
        assert other.select(pl.exclude("start", "end")).equals(df.drop("start", "end"))
        for col in ("start", "end"):
            assert [v.astimezone(UTC) for v in other[col]] == df[col].to_list()

    # pandas shows float nulls as NaN; everything else is equal
    panda = pd.read_parquet(file)
    assert list(panda.columns) == df.columns
    assert str(panda["start"].dtype) in ("datetime64[us, UTC]", "datetime64[ns, UTC]")
    for row, want in zip(panda.to_dict("records"), expected, strict=True):
        for key, value in want.items():
            got = row[key]
            if key in ("start", "end"):
                assert got.to_pydatetime() == value
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                assert got is None or pd.isna(got)
            else:
                assert got == value
    assert df["start"][1] == T0

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["pipeline"] == "p" and manifest["run_id"] == "r1"
    assert manifest["streamfx_version"] == streamfx.__version__
    assert manifest["file"] == "features.parquet"
    assert manifest["rows"] == 3 and manifest["features"] == 3
    assert manifest["eras"] == ["e0", "c5/e1", "c5/e2"]  # keys: partition/era_id
    assert manifest["selection"] == {"variance_threshold": None, "dropped": []}
    assert dt.datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_parquet_parts_accumulate_and_rewrites_replace(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = ParquetSink(out, run("r1"))
    first.write(THREE[:2])  # a partial run...
    first.close()
    second = ParquetSink(out, run("r2"))  # ...then the next run
    second.write([THREE[2], result("e3", {("rh", "mean"): 70.0}, day=3)])
    second.write([result("e1", {("temp", "mean"): 9.0}, day=0, readings=7)])  # rewrite
    assert f"4 eras {TIMES} 4 features" in second.close()

    df = pl.read_parquet(out / "features.parquet")
    assert df.height == 4 and df["era_id"].n_unique() == 4
    e1 = df.filter(pl.col("era_id") == "e1").row(0, named=True)
    assert e1["temp__mean"] == 9.0 and e1["readings"] == 7
    assert e1["temp__max"] is None  # the rewrite's feature set replaces the old one
    assert json.loads((out / "manifest.json").read_text())["run_id"] == "r2"
    assert sorted(p.name for p in (out / "parts").iterdir()) == [  # a part per batch
        "r1-000001.parquet",
        "r2-000001.parquet",
        "r2-000002.parquet",
    ]
    third = ParquetSink(out, run("r3"))
    third.write([result("e0", {("co2", "mean"): 1.0}, day=2, partition=None)])
    third.write([result("e3", {("rh", "mean"): 2.0}, day=3)])
    third.close()  # r2's first part holds only eras written again since: it goes
    names = sorted(p.name for p in (out / "parts").iterdir())
    assert names == [
        "r1-000001.parquet",
        "r2-000002.parquet",
        "r3-000001.parquet",
        "r3-000002.parquet",
    ]
    df = pl.read_parquet(out / "features.parquet")
    assert df["era_id"].to_list() == ["e0", "e1", "e2", "e3"]
    assert df["co2__mean"].to_list() == [1.0, None, 400.0, None]
    assert df["rh__mean"].to_list() == [None, None, None, 2.0]


def test_parquet_sink_removes_only_parts_of_its_own_pipeline(tmp_path: Path) -> None:
    """A user's file in parts/, a file that is not Parquet, and another pipeline's part (of
    another fingerprint) all survive a run, and none of them is composed."""
    out = tmp_path / "out"
    (out / "parts").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1, 2]}), out / "parts" / "mine.parquet")
    (out / "parts" / "notes.parquet").write_text("not parquet")
    other = ParquetSink(out, SinkContext("other", "o1", "", "theirs"))
    other.write([result("e9", {("temp", "mean"): 5.0}, day=9)])  # a part, not composed
    stale = ParquetSink(out, run("r0", "old"))
    stale.write(THREE[:1])  # this pipeline's part of another configuration: removed on close
    sink = ParquetSink(out, run("r1", "new"))
    sink.write(THREE[1:])
    assert f"2 eras {TIMES}" in sink.close()
    assert sorted(p.name for p in (out / "parts").iterdir()) == [
        "mine.parquet",
        "notes.parquet",
        "o1-000001.parquet",
        "r1-000001.parquet",
    ]
    assert pl.read_parquet(out / "features.parquet")["era_id"].to_list() == ["e0", "e2"]
    assert pq.read_table(out / "parts" / "mine.parquet").num_rows == 2


def test_parquet_path_of_another_pipeline_is_refused(tmp_path: Path) -> None:
    """Two pipelines would replace each other's features.parquet: the second is refused
    before it writes anything, at start and, when the first composed meanwhile, on close."""
    out = tmp_path / "out"
    first = ParquetSink(out, run("r1"))
    late = ParquetSink(out, SinkContext("q", "q1", "", ""))  # started before p composed
    first.write(THREE)
    first.close()
    with pytest.raises(StreamfxError, match=r"sinks.parquet.path: .* pipeline 'p' .*'q'"):
        ParquetSink(out, SinkContext("q", "q2", "", ""))
    with pytest.raises(StreamfxError, match="pipeline 'p'"):
        late.close()
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "manifest.json").write_text("my own notes")
    with pytest.raises(StreamfxError, match="not streamfx"):
        ParquetSink(tmp_path / "user", run("r2"))
    assert json.loads((out / "manifest.json").read_text())["pipeline"] == "p"


def test_parquet_awkward_era_ids(tmp_path: Path) -> None:
    ids = ["a/b c", "a_b_c", "../../etc/passwd", "växthus ☀ 1", "x" * 300, "", "A/B C"]
    sink = ParquetSink(tmp_path, run("r"))  # part files are named by run, never by era id
    sink.write([result(i, {("s", "f"): float(n)}, day=n) for n, i in enumerate(ids)])
    sink.close()
    df = pl.read_parquet(tmp_path / "features.parquet")
    assert sorted(df["era_id"].to_list()) == sorted(ids)
    assert dict(zip(df["era_id"], df["s__f"], strict=True)) == {
        i: float(n) for n, i in enumerate(ids)
    }
    assert {p.parent for p in tmp_path.rglob("*.parquet")} <= {tmp_path, tmp_path / "parts"}


def test_parquet_variance_selection(tmp_path: Path) -> None:
    nan = float("nan")
    eras = [
        result(
            f"e{i}",
            {
                ("s", "varies"): float(i),
                ("s", "constant"): 5.0,
                ("s", "all_nan"): nan,
                ("s", "const_with_gaps"): 1.0 if i else nan,
                ("s", "small"): 1.0 + i * 1e-3,
            },
            day=i,
        )
        for i in range(3)
    ]
    sink = ParquetSink(tmp_path, run("r"), variance_threshold=1e-4)
    sink.write(eras)
    assert f"3 eras {TIMES} 1 features" in sink.close()
    df = pl.read_parquet(tmp_path / "features.parquet")
    assert df.columns == [*ERA_COLUMNS, "s__varies"]
    selection = json.loads((tmp_path / "manifest.json").read_text())["selection"]
    assert selection["variance_threshold"] == 1e-4
    assert sorted(selection["dropped"]) == [
        "s__all_nan",
        "s__const_with_gaps",
        "s__constant",
        "s__small",
    ]


def test_parquet_safe_names_and_their_mapping(tmp_path: Path) -> None:
    """names: safe: [A-Za-z0-9_] columns (imputed as any), feature_names.json maps them back;
    composing with tsfresh's names again removes the mapping."""
    widths = "cwt_coefficients__coeff_0__w_2__widths_(2, 5, 10, 20)"
    eras = [
        result(f"e{i}", {("temp", "quantile__q_0.1"): float(i), ("temp", widths): math.inf})
        for i in range(2)
    ]
    sink = ParquetSink(tmp_path, SinkContext("p", "r", "", impute="tsfresh"), names="safe")
    sink.write(eras)
    sink.close()
    df = pl.read_parquet(tmp_path / "features.parquet")
    safe = ["temp__cwt_coefficients__coeff_0__w_2__widths_2_5_10_20", "temp__quantile__q_0_1"]
    assert df.columns == [*ERA_COLUMNS, *safe]
    assert df[safe[1]].to_list() == [0.0, 1.0] and df[safe[0]].to_list() == [0.0, 0.0]
    mapping = json.loads((tmp_path / "feature_names.json").read_text())
    assert mapping == dict(zip(safe, [f"temp__{widths}", "temp__quantile__q_0.1"], strict=True))
    assert json.loads((tmp_path / "manifest.json").read_text())["names"] == "safe"

    ParquetSink(tmp_path, run("r2")).close()
    assert pl.read_parquet(tmp_path / "features.parquet").columns[-1] == "temp__quantile__q_0.1"
    assert not (tmp_path / "feature_names.json").exists()

    options = streamfx.sinks.parquet.ParquetSinkConfig
    assert options.model_validate({"path": "x", "names": "safe"}).names == "safe"
    with pytest.raises(ValueError, match="'tsfresh' or 'safe'"):
        options.model_validate({"path": "x", "names": "sql"})


def test_parquet_no_parts_and_empty_features(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "none", run("r"))
    assert f"0 eras {TIMES} 0 features" in sink.close()
    for frame in (
        pl.read_parquet(tmp_path / "none" / "features.parquet"),
        pl.from_pandas(pd.read_parquet(tmp_path / "none" / "features.parquet")),
    ):
        assert frame.columns == ERA_COLUMNS and frame.height == 0

    sink = ParquetSink(tmp_path / "one", run("r"))
    assert sink.write([result("quiet", {})]) == 1
    sink.close()
    df = pl.read_parquet(tmp_path / "one" / "features.parquet")
    assert df.columns == ERA_COLUMNS and df["era_id"].to_list() == ["quiet"]
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*"))


# --------------------------------------------------------------------------- PostgreSQL


def fetch(conn, table: str = "streamfx_features", schema: str = "public") -> pl.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT era_id, sensor, feature, value, run_id, extracted_at "
            f"FROM {qualified(schema, table)} ORDER BY era_id, sensor, feature"
        )
        table_ = cur.fetch_arrow_table()
    conn.commit()
    frame = pl.from_arrow(table_)
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_postgres_creates_table_and_round_trips(pg_dsn: str, pg_conn) -> None:
    sink = PostgresSink(pg_dsn, run("r1"))
    assert isinstance(sink, Sink)
    cols = {
        "era_id": "text",
        "sensor": "text",
        "feature": "text",
        "value": "double precision",
        "run_id": "text",
        "extracted_at": "timestamp with time zone",
        "partition": "text",
    }
    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT column_name::text, data_type::text FROM information_schema.columns "
            "WHERE table_name = 'streamfx_features' ORDER BY ordinal_position"
        )
        assert dict(cur.fetchall()) == cols  # a view of the long form, as 0.1's table was
        cur.execute(
            "SELECT table_name::text, table_type::text FROM information_schema.tables"
            " WHERE table_name LIKE 'streamfx_features%' ORDER BY 1"
        )
        assert cur.fetchall() == [
            ("streamfx_features", "VIEW"),
            ("streamfx_features_names", "BASE TABLE"),
            ("streamfx_features_values", "BASE TABLE"),
        ]
    pg_conn.commit()

    assert sink.write(THREE) == 6
    assert sink.close() == "postgres: public.streamfx_features (6 rows this run)"
    df = fetch(pg_conn)
    assert df.height == 6 and set(df["run_id"]) == {"r1"}
    got = {(e, s, f): v for e, s, f, v in df.select("era_id", "sensor", "feature", "value").rows()}
    assert got[("e1", "temp", "max")] == 3.0
    assert got[("e2", "co2", "mean")] == 400.0
    assert math.isnan(got[("e0", "temp", "max")])
    assert df["extracted_at"].dtype == pl.Datetime("us", "UTC")


def test_postgres_upsert_and_stale_rows(pg_dsn: str, pg_conn) -> None:
    sink = PostgresSink(pg_dsn, run("r1"))
    sink.write(THREE)
    sink.close()
    before = fetch(pg_conn)

    sink = PostgresSink(pg_dsn, run("r2"))
    sink.write([result("e1", {("temp", "mean"): 11.0, ("temp", "max"): 33.0})])
    df = fetch(pg_conn)
    assert df.height == 6
    e1 = df.filter(pl.col("era_id") == "e1")
    assert e1["value"].to_list() == [33.0, 11.0] and set(e1["run_id"]) == {"r2"}
    assert df.filter(pl.col("era_id") != "e1").equals(before.filter(pl.col("era_id") != "e1"))

    # e2 rewritten with fewer features loses the stale one
    sink.write([result("e2", {("temp", "mean"): 2.5}, day=1)])
    e2 = fetch(pg_conn).filter(pl.col("era_id") == "e2")
    assert e2.select("sensor", "feature", "value").rows() == [("temp", "mean", 2.5)]
    assert sink.close() == "postgres: public.streamfx_features (3 rows this run)"


def test_postgres_failed_batch_lands_nothing(pg_dsn: str, pg_conn) -> None:
    sink = PostgresSink(pg_dsn, run("r1"))
    sink.write(THREE)
    before = fetch(pg_conn)
    bad = [
        result("e1", {("temp", "mean"): 100.0}),  # would delete e1's temp__max and update mean
        result("e9", {("rh", "mean"): 1.0, ("rh", None): 2.0}, day=9),  # null feature
    ]
    with pytest.raises(Exception, match="feature_names_not_null"):
        sink.write(bad)
    assert fetch(pg_conn).equals(before)
    # the connection is usable again after the rollback
    assert sink.write([result("e9", {("rh", "mean"): 1.0}, day=9)]) == 1
    assert fetch(pg_conn).height == before.height + 1
    sink.close()


def test_postgres_view_keeps_nan_and_missing_apart(pg_dsn: str, pg_conn) -> None:
    sink = PostgresSink(pg_dsn, run("r1"))
    sink.write(THREE)
    sink.close()
    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT era_id, sensor, feature, value, partition FROM streamfx_features"
            " WHERE era_id = 'e0' ORDER BY sensor, feature"
        )
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM streamfx_features WHERE era_id = 'e0' AND sensor = 'rh'")
        (missing,) = cur.fetchone()
        cur.execute("SELECT count(*), sum(cardinality(values)) FROM streamfx_features_values")
        arrays, values = cur.fetchone()
    pg_conn.commit()
    assert rows[0] == ("e0", "co2", "mean", 410.0, None)  # no partition: NULL, as the era's
    assert rows[1][:3] == ("e0", "temp", "max") and math.isnan(rows[1][3])  # NaN stays NaN
    assert missing == 0  # a feature the era does not have is no row, not NaN
    assert (arrays, values) == (5, 6)  # one array per era and sensor


def test_postgres_refuses_a_01_table_and_says_how_to_move_it(pg_dsn: str, pg_conn) -> None:
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE streamfx_features (era_id text NOT NULL, sensor text NOT NULL,"
            " feature text NOT NULL, value double precision, run_id text NOT NULL,"
            " extracted_at timestamptz NOT NULL, PRIMARY KEY (era_id, sensor, feature))"
        )
        cur.execute("INSERT INTO streamfx_features VALUES ('e1', 't', 'mean', 1.0, 'r0', now())")
        cur.execute(  # 0.1's status table, saying e1 is done into that table
            "CREATE TABLE streamfx_era_status (pipeline text NOT NULL, era_id text NOT NULL,"
            " features_table text NOT NULL, fingerprint text NOT NULL, status text NOT NULL,"
            " attempts int NOT NULL, error text, worker text, run_id text NOT NULL,"
            " finished_at timestamptz NOT NULL, PRIMARY KEY (pipeline, features_table, era_id))"
        )
        cur.execute(
            "INSERT INTO streamfx_era_status VALUES ('p', 'e1', '\"public\".\"streamfx_features\"',"
            " 'f', 'done', 1, NULL, 'cpu-0', 'r0', now())"
        )
    pg_conn.commit()
    with pytest.raises(StreamfxError) as refused:
        PostgresSink(pg_dsn, run("r1"))
    message = str(refused.value)
    assert "public.streamfx_features is a features table of streamfx 0.1" in message
    assert 'ALTER TABLE "public"."streamfx_features" RENAME TO "streamfx_features_v01"' in message
    with pg_conn.cursor() as cur:
        cur.execute('ALTER TABLE "public"."streamfx_features" RENAME TO "streamfx_features_v01"')
    pg_conn.commit()
    sink = PostgresSink(pg_dsn, run("r1", "f"))
    assert sink.done_eras() == set()  # e1's features are in the renamed table: recompute it
    sink.write(THREE[:1])
    assert sink.done_eras() == {"c5/e1"}
    sink.close()
    assert fetch(pg_conn).height == 2
    assert fetch(pg_conn, "streamfx_features_v01").height == 1  # the old rows, untouched


def test_postgres_refuses_a_foreign_table_of_that_name(pg_dsn: str, pg_conn) -> None:
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE streamfx_features (id int)")
    pg_conn.commit()
    with pytest.raises(StreamfxError, match="exists and is not streamfx's features view"):
        PostgresSink(pg_dsn, run("r1"))


@pytest.mark.parametrize(("schema", "table"), [("public", 'we"ird'), ("my schema", "feat ures")])
def test_postgres_quoted_identifiers(pg_dsn: str, pg_conn, schema: str, table: str) -> None:
    sink = PostgresSink(pg_dsn, run("r"), schema=schema, table=table)
    sink.write(THREE[:1])
    sink.write(THREE[:1])
    assert sink.close() == f"postgres: {schema}.{table} (4 rows this run)"
    assert fetch(pg_conn, table, schema).height == 2


def status_rows(pg_conn) -> dict[str, tuple]:
    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT era_id, status, attempts, worker, error, run_id,"
            " started_at IS NOT NULL, finished_at IS NOT NULL FROM streamfx_era_status"
        )
        rows = cur.fetchall()
    pg_conn.commit()
    return {row[0]: row[1:] for row in rows}


def test_postgres_era_status_lifecycle(pg_dsn: str, pg_conn) -> None:
    from streamfx.sinks import EraStatus

    e0, e1 = result("e0", {}).era, result("e1", {}).era
    sink = PostgresSink(pg_dsn, run("r1", "f1"))
    sink.record_status([EraStatus(e0, "pending"), EraStatus(e1, "pending")])
    assert status_rows(pg_conn) == {
        "e0": ("pending", 0, None, None, "r1", False, False),
        "e1": ("pending", 0, None, None, "r1", False, False),
    }
    sink.record_status([EraStatus(e0, "running", 1, "cpu-0"), EraStatus(e1, "running", 1, "cpu-1")])
    assert status_rows(pg_conn)["e0"] == ("running", 1, "cpu-0", None, "r1", True, False)
    sink.write([result("e0", {("temp", "mean"): 1.0})])  # features and "done" in one transaction
    sink.record_status([EraStatus(e1, "failed", 3, "cpu-1", "ValueError: bad")])
    rows = status_rows(pg_conn)
    assert rows["e0"] == ("done", 1, "main", None, "r1", True, True)
    assert rows["e1"] == ("failed", 3, "cpu-1", "ValueError: bad", "r1", True, True)
    assert sink.done_eras() == {"c5/e0"}  # an era is its (partition, era_id)
    sink.close()


def test_postgres_sink_reconnects_and_redoes_the_write(pg_dsn: str, pg_conn) -> None:
    from streamfx.options import RetryConfig

    policy = RetryConfig(attempts=3, backoff=dt.timedelta(0))
    sink = PostgresSink(pg_dsn, run("r1", reconnect=policy))
    with sink.db.conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
    sink.db.conn.commit()
    with pg_conn.cursor() as cur:  # the server drops the sink's session, as a restart would
        cur.execute("SELECT pg_terminate_backend($1::int, 5000)", parameters=(pid,))
        assert cur.fetchone() == (True,)
    pg_conn.commit()
    assert sink.write(THREE) == 6
    assert sink.db.reconnects == 1
    assert fetch(pg_conn).height == 6
    # an error that is not the connection's is raised at once, not retried
    with pytest.raises(Exception, match="feature_names_not_null"):
        sink.write([result("e9", {("rh", None): 2.0}, day=9)])
    assert sink.db.reconnects == 1 and fetch(pg_conn).height == 6
    sink.close()


# --------------------------------------------------------------------------- Parquet at a URI


def test_parquet_file_uri_writes_what_a_local_path_writes(tmp_path: Path) -> None:
    outputs = {"plain": tmp_path / "plain", "uri": f"file://{tmp_path}/uri/"}
    for label, where in outputs.items():
        stale = ParquetSink(where, run("r0", "old"))
        stale.write([result("gone", {("x", "y"): 1.0})])  # removed on close: other features
        sink = ParquetSink(where, run("r1", "f"))
        sink.write(THREE[:2])
        sink.close()
        sink = ParquetSink(where, run("r2", "f"))
        assert sink.done_eras() == {"c5/e1", "c5/e2"}
        sink.write([THREE[2], result("e1", {("temp", "mean"): 9.0}, readings=7)])
        summary = sink.close()
        assert summary.startswith(f"parquet: {where if label == 'plain' else where[:-1]}/features")
    plain, uri = tmp_path / "plain", tmp_path / "uri"
    assert (uri / "features.parquet").read_bytes() == (plain / "features.parquet").read_bytes()
    assert sorted(p.name for p in (uri / "parts").iterdir()) == sorted(
        p.name for p in (plain / "parts").iterdir()
    )
    assert len(list((uri / "parts").iterdir())) == 2  # r1's and r2's batch; r0's was stale
    assert json.loads((uri / "manifest.json").read_text())["eras"] == ["e0", "c5/e1", "c5/e2"]
    assert not list(uri.rglob("*.tmp"))


def test_parquet_object_store_writes_objects_whole(tmp_path: Path) -> None:
    """pyarrow's in-memory ``mock://`` filesystem stands in for S3: objects written directly."""
    sink = ParquetSink("mock:///bucket/out", run("r1"))
    sink.write(THREE)
    assert sink.done_eras() == {"e0", "c5/e1", "c5/e2"}
    assert sink.close().startswith("parquet: mock:///bucket/out/features.parquet (3 eras")
    listing = sink.fs.get_file_info(pafs.FileSelector("bucket", recursive=True))
    assert sorted(i.path for i in listing if i.is_file)[:2] == [
        "bucket/out/features.parquet",
        "bucket/out/manifest.json",
    ]
    assert not [i.path for i in listing if i.path.endswith(".tmp")]
    local = ParquetSink(tmp_path, run("r1"))
    local.write(THREE)
    local.close()
    with sink.fs.open_input_file("bucket/out/features.parquet") as file:
        assert file.read() == (tmp_path / "features.parquet").read_bytes()

    def half(out: pa.NativeFile) -> None:
        out.write(b"half a file")
        raise RuntimeError("disk full")

    for fs, path in ((sink.fs, "bucket/out/broken"), (pafs.LocalFileSystem(), f"{tmp_path}/x")):
        with pytest.raises(RuntimeError, match="disk full"):
            put(fs, path, half)
        assert fs.get_file_info(path).type == pafs.FileType.NotFound
    assert not list(tmp_path.rglob("*.tmp"))


def test_parquet_bad_uri_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(StreamfxError, match=r"^sinks\.parquet\.path: .*Unrecognized") as err:
        ParquetSink("nosuch://key:s3cret@bucket/out", run("r"))
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)


def test_run_through_a_file_uri(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    seed_demo(pg_conn, DemoTables(), days=3)
    (tmp_path / "plain").mkdir()
    plain = write_pipeline(tmp_path / "plain" / "pipeline.yaml", sinks__postgres=None)
    assert streamfx_cli("run", str(plain), dsn=pg_dsn).returncode == 0
    uri = f"file://{tmp_path}/out"
    path = write_pipeline(
        tmp_path / "pipeline.yaml", sinks__postgres=None, sinks__parquet__path=uri
    )
    first = streamfx_cli("run", str(path), dsn=pg_dsn)
    assert first.returncode == 0, first.stderr
    assert f"{uri}/features.parquet" in first.stdout and f"report: {uri}/runs/" in first.stdout
    out = tmp_path / "out"

    def same_file_but_run_id(file: Path, expected: Path) -> None:
        got, want = pq.read_table(file), pq.read_table(expected)
        assert pl.from_arrow(got).equals(pl.from_arrow(want))  # values, NaN, order
        meta, want_meta = dict(got.schema.metadata), dict(want.schema.metadata)
        assert meta.pop(b"streamfx.run_id") != want_meta.pop(b"streamfx.run_id")
        assert meta == want_meta  # fingerprint, version, pipeline, feature settings

    same_file_but_run_id(out / "features.parquet", tmp_path / "plain" / "out" / "features.parquet")
    eras = pl.read_parquet(out / "features.parquet").height
    again = streamfx_cli("run", str(path), dsn=pg_dsn)  # resumes through the URI
    assert again.returncode == 0, again.stderr
    assert f"{eras} already done" in again.stdout
    same_file_but_run_id(out / "features.parquet", tmp_path / "plain" / "out" / "features.parquet")
    assert len(list((out / "runs").glob("*.json"))) == 2

    bad = write_pipeline(tmp_path / "bad.yaml", sinks__parquet__path="nosuch://x")
    failed = streamfx_cli("run", str(bad), dsn=pg_dsn)
    assert failed.returncode == 2
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "sinks.parquet.path" in lines[0], failed.stderr
