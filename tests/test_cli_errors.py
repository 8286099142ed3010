"""Bad input: every broken pipeline exits 2 with one line naming the problem, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import streamfx, validate_offline, write_pipeline

SECRET = "hunter2-s3cret"


def with_password(dsn: str) -> str:
    """Embedded servers trust local sockets, so a password is accepted and ignored."""
    return dsn.replace("postgres:@", f"postgres:{SECRET}@", 1)


@pytest.fixture
def demo_dsn(pg_dsn: str, pg_conn) -> str:
    seed_demo(pg_conn, DemoTables(), days=2)
    return with_password(pg_dsn)


def assert_one_line_error(result, *needles: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


FILE_ERRORS = {
    "unknown_top_key": ("name: x\nsinkz: {}\n", ["unknown key 'sinkz'", "top level"]),
    "invalid_yaml": ("name: x\nsource: [unclosed\n", ["invalid YAML", ":3:"]),
    "empty_file": ("", ["empty"]),
    "not_a_mapping": ("- a\n- b\n", ["expected a mapping"]),
    "tab_yaml": ("name: x\n\tsource: 1\n", ["invalid YAML"]),
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_file_level_errors(tmp_path: Path, case: str) -> None:
    text, needles = FILE_ERRORS[case]
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    assert_one_line_error(streamfx("run", str(path)), str(path), *needles)


def test_missing_pipeline_file(tmp_path: Path) -> None:
    assert_one_line_error(streamfx("run", str(tmp_path / "nope.yaml")), "no such pipeline file")


CONFIG_ERRORS = {
    "unknown_nested_key": (
        {"source__readings__layut": "wide"},
        ["source.readings", "unknown key 'layut'", "did you mean 'layout'"],
    ),
    "wrong_type": ({"executor__batch_eras": "many"}, ["executor.batch_eras", "integer"]),
    "wrong_layout": ({"source__readings__layout": "tall"}, ["source.readings.layout", "'tall'"]),
    "negative_window": (
        {"source__eras": {"every": "-1d"}},
        ["source.eras.every", "must be positive"],
    ),
    "bad_duration": ({"source__eras": {"every": "daily"}}, ["source.eras.every", "duration"]),
    "both_era_kinds": (
        {"source__eras__every": "1d"},
        ["source.eras", "exactly one of 'table'", "'every'"],
    ),
    "no_sinks": ({"sinks": {}}, ["sinks", "at least one sink"]),
    "negative_n_jobs": ({"stages__extract__n_jobs": -1}, ["stages.extract.n_jobs"]),
    "unknown_feature_set": (
        {"stages__classify__sensors": {"air_temp_c": {"features": "huge"}}},
        ["stages.classify.sensors.air_temp_c.features", "huge"],
    ),
    "missing_readings": ({"source__readings": None}, ["source.readings", "required"]),
    "bad_name": ({"name": "my pipeline!"}, ["name"]),
    "zero_retry_attempts": (
        {"executor__retry": {"attempts": 0, "backoff": "1s"}},
        ["executor.retry.attempts", "greater than or equal to 1"],
    ),
    "bad_backoff": (
        {"executor__reconnect": {"attempts": 3, "backoff": "soon"}},
        ["executor.reconnect.backoff", "duration"],
    ),
    "zero_era_timeout": ({"executor__era_timeout": "0s"}, ["executor.era_timeout", "positive"]),
    "sink_option_misspelt": (
        {"sinks__postgres": {"tabel": "x"}},
        ["unknown key 'tabel' in sinks.postgres", "did you mean 'table'"],
    ),
    "sink_option_out_of_range": (
        {"sinks__parquet__selection": {"variance_threshold": -1}},
        ["sinks.parquet.selection.variance_threshold", "greater than or equal to 0"],
    ),
    "sink_option_missing": ({"sinks__parquet": {}}, ["sinks.parquet.path", "required"]),
    "selection_moved": (
        {"stages__extract__selection": {"variance_threshold": 0.1}},
        ["stages.extract", "'selection' moved to sinks.parquet.selection"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors(tmp_path: Path, case: str) -> None:
    overrides, needles = CONFIG_ERRORS[case]
    path = write_pipeline(tmp_path / "pipeline.yaml", **overrides)
    result = validate_offline(path)
    assert_one_line_error(result, str(path), *needles)


DATABASE_ERRORS = {
    "missing_table": (
        {"source__readings__table": "nope"},
        ["source.readings.table", "public.nope", "does not exist"],
    ),
    "missing_column": (
        {"source__readings__value_column": "valu"},
        ["source.readings.value_column", "'valu'", "public.sensor_readings"],
    ),
    "missing_era_column": (
        {"source__eras__start_column": "begin"},
        ["source.eras.start_column", "'begin'", "public.eras"],
    ),
    "time_column_not_time": (
        {"source__readings__time_column": "sensor"},
        ["source.readings.time_column", "type text"],
    ),
    "unknown_extractor": ({"stages__extract__extractor": "magic"}, ["unknown extractor 'magic'"]),
    "unknown_profile": ({"stages__classify__profile": "factory"}, ["unknown sensor profile"]),
    "empty_range": (
        {"source__eras__from": "2030-01-01"},
        ["source.eras", "no eras", "from/to"],
    ),
}


@pytest.mark.parametrize("case", sorted(DATABASE_ERRORS))
def test_database_errors(tmp_path: Path, demo_dsn: str, case: str) -> None:
    overrides, needles = DATABASE_ERRORS[case]
    path = write_pipeline(tmp_path / "pipeline.yaml", **overrides)
    assert_one_line_error(streamfx("run", str(path), dsn=demo_dsn), *needles)


def test_empty_era_table(tmp_path: Path, demo_dsn: str, pg_conn) -> None:
    with pg_conn.cursor() as cur:
        cur.execute("DELETE FROM eras")
    pg_conn.commit()
    path = write_pipeline(tmp_path / "pipeline.yaml")
    assert_one_line_error(streamfx("run", str(path), dsn=demo_dsn), "no eras", "public.eras")


def test_unknown_era_on_command_line(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml")
    result = streamfx("run", str(path), "--eras", "999999", dsn=demo_dsn)
    assert_one_line_error(result, "--eras", "999999")


def test_unreachable_database_never_prints_password(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml")
    dsn = f"postgresql://analyst:{SECRET}@127.0.0.1:9/features?connect_timeout=3"
    result = streamfx("run", str(path), dsn=dsn)
    assert_one_line_error(result, "cannot connect to PostgreSQL", "127.0.0.1:9")


def test_unset_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMFX_DSN", raising=False)
    path = write_pipeline(tmp_path / "pipeline.yaml")
    assert_one_line_error(streamfx("run", str(path)), "source.dsn", "STREAMFX_DSN is not set")


def test_password_in_dsn_never_printed_on_success(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", source__dsn=demo_dsn)
    result = streamfx("run", str(path), "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert SECRET not in (tmp_path / "out" / "manifest.json").read_text()


HOSTILE = 'x"; DROP TABLE sensor_readings; --'
#: Every identifier key of source and sinks, with what else the case needs to reach it.
IDENTIFIER_KEYS = {
    "source__schema": {},
    "source__readings__table": {},
    "source__readings__time_column": {},
    "source__readings__partition_column": {},
    "source__readings__sensor_column": {},
    "source__readings__value_column": {},
    "source__readings__json_column": {"source__readings__layout": "jsonb"},
    "source__readings__sensors": {},
    "source__eras__table": {},
    "source__eras__id_column": {},
    "source__eras__start_column": {},
    "source__eras__end_column": {},
    "source__eras__partition_column": {},
    "sinks__postgres__schema": {},
    "sinks__postgres__table": {},
}


def _tables(conn) -> dict[str, int]:
    """Every table of the database outside the system schemas, with its row count."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        names = [row[0] for row in cur.fetchall()]
        counts = {}
        for name in names:
            cur.execute(f"SELECT count(*) FROM {name}")
            counts[name] = cur.fetchone()[0]
    conn.commit()
    return counts


