"""The tsfresh extractor and ``streamfx.extract_features``, checked against tsfresh itself."""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import tsfresh

import streamfx
from streamfx import Extractor, extract_features, feature_set
from streamfx.errors import StreamfxError
from streamfx.extract.extractors.tsfresh import TsfreshExtractor
from streamfx.model import FEATURES_SCHEMA, READINGS_SCHEMA
from streamfx.plugins.manager import get_extractor

#: Calculators whose value depends on the order of the series (minimal does not).
ORDERED = {
    "mean": None,
    "autocorrelation": [{"lag": 1}],
    "first_location_of_maximum": None,
    "last_location_of_minimum": None,
    "quantile": [{"q": 0.25}],
}
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def _readings(eras: dict[str, dict[str, int]], seed: int = 0) -> pa.Table:
    """READINGS_SCHEMA rows for {era: {sensor: n}}, shuffled (random values, 5-minute steps)."""
    rng = np.random.default_rng(seed)
    rows = [
        (era, sensor, T0 + dt.timedelta(minutes=5 * i), float(rng.normal()))
        for era, sensors in eras.items()
        for sensor, n in sensors.items()
        for i in range(n)
    ]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays([pa.array(c) for c in columns], schema=READINGS_SCHEMA)


def _tsfresh_direct(readings: pa.Table, fc_parameters: dict, **kwargs) -> pd.DataFrame:
    return tsfresh.extract_features(
        readings.to_pandas(),
        column_id="era_id",
        column_sort="time",
        column_kind="sensor",
        column_value="value",
        default_fc_parameters={},
        kind_to_fc_parameters=fc_parameters,
        disable_progressbar=True,
        n_jobs=0,
        **kwargs,
    )


def _as_dict(features: pa.Table) -> dict[tuple[str, str, str], float]:
    assert features.schema == FEATURES_SCHEMA
    rows = features.to_pylist()
    out = {(r["era_id"], r["sensor"], r["feature"]): r["value"] for r in rows}
    assert len(out) == len(rows), "duplicate (era, sensor, feature) rows"
    return out


def _assert_matches_tsfresh(features: pa.Table, readings: pa.Table, fc_parameters: dict) -> None:
    expected_wide = _tsfresh_direct(readings, fc_parameters)
    present = {(r["era_id"], r["sensor"]) for r in readings.to_pylist()}
    expected = {
        (str(era), sensor, feature): value
        for column in expected_wide.columns
        for sensor, feature in [column.split("__", 1)]  # test sensors hold no "__"
        for era, value in expected_wide[column].items()
        if (str(era), sensor) in present
    }
    got = _as_dict(features)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


# -- TsfreshExtractor ---------------------------------------------------------------------------


def test_extractor_minimal_matches_tsfresh():
    readings = _readings(
        {f"e{i}": {"air_temp_c": 20 + i, "co2_ppm": 15, "rh_pct": 9} for i in range(4)}
    )
    fc = {s: feature_set("minimal") for s in ("air_temp_c", "co2_ppm", "rh_pct")}
    features = TsfreshExtractor().extract(readings, fc)
    _assert_matches_tsfresh(features, readings, fc)
    assert features.num_rows == 4 * 3 * len(feature_set("minimal"))
    # era by era, sensors sorted within an era
    eras, sensors = features["era_id"].to_pylist(), features["sensor"].to_pylist()
    pairs = list(dict.fromkeys(zip(eras, sensors, strict=True)))
    assert pairs == sorted(pairs)


def test_extractor_efficient_matches_tsfresh():
    readings = _readings({"a": {"s1": 30, "s2": 25}, "b": {"s1": 28, "s2": 31}}, seed=1)
    fc = {"s1": feature_set("efficient"), "s2": feature_set("efficient")}
    _assert_matches_tsfresh(TsfreshExtractor().extract(readings, fc), readings, fc)


def test_extractor_per_sensor_sets_and_ignored_sensors():
    readings = _readings({"a": {"s1": 12, "s2": 12, "other": 5}, "b": {"s1": 10, "s2": 8}})
    fc = {"s1": feature_set("minimal"), "s2": ORDERED, "absent": feature_set("minimal")}
    features = TsfreshExtractor().extract(readings, fc)
    assert set(features["sensor"].to_pylist()) == {"s1", "s2"}
    _assert_matches_tsfresh(features, readings, {k: v for k, v in fc.items() if k != "absent"})


