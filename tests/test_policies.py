"""Data policies: gap filling, tsfresh's impute, one feature set for every sensor, routing's
complexity as the reference measured it; on the embedded PostgreSQL and real tsfresh."""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from tsfresh.utilities.dataframe_functions import impute

from streamfx import READINGS_SCHEMA, NativeExtractor, StreamfxError, extract_features
from streamfx.classify.analysis import analyze_eras
from streamfx.classify.classifier import Classifier
from streamfx.classify.config import ClassifyConfig, RoutingConfig
from streamfx.classify.plan import available_cores
from streamfx.classify.routing import route
from streamfx.extract.era_features import EraFeatures
from streamfx.extract.feature_sets import feature_set
from streamfx.model import Era

from .helpers import db_features, streamfx, write_pipeline

PLUGINS = Path(__file__).parent / "plugins"
T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
MINIMAL = sorted(feature_set("minimal"))  # the minimal set's calculators are its features


def at(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


def load_tables(conn, readings: list[tuple[int, str, float | None]], eras: dict[int, int]) -> None:
    """``readings(time, sensor, value)`` (times in minutes after T0) and ``eras(era_id,
    start_time, end_time)``: era k starts at minute ``eras[k]`` and lasts an hour."""
    values = pa.table(
        {
            "time": pa.array([at(m) for m, _, _ in readings], pa.timestamp("us", tz="UTC")),
            "sensor": [s for _, s, _ in readings],
            "value": pa.array([v for _, _, v in readings], pa.float64()),
        }
    )
    spans = pa.table(
        {
            "era_id": pa.array(list(eras), pa.int64()),
            "start_time": pa.array([at(m) for m in eras.values()], pa.timestamp("us", tz="UTC")),
            "end_time": pa.array([at(m + 60) for m in eras.values()], pa.timestamp("us", tz="UTC")),
        }
    )
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE readings (time timestamptz, sensor text, value float8)")
        cur.adbc_ingest("readings", values, mode="append")
        cur.execute(
            "CREATE TABLE eras (era_id bigint, start_time timestamptz, end_time timestamptz)"
        )
        cur.adbc_ingest("eras", spans, mode="append")
    conn.commit()


def pipeline(tmp_path: Path, **overrides) -> Path:
    settings = {
        "source__readings": {"table": "readings", "layout": "long"},
        "source__eras": {"table": "eras"},
        "stages__extract": {"rolling_windows": []},
        "executor__cpu_workers": 1,
    }
    return write_pipeline(tmp_path / "pipeline.yaml", **{**settings, **overrides})


# -- fill -------------------------------------------------------------------------------------

#: Era 1 (minutes 0-60): x at 0, 10, (null at 15), 20; y at 5, 15, (NaN at 20). Era 2 (60-120):
#: air_temp_c at 60 and 70, x at 65. Each era's grid is its own timestamps: 0, 5, 10, 15, 20
#: and 60, 65, 70.
GAPPY = [
    (0, "x", 1.0),
    (10, "x", 3.0),
    (15, "x", None),
    (20, "x", 5.0),
    (5, "y", 10.0),
    (15, "y", 30.0),
    (20, "y", float("nan")),
    (60, "air_temp_c", 7.0),
    (70, "air_temp_c", 8.0),
    (65, "x", 2.0),
]

#: (era, sensor) -> (length, sum_values), worked out by hand on the grids above.
FILLED = {
    "none": {("1", "x"): (3, 9.0), ("1", "y"): (2, 40.0), ("2", "air_temp_c"): (2, 15.0),
             ("2", "x"): (1, 2.0)},
    # x: 1 1 3 3 5; y: - 10 10 30 30; air_temp_c: 7 7 8; x (era 2): - 2 2
    "ffill": {("1", "x"): (5, 13.0), ("1", "y"): (4, 80.0), ("2", "air_temp_c"): (3, 22.0),
              ("2", "x"): (2, 4.0)},
    # and backward over the grid's start: y 10 10 10 30 30; x (era 2): 2 2 2
    "ffill_bfill": {("1", "x"): (5, 13.0), ("1", "y"): (5, 90.0), ("2", "air_temp_c"): (3, 22.0),
                    ("2", "x"): (3, 6.0)},
}  # fmt: skip


def length_and_sum(features: pl.DataFrame) -> dict[tuple[str, str], tuple[int, float]]:
    wide = features.filter(pl.col("feature").is_in(["length", "sum_values"])).pivot(
        "feature", index=["era_id", "sensor"], values="value"
    )
    return {
        (e, s): (int(n), total)
        for e, s, n, total in wide.select("era_id", "sensor", "length", "sum_values").iter_rows()
    }


@pytest.mark.parametrize("fill", ["none", "ffill", "ffill_bfill"])
def test_fill_on_each_eras_own_grid(fill: str) -> None:
    """The extract stage on readings as the source hands them over (null and NaN dropped;
    era 2 first, so the eras' order is the given one, not sorted)."""
    kept = [r for r in GAPPY if r[2] is not None and not np.isnan(r[2])]
    rows = [
        {"era_id": "1" if m < 60 else "2", "sensor": s, "time": at(m), "value": v}
        for m, s, v in kept
    ]
    rows.sort(key=lambda r: (r["era_id"] != "2", r["sensor"], r["time"]))
    readings = pa.Table.from_pylist(rows, schema=READINGS_SCHEMA)
    stage = EraFeatures(
        NativeExtractor(),
        Classifier(ClassifyConfig(profile=None)),
        rolling_windows=[],
        on_calculator_error="nan",
        fill=fill,
    )
    features = pl.from_arrow(stage(readings))
    assert length_and_sum(features) == FILLED[fill]


def test_fill_in_a_run_with_one_feature_set(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    """A real run: the null and NaN readings the source drops are gaps on the grid and get
    filled; --features minimal gives every sensor the minimal set (air_temp_c's profile set
    is efficient); the profile matches a sensor, so no notice."""
    load_tables(pg_conn, GAPPY, {1: 0, 2: 60})
    path = pipeline(tmp_path, stages__extract={"rolling_windows": [], "fill": "ffill_bfill"})
    result = streamfx("run", str(path), "-q", "--features", "minimal", dsn=pg_dsn)
    assert result.returncode == 0, result.stderr
    assert "matches none" not in result.stderr

    features = db_features(pg_conn, "streamfx_features")
    assert length_and_sum(features) == FILLED["ffill_bfill"]
    names = features.group_by("era_id", "sensor").agg(pl.col("feature").sort())
    assert names.height == 4
    assert all(row == MINIMAL for row in names["feature"].to_list())


# -- impute -----------------------------------------------------------------------------------


def impute_readings() -> list[tuple[int, str, float | None]]:
    """Eras 1-5 (an hour each). probe's first value cues ``signal``: +inf (era 1), -inf (2),
    NaN (3), then 7.0 and 8.0; ``undefined`` is NaN everywhere; other only in eras 1-3, so
    its columns are null in eras 4 and 5."""
    rows: list[tuple[int, str, float | None]] = []
    for era, first in enumerate([1.0, 2.0, 3.0, 7.0, 8.0]):
        start = 60 * era
        rows += [(start, "probe", first), (start + 5, "probe", first + 10.0)]
        if era < 3:
            rows += [(start + m, "other", float(era * 10 + m)) for m in (0, 5, 10)]
    return rows


def test_impute_composed_parquet_as_tsfresh(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    load_tables(pg_conn, impute_readings(), {k + 1: 60 * k for k in range(5)})
    settings = {
        "plugins": [str(PLUGINS / "nonfinite.py")],
        "stages__classify": {"profile": None, "sensors": {"probe": {"calculators": ["signal", "undefined"]}}},
    }  # fmt: skip
    first = streamfx("run", str(pipeline(tmp_path, **settings)), "-q", dsn=pg_dsn)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out"
    shutil.copy(out / "features.parquet", tmp_path / "raw.parquet")
    imputing = pipeline(
        tmp_path, **settings, stages__extract={"rolling_windows": [], "impute": "tsfresh"}
    )
    second = streamfx("run", str(imputing), "-q", dsn=pg_dsn)
    assert second.returncode == 0, second.stderr
    assert "5 already done" in second.stdout  # impute recomputes no era: it composes again

    raw = pl.read_parquet(tmp_path / "raw.parquet").sort("era_id")
    got = pl.read_parquet(out / "features.parquet").sort("era_id")
    columns = [c for c in raw.columns if "__" in c]
    assert got.columns == raw.columns and got["era_id"].to_list() == list("12345")
    signal = raw["probe__signal"].to_list()
    assert signal[:2] == [np.inf, -np.inf] and np.isnan(signal[2])
    assert raw["probe__undefined"].is_nan().all()
    assert raw["other__mean"].null_count() == 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tsfresh's: a column without finite values
        expected = impute(raw.select(columns).to_pandas()).to_numpy()
    assert np.array_equal(got.select(columns).to_numpy(), expected)
    assert got["probe__signal"].to_list() == [8.0, 7.0, 7.5, 7.0, 8.0]  # max, min, median
    assert got["probe__undefined"].to_list() == [0.0] * 5
    assert got.select(raw.columns[:5]).equals(raw.select(raw.columns[:5]))  # era columns kept

    database = db_features(pg_conn, "streamfx_features")  # the database keeps raw values
    stored = database.filter(pl.col("feature") == "signal").sort("era_id")["value"].to_list()
    assert stored[:2] == [np.inf, -np.inf] and np.isnan(stored[2])


def api_frame() -> pd.DataFrame:
    """Kind a gives +inf and -inf maxima/minima, b misses id 4, c is constant (its
    autocorrelation is NaN for every id)."""
    rows = []
    series = {
        "a": {1: [1.0, np.inf], 2: [-np.inf, 2.0], 3: [1.0, 2.0, 3.0], 4: [4.0, 5.0, 6.0]},
        "b": {1: [1.0, 2.0], 2: [3.0, 5.0], 3: [0.5, 0.25]},
        "c": {i: [5.0, 5.0, 5.0] for i in (1, 2, 3, 4)},
    }
    for kind, by_id in series.items():
        for id_, values in by_id.items():
            rows += [(id_, t, kind, v) for t, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["id", "time", "kind", "value"])


API_SETTINGS = {
    "a": {"maximum": None, "minimum": None, "mean": None},
    "b": {"mean": None},
    "c": {"autocorrelation": [{"lag": 1}]},
}


def test_impute_function_in_the_api_as_tsfresh() -> None:
    frame = api_frame()
    arguments = {"column_id": "id", "column_sort": "time", "column_kind": "kind"}
    raw = extract_features(frame, **arguments, kind_to_fc_parameters=API_SETTINGS)
    assert np.isposinf(raw["a__maximum"]).any() and np.isneginf(raw["a__minimum"]).any()
    assert raw["b__mean"].isna().sum() == 1 and raw["c__autocorrelation__lag_1"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = impute(raw.copy())

    got = extract_features(
        frame, **arguments, kind_to_fc_parameters=API_SETTINGS, impute_function=impute
    )
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    polars = extract_features(
        pl.from_pandas(frame),
        **arguments,
        kind_to_fc_parameters=API_SETTINGS,
        impute_function=impute,
    )
    assert np.array_equal(polars.drop("id").to_numpy(), expected.to_numpy())

    with pytest.raises(StreamfxError, match="impute_function must be a function"):
        extract_features(frame, **arguments, impute_function="median")


# -- one feature set for every sensor, the profile notice -------------------------------------


def plan_rows(path: Path, dsn: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """era -> (complexity, efficient+) from `streamfx plan --csv`."""
    csv = path.parent / "plan.csv"
    result = streamfx("plan", str(path), "--csv", str(csv), *args, dsn=dsn, env=env)
    assert result.returncode == 0, result.stderr
    rows = pl.read_csv(csv, schema_overrides={"era": pl.String}).sort("era")
    return {
        "rows": {
            e: (c, f) for e, c, f in rows.select("era", "complexity", "efficient+").iter_rows()
        },
        "stdout": result.stdout,
        "stderr": result.stderr,
    }


def test_features_switch_and_profile_notice(
    tmp_path: Path, pg_dsn: str, pg_conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_tables(pg_conn, GAPPY, {1: 0, 2: 60})
    path = pipeline(tmp_path)
    monkeypatch.delenv("STREAMFX_FEATURE_SET", raising=False)
    # era 1: x, y (no rule: minimal); era 2: air_temp_c (the profile: efficient), x
    assert plan_rows(path, pg_dsn)["rows"] == {"1": (0.0, 0.0), "2": (0.5, 0.5)}
    everyone = {"1": (0.0, 1.0), "2": (0.5, 1.0)}  # complexity stays the reference's
    assert plan_rows(path, pg_dsn, "--features", "efficient")["rows"] == everyone
    comprehensive = {"STREAMFX_FEATURE_SET": "comprehensive"}
    assert plan_rows(path, pg_dsn, env=comprehensive)["rows"] == everyone
    flag_wins = plan_rows(path, pg_dsn, "--features", "minimal", env=comprehensive)
    assert flag_wins["rows"] == {"1": (0.0, 0.0), "2": (0.5, 0.0)}

    for args, env, where in (
        (["--features", "big"], None, "--features"),
        ([], {"STREAMFX_FEATURE_SET": "big"}, "STREAMFX_FEATURE_SET"),
    ):
        bad = streamfx("plan", str(path), *args, dsn=pg_dsn, env=env)
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines() == [
            f"error: {where}: unknown feature set 'big' (use minimal, efficient, comprehensive)"
        ]

    notice = "sensor profile 'reference' (stages.classify.profile) matches none of the 2 sensors"
    assert notice in plan_rows(path, pg_dsn, "--eras", "1")["stderr"]
    assert "matches none" not in plan_rows(path, pg_dsn, "--eras", "2")["stderr"]


def test_plan_shows_processes_and_n_jobs_as_written(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    load_tables(pg_conn, GAPPY, {1: 0, 2: 60})
    path = pipeline(
        tmp_path, stages__extract={"n_jobs": 4, "rolling_windows": []}, executor__cpu_workers=2
    )
    shown = plan_rows(path, pg_dsn)
    assert (
        "cpu lane: 2 worker processes, each starting n_jobs 4 tsfresh processes while tsfresh "
        "computes (up to 8 in all)" in " ".join(shown["stdout"].split())
    )
    oversubscribed = "stages.extract.n_jobs 4 x 2 CPU workers: up to 8 tsfresh processes"
    assert (oversubscribed in shown["stderr"]) == (available_cores() < 8)
    default = plan_rows(pipeline(tmp_path), pg_dsn)["stdout"]
    assert "cpu lane: 1 worker processes, tsfresh (where it computes) inside each" in default


# -- routing: complexity as the reference measured it -----------------------------------------


@pytest.mark.parametrize("override", [None, "comprehensive"])
def test_complexity_does_not_follow_the_default_feature_set(override: str | None) -> None:
    era = Era("e", T0, T0 + dt.timedelta(days=1))
    stats = pl.DataFrame(
        {"era": [0] * 4, "sensor": ["air_temp_c", "x", "y", "z"], "readings": [20_000] * 4}
    )
    analyses = {
        default: analyze_eras(
            [era],
            stats,
            Classifier(ClassifyConfig(default_features=default, feature_set=override)),
        )[0]
        for default in ("minimal", "efficient")
    }
    minimal, efficient = analyses["minimal"], analyses["efficient"]
    assert minimal.complexity_score == efficient.complexity_score == 0.25  # air_temp_c alone
    assert efficient.efficient_share == 1.0
    assert minimal.efficient_share == (1.0 if override else 0.25)
    lanes = {route(a, RoutingConfig(), "smart").lane for a in analyses.values()}
    assert lanes == {"cpu"}  # 80,000 readings, ratio 0.25, complexity 0.25: the default
