"""An era is its (partition, era_id): era tables that number eras from 1 in each compartment
(as the reference system's do) give one output row per (compartment, era) in both sinks, the
status and run tables, resume and ``--eras``; a repeat within a compartment is refused."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import streamfx, write_pipeline

#: The demo's eras renumbered from 1 in each compartment (its ids are unique across them).
RENUMBERED = (
    "CREATE TABLE eras_b AS SELECT row_number() OVER (PARTITION BY compartment_id"
    " ORDER BY start_time)::int AS era_id, compartment_id, start_time, end_time FROM eras"
)


def query(conn, sql: str) -> pl.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql)
        frame = pl.from_arrow(cur.fetch_arrow_table())
    conn.commit()
    return frame


@pytest.fixture
def renumbered(pg_conn) -> pl.DataFrame:
    """Demo readings, and ``eras_b``: (era_id, compartment_id, start, end), ids repeating."""
    seed_demo(pg_conn, DemoTables(), days=4)
    with pg_conn.cursor() as cur:
        cur.execute(RENUMBERED)
    pg_conn.commit()
    eras = query(pg_conn, "SELECT era_id, compartment_id, start_time FROM eras_b")
    assert eras["era_id"].n_unique() < eras.height  # ids do repeat across compartments
    return eras


def pipeline(tmp_path: Path, name: str, **overrides) -> Path:
    overrides = {"source__eras__table": "eras_b", **overrides}  # the renumbered eras
    return write_pipeline(
        tmp_path / f"{name}.yaml",
        name=name,
        sinks__parquet__path=str(tmp_path / name),
        sinks__postgres__table=f"f_{name}",
        **overrides,
    )


def test_ids_repeating_across_compartments_give_one_row_per_compartment_and_era(
    tmp_path: Path, pg_dsn: str, pg_conn, renumbered: pl.DataFrame
) -> None:
    path = pipeline(tmp_path, "b", executor__eras_per_pass=1, executor__batch_eras=1)
    result = streamfx("run", str(path), "-q", dsn=pg_dsn)
    assert result.returncode == 0, result.stderr

    wide = pl.read_parquet(tmp_path / "b" / "features.parquet")
    pairs = wide.select("partition", pl.col("era_id").cast(pl.Int64))
    assert pairs.is_unique().all()
    view = query(pg_conn, "SELECT DISTINCT partition, era_id::bigint AS era_id FROM f_b")
    assert view.sort(pl.all()).equals(pairs.sort(pl.all()))
    with_readings = query(pg_conn, "SELECT count(*) AS n FROM f_b_values")["n"][0]
    assert with_readings > 0
    # every era with readings, in both compartments, ids 1, 2, ... in each
    status = query(
        pg_conn, "SELECT partition, era_id, status FROM streamfx_era_status WHERE status = 'done'"
    )
    assert status.height == wide.height
    assert set(status["partition"]) == set(renumbered["compartment_id"].cast(pl.String))

    # the same values as a run on the demo's own (unique) ids, era by era
    unique = write_pipeline(
        tmp_path / "u.yaml",
        name="u",
        sinks__parquet__path=str(tmp_path / "u"),
        sinks__postgres__table="f_u",
    )
    assert streamfx("run", str(unique), "-q", dsn=pg_dsn).returncode == 0
    other = pl.read_parquet(tmp_path / "u" / "features.parquet")
    by_span = ["partition", "start"]
    assert wide.sort(by_span).drop("era_id").equals(other.sort(by_span).drop("era_id"))

    # the run tables: one row per (partition, era) of the run
    era_runs = query(
        pg_conn,
        "SELECT partition, era_id FROM streamfx_era_runs JOIN streamfx_runs USING (run_id)"
        " WHERE pipeline = 'b'",
    )
    assert era_runs.is_unique().all() and era_runs.height == renumbered.height

    # a rerun recomputes nothing: every (partition, era) is done, none confused with another
    again = streamfx("run", str(path), dsn=pg_dsn)
    assert again.returncode == 0, again.stderr
    assert f"{wide.height} eras already done" in again.stderr
    assert query(pg_conn, "SELECT count(*) AS n FROM f_b_values")["n"][0] == with_readings


def test_eras_option_takes_partition_and_id_and_refuses_an_ambiguous_id(
    tmp_path: Path, pg_dsn: str, pg_conn, renumbered: pl.DataFrame
) -> None:
    path = pipeline(tmp_path, "pick")
    ambiguous = streamfx("run", str(path), "--eras", "1", dsn=pg_dsn)
    assert ambiguous.returncode == 2
    assert "--eras: era id(s) in more than one partition" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr

    first = renumbered.filter(pl.col("era_id") == 2).sort("compartment_id").row(0, named=True)
    key = f"{first['compartment_id']}/2"
    picked = streamfx("run", str(path), "--eras", key, "-q", dsn=pg_dsn)
    assert picked.returncode == 0, picked.stderr
    wide = pl.read_parquet(tmp_path / "pick" / "features.parquet")
    assert wide.select("partition", "era_id").rows() == [(str(first["compartment_id"]), "2")]
    report = json.loads(next((tmp_path / "pick" / "runs").glob("*.json")).read_text())
    assert [(e["partition"], e["era_id"]) for e in report["eras_detail"]] == [
        (str(first["compartment_id"]), "2")
    ]

    unknown = streamfx("run", str(path), "--eras", "9/999", dsn=pg_dsn)
    assert unknown.returncode == 2 and "unknown era id(s): 9/999" in unknown.stderr


def test_an_id_repeated_within_a_compartment_is_refused_before_extracting(
    tmp_path: Path, pg_dsn: str, pg_conn, renumbered: pl.DataFrame
) -> None:
    with pg_conn.cursor() as cur:
        cur.execute(
            "UPDATE eras_b SET era_id = 1 WHERE era_id = 3 AND compartment_id ="
            " (SELECT min(compartment_id) FROM eras_b)"
        )
    pg_conn.commit()
    compartment = renumbered["compartment_id"].min()
    path = pipeline(tmp_path, "dup")
    result = streamfx("run", str(path), dsn=pg_dsn)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"era id(s) repeat within a partition in public.eras_b: {compartment}/1" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dup" / "features.parquet").exists()
    assert query(pg_conn, "SELECT to_regclass('f_dup_values') IS NULL AS gone")["gone"][0]


def test_run_tables_from_before_partitions_are_migrated(
    tmp_path: Path, pg_dsn: str, pg_conn, renumbered: pl.DataFrame
) -> None:
    """Status and era-run tables keyed by era_id alone get a partition column and the wider
    key; their rows stay (partition '')."""
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE streamfx_era_runs (run_id text NOT NULL, era_id text NOT NULL,"
            " status text NOT NULL, lane text, rule text, worker text, error text,"
            " readings bigint, features bigint, seconds double precision,"
            " peak_rss_mb double precision, PRIMARY KEY (run_id, era_id))"
        )
        cur.execute(
            "INSERT INTO streamfx_era_runs (run_id, era_id, status) VALUES ('old', '1', 'done')"
        )
    pg_conn.commit()
    result = streamfx("run", str(pipeline(tmp_path, "mig")), "-q", dsn=pg_dsn)
    assert result.returncode == 0, result.stderr
    keys = query(
        pg_conn,
        "SELECT array_agg(a.attname::text ORDER BY k.i) AS key FROM pg_constraint c"
        " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.conrelid = 'streamfx_era_runs'::regclass AND c.contype = 'p'",
    )
    assert keys["key"][0].to_list() == ["run_id", "partition", "era_id"]
    rows = query(pg_conn, "SELECT run_id, partition FROM streamfx_era_runs WHERE run_id = 'old'")
    assert rows.rows() == [("old", "")]


def test_reference_layout_equals_the_long_table(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    """The demo readings as the reference system keeps them (one JSONB object per time and
    compartment, era ids restarting per compartment) give the values of the long table."""
    seed_demo(pg_conn, DemoTables(), days=4)
    reference = DemoTables(
        layout="jsonb",
        readings_table="preprocessed_features",
        time_column="timestamp",
        eras_table="era_labels_level_B",
        era_ids_per_partition=True,
    )
    seed_demo(pg_conn, reference, days=4)
    long = pipeline(tmp_path, "long", source__eras__table="eras")
    ref = pipeline(
        tmp_path,
        "ref",
        source__readings__table="preprocessed_features",
        source__readings__layout="jsonb",
        source__readings__time_column="timestamp",
        source__readings__json_column="features",
        source__eras__table="era_labels_level_B",
    )
    for path in (long, ref):
        result = streamfx("run", str(path), "-q", dsn=pg_dsn)
        assert result.returncode == 0, result.stderr

    a = pl.read_parquet(tmp_path / "long" / "features.parquet")
    b = pl.read_parquet(tmp_path / "ref" / "features.parquet")
    assert b.select("partition", "era_id").is_unique().all()
    assert b["era_id"].n_unique() < b.height  # ids repeat across compartments
    assert a.columns == b.columns
    by_span = ["partition", "start"]
    assert a.sort(by_span).drop("era_id").equals(b.sort(by_span).drop("era_id"))

    # the database: the long run's eras numbered per compartment as the reference numbers them
    from_long = query(
        pg_conn,
        "SELECT f.partition, r.n::text AS era_id, f.sensor, f.feature, f.value FROM f_long f"
        " JOIN (SELECT era_id::text AS era_id, compartment_id::text AS partition, row_number()"
        " OVER (PARTITION BY compartment_id ORDER BY start_time) AS n FROM eras) r"
        " USING (partition, era_id)",
    )
    from_ref = query(pg_conn, "SELECT partition, era_id, sensor, feature, value FROM f_ref")
    assert from_ref.height == from_long.height > 0
    order = ["partition", "era_id", "sensor", "feature"]
    assert from_ref.sort(order).equals(from_long.sort(order))