def test_extractor_sensor_without_readings_in_an_era_yields_no_rows():
    readings = _readings({"a": {"s1": 10, "s2": 10}, "b": {"s1": 10}, "c": {"s2": 7}})
    fc = {"s1": feature_set("minimal"), "s2": feature_set("minimal")}
    # tsfresh itself fills the missing pairs with NaN ...
    direct = _tsfresh_direct(readings, fc)
    assert direct.loc["b", "s2__mean"] != direct.loc["b", "s2__mean"]
    # ... the extractor leaves them out
    features = TsfreshExtractor().extract(readings, fc)
    pairs = set(zip(features["era_id"].to_pylist(), features["sensor"].to_pylist(), strict=True))
    assert pairs == {("a", "s1"), ("a", "s2"), ("b", "s1"), ("c", "s2")}


def test_extractor_keeps_nan_of_undefined_features():
    n = 6
    readings = pa.Table.from_pydict(
        {
            "era_id": ["e"] * n,
            "sensor": ["flat"] * n,
            "time": [T0 + dt.timedelta(minutes=i) for i in range(n)],
            "value": [3.0] * n,
        },
        schema=READINGS_SCHEMA,
    )
    got = _as_dict(TsfreshExtractor().extract(readings, {"flat": ORDERED}))
    assert got[("e", "flat", "mean")] == 3.0
    assert math.isnan(got[("e", "flat", "autocorrelation__lag_1")])


def test_extractor_splits_at_the_sensor_prefix():
    readings = _readings({"e": {"a": 8, "a__b": 8, "pipe__temp": 8}})
    fc = {s: {"mean": None, "quantile": [{"q": 0.5}]} for s in ("a", "a__b", "pipe__temp")}
    got = _as_dict(TsfreshExtractor().extract(readings, fc))
    assert set(got) == {
        ("e", s, f) for s in ("a", "a__b", "pipe__temp") for f in ("mean", "quantile__q_0.5")
    }
    direct = _tsfresh_direct(readings, fc)
    assert got[("e", "a__b", "quantile__q_0.5")] == pytest.approx(
        direct.loc["e", "a__b__quantile__q_0.5"]
    )


def test_extractor_empty_input_and_parallel():
    extractor = TsfreshExtractor()
    assert extractor.extract(READINGS_SCHEMA.empty_table(), {"s": feature_set("minimal")}) == (
        FEATURES_SCHEMA.empty_table()
    )
    readings = _readings({"a": {"s1": 10}, "b": {"s1": 12, "s2": 9}})
    fc = {"s1": ORDERED, "s2": ORDERED}
    assert extractor.extract(readings, {"nothing": ORDERED}).num_rows == 0
    assert extractor.extract(readings, fc, n_jobs=2).equals(extractor.extract(readings, fc))


def test_extractor_is_registered_through_the_hook():
    extractor = get_extractor("tsfresh")
    assert isinstance(extractor, TsfreshExtractor)
    assert isinstance(extractor, Extractor)
    assert extractor.name == "tsfresh" and extractor.description


# -- streamfx.extract_features ------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_df() -> pd.DataFrame:
    """Long format, shuffled; id 3 lacks kind "a" (so tsfresh orders "b" columns first)."""
    rng = np.random.default_rng(3)
    rows = [
        (i, t, kind, float(rng.normal()))
        for i in (7, 3, 12)
        for kind in ("b", "a")
        if (i, kind) != (3, "a")
        for t in range(11 + i % 4)
    ]
    df = pd.DataFrame(rows, columns=["id", "t", "kind", "v"])
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


LONG = {"column_id": "id", "column_sort": "t", "column_kind": "kind", "column_value": "v"}


def _tsfresh(df: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return tsfresh.extract_features(df, disable_progressbar=True, n_jobs=0, **kwargs)


@pytest.mark.parametrize("fc", ["minimal", ORDERED])
def test_pandas_output_equals_tsfresh(long_df, fc):
    expected = _tsfresh(
        long_df, default_fc_parameters=feature_set(fc) if isinstance(fc, str) else fc, **LONG
    )
    got = extract_features(long_df, **LONG, default_fc_parameters=fc)
    assert list(got.columns) == list(expected.columns)
    assert got.columns[0].startswith("b__")
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6)