@pytest.mark.parametrize("key", sorted(IDENTIFIER_KEYS))
def test_sql_injection_in_identifiers_is_harmless(
    tmp_path: Path, demo_dsn: str, pg_conn, key
) -> None:
    """A hostile name in any identifier position: the run fails with one line (no such table,
    column or sensor), or works on a table of exactly that name; no other table changes."""
    before = _tables(pg_conn)
    value = [HOSTILE] if key.endswith("sensors") else HOSTILE
    overrides = {key: value, **IDENTIFIER_KEYS[key]}
    path = write_pipeline(tmp_path / "pipeline.yaml", **overrides)
    result = streamfx("run", str(path), "--limit", "1", dsn=demo_dsn)
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        assert_one_line_error(result, HOSTILE)
    after = _tables(pg_conn)
    untouched = {
        t: n
        for t, n in after.items()
        if t in before and not t.startswith(("public.streamfx_", 'public."x""'))
    }
    assert untouched == {t: n for t, n in before.items() if t in untouched}
    assert set(before) <= set(after)
    assert after["public.sensor_readings"] == before["public.sensor_readings"] > 0


def test_hostile_names_that_exist_are_read_and_written(
    tmp_path: Path, demo_dsn: str, pg_conn
) -> None:
    """Tables and columns really named ``x"; DROP TABLE ...; --`` work like any other."""
    q = '"' + HOSTILE.replace('"', '""')
    with pg_conn.cursor() as cur:
        cur.execute(
            f'CREATE TABLE {q}r" AS SELECT time AS {q}t", compartment_id AS {q}p",'
            f' sensor AS {q}s", value AS {q}v" FROM sensor_readings'
        )
        cur.execute(
            f'CREATE TABLE {q}e" AS SELECT era_id AS {q}id", start_time AS {q}a",'
            f' end_time AS {q}b", compartment_id AS {q}p" FROM eras'
        )
    pg_conn.commit()
    before = _tables(pg_conn)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        source__readings={
            "table": HOSTILE + "r",
            "time_column": HOSTILE + "t",
            "partition_column": HOSTILE + "p",
            "sensor_column": HOSTILE + "s",
            "value_column": HOSTILE + "v",
        },
        source__eras={
            "table": HOSTILE + "e",
            "id_column": HOSTILE + "id",
            "start_column": HOSTILE + "a",
            "end_column": HOSTILE + "b",
            "partition_column": HOSTILE + "p",
        },
        sinks__postgres__table=HOSTILE + "f",
        stages__classify={"profile": None},
    )
    result = streamfx("run", str(path), "--limit", "1", dsn=demo_dsn)
    assert result.returncode == 0, result.stderr
    after = _tables(pg_conn)
    assert after[f'public.{q}f"'] > 0
    assert {t: after[t] for t in before} == before
