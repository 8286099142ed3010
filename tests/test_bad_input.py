"""Bad input that used to pass silently, crash with "unexpected", or eat the machine: each is
now one line naming the file and key, exit 2 (see docs/reliability.md)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfx.database import connect, start_embedded
from streamfx.errors import StreamfxError
from streamfx.run.config import WORKERS_PER_CORE, cores
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .helpers import streamfx, validate_offline, write_pipeline
from .test_cli_errors import assert_one_line_error

#: What follows ``name: t`` and a valid source in each file-level case (raw YAML, so that
#: duplicate keys, anchors and dates reach the loader as written).
BASE = """name: t
source:
  dsn: postgresql://u@127.0.0.1:9/db
  readings: {table: r}
  eras: {every: 1d}
"""
LAUGHS = "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
    for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)

YAML_ERRORS = {
    "duplicate_sink": (
        BASE + "sinks:\n  parquet: {path: a}\n  parquet: {path: b}\n",
        [":8:3:", "duplicate key 'parquet' (first at line 7)"],
    ),
    "duplicate_key_in_source": (
        BASE.replace("  eras:", "  readings: {table: s}\n  eras:")
        + "sinks: {parquet: {path: a}}\n",
        [":5:3:", "duplicate key 'readings'"],
    ),
    "billion_laughs": (LAUGHS, ["490,329,064 YAML nodes", "at most 100,000"]),
    "deep_nesting": ("name: t\nx: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
    "huge_file": ("name: t\n" + "# padding\n" * 110_000, ["larger than 1,000,000 bytes"]),
}


@pytest.mark.parametrize("case", sorted(YAML_ERRORS))
def test_yaml_errors(tmp_path: Path, case: str) -> None:
    text, needles = YAML_ERRORS[case]
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    assert_one_line_error(validate_offline(path), str(path), *needles)


def _too_many_workers() -> int:
    return WORKERS_PER_CORE * cores() + 1


CONFIG_ERRORS = {
    "from_an_int": (
        {"source__eras": {"every": "1d", "from": 2024}},
        ["source.eras.from", "expected an ISO date or datetime", "(got 2024)"],
    ),
    "impossible_date": (
        {"source__eras": {"every": "1d", "from": "2024-02-30"}},
        ["source.eras.from", "'2024-02-30'", "day is out of range for month"],
    ),
    "duration_overflow": (
        {"source__eras": {"every": "100000000000000d"}},
        ["source.eras.every", "too long"],
    ),
    "duration_under_a_microsecond": (
        {"source__eras": {"every": "0.0000001s"}},
        ["source.eras.every", "shorter than a microsecond"],
    ),
    "too_many_windows": (
        {"source__eras": {"every": "1s", "from": "2024-01-01", "to": "2025-01-01"}},
        ["source.eras", "makes 31,622,400 windows", "at most 1,000,000"],
    ),
    "empty_parquet_path": ({"sinks__parquet__path": ""}, ["sinks.parquet.path", "empty"]),
    "mock_filesystem": (
        {"sinks__parquet__path": "mock://out"},
        ["sinks.parquet.path", "in-memory", "lost"],
    ),
    "no_sensors": ({"source__readings__sensors": []}, ["source.readings.sensors", "at least one"]),
    "sensor_twice": (
        {"source__readings": {"table": "w", "layout": "wide", "sensors": ["a", "b", "a"]}},
        ["source.readings.sensors", "more than once: 'a'"],
    ),
    "nul_in_table": (
        {"source__readings__table": "sensor\x00readings"},
        ["source.readings.table", "NUL"],
    ),
    "nul_in_column": ({"source__eras__id_column": "era\x00id"}, ["source.eras.id_column", "NUL"]),
    "nul_in_sink_table": ({"sinks__postgres__table": "f\x00"}, ["sinks.postgres.table", "NUL"]),
    "name_too_long": ({"source__readings__time_column": "t" * 64}, ["time_column", "63 bytes"]),
    "pg_temp_sink": ({"sinks__postgres__schema": "pg_temp"}, ["sinks.postgres.schema", "system"]),
    "pg_catalog_sink": (
        {"sinks__postgres__schema": "pg_catalog"},
        ["sinks.postgres.schema", "system"],
    ),
    "plugin_not_python": (
        {"plugins": ["plugin.txt"]},
        ["plugins: ", "plugin.txt is not a Python module file (.py)"],
    ),
    "too_many_workers": (
        {"executor__cpu_workers": _too_many_workers()},
        ["executor.cpu_workers", f"{cores()} cores", f"at most {_too_many_workers() - 1}"],
    ),
    "ten_million_workers": (
        {"executor__cpu_workers": 10_000_000},
        ["executor.cpu_workers", "10,000,000 worker processes"],
    ),
    "ten_million_ray_tasks": (
        {"executor": {"kind": "ray", "cpu_workers": 10_000_000}},
        ["executor.cpu_workers", "10,000,000 Ray tasks; at most 10,000 per lane"],
    ),
    "unknown_calculator_parameter": (
        {"stages__classify__sensors": {"air_*": {"calculators": {"quantile": [{"qq": 0.5}]}}}},
        ["stages.classify.sensors.air_*.calculators.quantile[0]", "no parameter 'qq'", "q"],
    ),
    "missing_calculator_parameter": (
        {"stages__classify__sensors": {"air_*": {"calculators": {"quantile": [{}]}}}},
        ["calculators.quantile[0]", "needs parameter 'q'"],
    ),
    "null_for_a_parametrised_calculator": (
        {"stages__classify__sensors": {"*": {"calculators": {"quantile": None}}}},
        ["calculators.quantile[0]", "needs parameter 'q'"],
    ),
    "calculator_value_tsfresh_refuses": (
        {
            "stages__classify__sensors": {
                "*": {"calculators": {"mean_n_absolute_max": [{"number_of_maxima": 0}]}}
            }
        },
        ["calculators.mean_n_absolute_max[0]", "tsfresh refuses", "not greater than 1"],
    ),
    "unknown_combiner_key": (
        {"stages__classify__sensors": {"*": {"calculators": {"fft_coefficient": [{"c": 1}]}}}},
        ["calculators.fft_coefficient[0]", "no parameter 'c'", "attr, coeff"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors(tmp_path: Path, case: str) -> None:
    overrides, needles = CONFIG_ERRORS[case]
    path = write_pipeline(tmp_path / "pipeline.yaml", **overrides)
    assert_one_line_error(validate_offline(path), str(path), *needles)


def test_calculator_parameters_that_fit_pass(tmp_path: Path) -> None:
    calculators = {
        "quantile": [{"q": 0.5}],
        "fft_coefficient": [{"coeff": 0, "attr": "real"}],
        "augmented_dickey_fuller": [{"attr": "pvalue", "autolag": "AIC"}],
        "agg_autocorrelation": [{"f_agg": "mean", "maxlag": 5}],
        "mean": None,
    }
    rules = {"*": {"calculators": calculators}}
    path = write_pipeline(tmp_path / "pipeline.yaml", stages__classify__sensors=rules)
    result = validate_offline(path)
    assert result.returncode == 0, result.stderr


def test_plugin_calling_sys_exit_is_a_plugin_error(tmp_path: Path) -> None:
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(0)\n")
    path = write_pipeline(tmp_path / "pipeline.yaml", plugins=["quitter.py"])
    result = streamfx("validate", "--offline", str(path))
    assert_one_line_error(
        result, f"{path}: plugins: plugin 'quitter'", "failed to import: SystemExit: 0"
    )


def test_shipped_pipelines_stay_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    for path in [root / "pipeline.yaml", *sorted((root / "pipelines").glob("*.yaml"))]:
        result = validate_offline(path)
        assert result.returncode == 0, (path, result.stderr)


# -- with a database ----------------------------------------------------------------------


@pytest.fixture
def demo_dsn(pg_dsn: str, pg_conn) -> str:
    seed_demo(pg_conn, DemoTables(), days=2)
    return pg_dsn


def test_empty_era_list_on_the_command_line(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml")
    for command in ("run", "plan"):
        result = streamfx(command, str(path), "--eras", "", dsn=demo_dsn)
        assert_one_line_error(result, "--eras: no era ids given")
    assert not (tmp_path / "out").exists()


def test_windows_counted_from_the_readings(tmp_path: Path, demo_dsn: str) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml", source__eras={"every": "0.1s"})
    result = streamfx("run", str(path), dsn=demo_dsn)
    assert_one_line_error(result, "source.eras.every", "windows; at most 1,000,000 per run")


def test_numeric_beyond_double_precision(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE r (time timestamptz, sensor text, value numeric)")
        cur.execute(
            "INSERT INTO r SELECT '2024-01-01'::timestamptz + i * interval '1 min', 's', i"
            " FROM generate_series(1, 100) i UNION ALL SELECT '2024-01-01 00:30', 's', 1e400"
        )
    pg_conn.commit()
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        source__readings={"table": "r"},
        source__eras={"every": "1d"},
        stages__classify={"profile": None},
    )
    result = streamfx("run", str(path), dsn=pg_dsn)
    assert_one_line_error(result, "source.readings.value_column", "beyond double precision")
    assert len(result.stderr) < 300, result.stderr


@pytest.mark.parametrize(
    "dsn, needles",
    [
        ("postgresql://u@127.0.0.1:notaport/db", ["127.0.0.1:notaport/db", "port"]),
        ("postgresql://u@127.0.0.1:99999/db", ["127.0.0.1:99999/db"]),
        ("postgresql://u@127.0.0.1:9,127.0.0.1:10/db", ["127.0.0.1:9,127.0.0.1:10/db"]),
    ],
)
def test_odd_ports_and_several_hosts(tmp_path: Path, dsn: str, needles: list[str]) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml")
    result = streamfx("run", str(path), dsn=dsn)
    assert_one_line_error(result, "cannot connect to PostgreSQL", *needles)


def test_several_hosts_reach_the_one_that_answers(tmp_path: Path, demo_dsn: str) -> None:
    """libpq tries each host of a multi-host URI in turn: the dead first one is skipped."""
    head, _, query = demo_dsn.partition("?")
    socket = query.removeprefix("host=")
    dsn = f"{head}?host=127.0.0.1,{socket}&port=9,5432"
    path = write_pipeline(tmp_path / "pipeline.yaml")
    result = streamfx("validate", str(path), dsn=dsn)
    assert result.returncode in (0, 2), result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr


# -- secrets ------------------------------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SPECIAL = " '\\=@%:/?&#\"$"
#: Passwords with spaces, quotes, backslashes, = @ % and friends; six letters in a row keep
#: each one unlikely to appear in output by chance (six digits would: timestamps' .000000).
PASSWORDS = st.builds(
    lambda a, b, c: a + b + c,
    st.text(SPECIAL + ALNUM, max_size=8),
    st.text(ALNUM[:52], min_size=6, max_size=6),
    st.text(SPECIAL + ALNUM, max_size=8),
)


def _conninfo_quote(password: str) -> str:
    """The password as a libpq key=value value: single-quoted, \\ and ' escaped."""
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _forms(password: str) -> set[str]:
    return {password, quote(password, safe=""), _conninfo_quote(password)[1:-1]}