def test_values_beyond_tsfreshs_grids(long_df):
    """Any parameter value tsfresh accepts gives tsfresh's values (natively or through
    tsfresh); one it refuses raises as tsfresh would, naming it."""
    fc = {
        "change_quantiles": [
            {"ql": 0.1, "qh": 0.9, "isabs": True, "f_agg": "median"},
            {"ql": 0.1, "qh": 0.9, "isabs": False, "f_agg": "std"},
        ],
        "agg_autocorrelation": [{"f_agg": "max", "maxlag": 4}],
        "mean_n_absolute_max": [{"number_of_maxima": 2}],
    }
    expected = _tsfresh(long_df, default_fc_parameters=fc, **LONG)
    got = extract_features(long_df, **LONG, default_fc_parameters=fc)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6)
    refused = {
        "mean_n_absolute_max": ([{"number_of_maxima": 0}], "not greater than 1"),
        "quantile": ([{"q": 1.5}], "Quantiles must be in the range [0, 1]"),
        "agg_linear_trend": (
            [{"attr": "slope", "chunk_len": 5, "f_agg": "median"}],
            "has no attribute 'median'",
        ),
    }
    for name, (params, message) in refused.items():
        with pytest.raises(Exception, match=re.escape(message)):
            tsfresh.extract_features(
                long_df,
                default_fc_parameters={name: params},
                n_jobs=0,
                disable_progressbar=True,
                **LONG,
            )
        with pytest.raises(
            StreamfxError, match=rf"{name}\[0\]: tsfresh refuses .*{re.escape(message)}"
        ):
            extract_features(long_df, **LONG, default_fc_parameters={name: params})


def test_default_is_tsfreshs_default(long_df):
    small = long_df[long_df["id"] != 12]
    expected = _tsfresh(small, **LONG)  # tsfresh's own default: ComprehensiveFCParameters
    pd.testing.assert_frame_equal(extract_features(small, **LONG), expected, rtol=1e-6)
    assert streamfx.extract_features is extract_features


def test_polars_pyarrow_pandas_agree(long_df):
    from_pandas = extract_features(long_df, **LONG, default_fc_parameters=ORDERED)
    from_polars = extract_features(pl.from_pandas(long_df), **LONG, default_fc_parameters=ORDERED)
    table = pa.Table.from_pandas(long_df, preserve_index=False).cast(
        pa.schema(
            [("id", pa.int32()), ("t", pa.int64()), ("kind", pa.string()), ("v", pa.float64())]
        )
    )
    from_arrow = extract_features(table, **LONG, default_fc_parameters=ORDERED)

    assert isinstance(from_pandas, pd.DataFrame)
    assert isinstance(from_polars, pl.DataFrame)
    assert isinstance(from_arrow, pa.Table)
    assert from_polars.columns == ["id", *from_pandas.columns]
    assert from_arrow.column_names == ["id", *from_pandas.columns]
    assert from_polars.schema["id"] == pl.Int64
    assert from_arrow.schema.field("id").type == pa.int32()
    assert from_polars["id"].to_list() == from_arrow["id"].to_pylist() == [3, 7, 12]
    values = from_pandas.to_numpy()
    np.testing.assert_array_equal(from_polars.drop("id").to_numpy(), values)
    np.testing.assert_array_equal(pl.from_arrow(from_arrow).drop("id").to_numpy(), values)


def test_string_ids_and_guessed_value_column(long_df):
    df = long_df.assign(id=long_df["id"].map(lambda i: f"unit-{i}"))
    expected = _tsfresh(df, default_fc_parameters=ORDERED, column_id="id", column_sort="t",
                        column_kind="kind")  # fmt: skip
    got = extract_features(df, column_id="id", column_sort="t", column_kind="kind",
                           default_fc_parameters=ORDERED)  # fmt: skip
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6)


def test_no_sort_column_keeps_the_given_order(long_df):
    kwargs = {"column_id": "id", "column_kind": "kind", "column_value": "v"}
    df = long_df.drop(columns="t")
    expected = _tsfresh(df, default_fc_parameters=ORDERED, **kwargs)
    got = extract_features(pl.from_pandas(df), default_fc_parameters=ORDERED, **kwargs)
    np.testing.assert_allclose(got.drop("id").to_numpy(), expected.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "to_sort",
    [
        lambda t: pd.Timestamp("2024-01-01") + pd.to_timedelta(t * 90, unit="s"),  # naive
        lambda t: pd.Timestamp("2024-01-01", tz="Europe/Copenhagen") + pd.to_timedelta(t, "h"),
        lambda t: pd.Timestamp("2024-01-01") + pd.to_timedelta(t, unit="ns"),  # below 1 us
        lambda t: t.map(lambda x: f"k{x:03d}"),  # strings
        lambda t: t * -0.5,  # descending floats
    ],
    ids=["naive", "tz", "ns", "str", "float"],
)
def test_sort_column_types(long_df, to_sort):
    df = long_df.assign(t=to_sort(long_df["t"]))
    expected = _tsfresh(df, default_fc_parameters=ORDERED, **LONG)
    pd.testing.assert_frame_equal(
        extract_features(df, **LONG, default_fc_parameters=ORDERED), expected, rtol=1e-6
    )