def _readable(path: Path) -> str:
    """A file's text: a Parquet file's rows and metadata (its bytes hold base64 and
    compressed data, where six letters in a row occur by chance)."""
    if path.suffix != ".parquet":
        return path.read_text(errors="replace")
    import polars as pl
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path).metadata or {}
    ours = {k: v for k, v in metadata.items() if k != b"ARROW:schema"}  # base64 of the schema
    return pl.read_parquet(path).write_csv() + repr(ours)


def _assert_secret_kept(password: str, *texts: str) -> None:
    for text in texts:
        for form in _forms(password):
            assert form not in text, (form, text)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(password=PASSWORDS, uri=st.booleans())
def test_unreachable_server_never_prints_password(tmp_path: Path, password: str, uri: bool) -> None:
    if uri:
        dsn = f"postgresql://analyst:{quote(password, safe='')}@127.0.0.1:9/features"
    else:
        dsn = f"host=127.0.0.1 port=9 dbname=features password={_conninfo_quote(password)}"
    path = write_pipeline(tmp_path / "pipeline.yaml")
    result = streamfx("run", str(path), dsn=dsn, env={"PGPASSWORD": password + "env"})
    assert result.returncode == 2, result.stderr
    assert "cannot connect to PostgreSQL" in result.stderr
    _assert_secret_kept(password, result.stdout, result.stderr)


@settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(password=PASSWORDS)
def test_password_absent_from_output_report_and_files(
    tmp_path_factory: pytest.TempPathFactory, pg_server: str, password: str
) -> None:
    """A run that works (the embedded server trusts its socket and ignores the password), in
    URI and key=value form: the password is nowhere in the output folder, report included."""
    import adbc_driver_postgresql.dbapi as pg

    name = f"secret_{abs(hash(password)) % 10**9}"
    with pg.connect(pg_server, autocommit=True) as admin, admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    head, _, query = pg_server.partition("?")
    uri = f"{head.rsplit('/', 1)[0]}/{name}?{query}"
    with pg.connect(uri) as conn:
        seed_demo(conn, DemoTables(), days=1)
        conn.commit()
    socket = query.removeprefix("host=")
    for form, dsn in (
        ("uri", uri.replace("postgres:@", f"postgres:{quote(password, safe='')}@", 1)),
        ("kv", f"host={socket} dbname={name} user=postgres password={_conninfo_quote(password)}"),
    ):
        folder = tmp_path_factory.mktemp(form)
        path = write_pipeline(
            folder / "pipeline.yaml",
            source__dsn=dsn,
            sinks__postgres__dsn=dsn,
            stages__classify={"profile": None},
        )
        result = streamfx("run", str(path), "--limit", "1", "--force", env={"PGPASSWORD": password})
        assert result.returncode == 0, result.stderr
        files = [_readable(p) for p in (folder / "out").rglob("*") if p.is_file()]
        reports = list((folder / "out").rglob("runs/*.json"))
        assert reports, sorted(folder.rglob("*"))
        json.loads(reports[0].read_text())
        _assert_secret_kept(password, result.stdout, result.stderr, *files)