def test_wide_format(long_df):
    wide = (
        long_df[long_df["id"] != 3]
        .pivot(index=["id", "t"], columns="kind", values="v")
        .reset_index()
        .rename_axis(columns=None)[["id", "t", "b", "a"]]
    )
    expected = _tsfresh(wide, default_fc_parameters=ORDERED, column_id="id", column_sort="t")
    got = extract_features(wide, column_id="id", column_sort="t", default_fc_parameters=ORDERED)
    assert got.columns[0].startswith("b__")  # wide: kinds in column order
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6)

    got_pl = extract_features(pl.from_pandas(wide), column_id="id", column_sort="t",
                              default_fc_parameters=ORDERED)  # fmt: skip
    np.testing.assert_allclose(got_pl.drop("id").to_numpy(), expected.to_numpy(), rtol=1e-6)
    only_a = extract_features(wide, column_id="id", column_sort="t", column_value="a",
                              default_fc_parameters=ORDERED)  # fmt: skip
    assert all(c.startswith("a__") for c in only_a.columns)


def test_kind_to_fc_parameters(long_df):
    only_a = {"a": ORDERED}
    expected = _tsfresh(long_df, kind_to_fc_parameters=only_a, **LONG)
    got = extract_features(long_df, **LONG, kind_to_fc_parameters=only_a)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6)
    assert list(got.index) == [7, 12]  # id 3 has no kind "a": no row, as in tsfresh

    # an explicit default still covers the kinds not named (tsfresh's rule), names allowed
    expected = _tsfresh(
        long_df,
        default_fc_parameters=ORDERED,
        kind_to_fc_parameters={"a": feature_set("minimal")},
        **LONG,
    )
    got = extract_features(
        pl.from_pandas(long_df),
        **LONG,
        default_fc_parameters=ORDERED,
        kind_to_fc_parameters={"a": "minimal"},
    )
    assert got.columns[1:] == list(expected.columns)
    np.testing.assert_allclose(got.drop("id").to_numpy(), expected.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"column_id": None}, "column_id is required"),
        ({"column_id": "nope"}, "column_id='nope' is not a column"),
        ({"column_sort": "nope"}, "column_sort='nope'"),
        ({"column_kind": "nope"}, "column_kind='nope'"),
        ({"column_value": "nope"}, "column_value='nope'"),
        ({"engine": "warp"}, "unknown extractor 'warp'"),
        ({"default_fc_parameters": "huge"}, "unknown feature set 'huge'"),
        ({"default_fc_parameters": {"no_such_calc": None}}, "unknown feature calculator"),
        ({"default_fc_parameters": 3}, "default_fc_parameters"),
        ({"kind_to_fc_parameters": {"a": "huge"}}, "kind_to_fc_parameters"),
        ({"kind_to_fc_parameters": ["a"]}, "kind_to_fc_parameters"),
    ],
)
def test_bad_arguments(long_df, kwargs, message):
    with pytest.raises(StreamfxError, match=message):
        extract_features(long_df, **{**LONG, **kwargs})


def test_bad_inputs(long_df):
    with pytest.raises(StreamfxError, match="must be a polars DataFrame"):
        extract_features(long_df.to_dict(), column_id="id")
    with pytest.raises(StreamfxError, match="cannot guess the value column"):
        extract_features(long_df.assign(x=1.0), column_id="id", column_kind="kind")
    with pytest.raises(StreamfxError, match="'v' must not contain missing values"):
        extract_features(
            long_df.assign(v=np.where(long_df.index == 3, np.nan, long_df["v"])), **LONG
        )
    with pytest.raises(StreamfxError, match="'kind' must not contain missing"):
        extract_features(pl.from_pandas(long_df).with_columns(kind=pl.lit(None, pl.String)), **LONG)
    with pytest.raises(StreamfxError, match="not numbers"):
        extract_features(long_df.assign(v="x"), **LONG)


def test_n_jobs_give_identical_results():
    """The default (the cores, as threads), 0 and 3 jobs: the same frame, bit for bit."""
    rng = np.random.default_rng(8)
    lengths = rng.integers(5, 300, size=30)
    frame = pl.DataFrame(
        {
            "id": np.repeat(np.arange(len(lengths)), lengths),
            "t": np.concatenate([np.arange(n) for n in lengths]),
            "v": np.concatenate([rng.normal(size=n).cumsum() for n in lengths]),
        }
    )
    args = {"column_id": "id", "column_sort": "t", "default_fc_parameters": "efficient"}
    default = extract_features(frame, **args, disable_progressbar=True)
    assert streamfx.api.N_JOBS >= 1
    for jobs in (0, 3):
        other = extract_features(frame, **args, n_jobs=jobs, disable_progressbar=True)
        assert other.columns == default.columns
        assert np.array_equal(other.to_numpy(), default.to_numpy(), equal_nan=True)