def test_redact_knows_every_dsn_connected_with() -> None:
    """What the run report's ``ended`` and every error line go through."""
    from streamfx.database import redact

    secret = "abc'def ghi\\jkl"
    dsn = f"host=127.0.0.1 port=9 password={_conninfo_quote(secret)}"
    with pytest.raises(StreamfxError):
        connect(dsn)
    assert secret not in redact(f"aborted: lost {dsn} ({secret})")


# -- embedded seeding ---------------------------------------------------------------------


def _assert_last_line_error(result, needle: str) -> None:
    """The embedded server's start is announced on stderr before the error line."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert needle in result.stderr.splitlines()[-1], result.stderr


def test_embedded_seeds_only_shipped_names_or_a_new_server(tmp_path: Path) -> None:
    """A misspelt schema, and (once the server holds tables) a misspelt table, are errors;
    nothing is seeded into them."""
    data_dir = tmp_path / "pg"
    embedded = {"dsn": "embedded", "embedded": {"data_dir": str(data_dir)}}
    base = {
        "source__dsn": None,
        "source__embedded": embedded["embedded"],
        "stages__classify": {"profile": None},
        "stages__extract": {"rolling_windows": [], "n_jobs": 0},
        "sinks": {"parquet": {"path": str(tmp_path / "out")}},
    }
    path = write_pipeline(tmp_path / "schema.yaml", source__schema="pubic", **base)
    _assert_last_line_error(
        streamfx("run", str(path)), "table pubic.sensor_readings does not exist"
    )
    path = write_pipeline(tmp_path / "good.yaml", **base)
    result = streamfx("run", str(path), "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert "seeded demo data" in result.stderr
    path = write_pipeline(tmp_path / "table.yaml", source__readings__table="sensor_reading", **base)
    _assert_last_line_error(
        streamfx("run", str(path)), "table public.sensor_reading does not exist"
    )
    conn = connect(start_embedded(data_dir))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        )
        tables = cur.fetchall()
    conn.close()
    assert ("public", "sensor_readings") in tables
    assert not [t for t in tables if t[0] == "pubic" or t[1] == "sensor_reading"], tables
