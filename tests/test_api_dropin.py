"""streamfx as a drop-in for tsfresh: tsfresh's documented examples with streamfx in tsfresh's
place, every argument of its signatures, rolling, selection and the scikit-learn transformers,
each compared with tsfresh itself."""

from __future__ import annotations

import datetime as dt
import inspect
import math
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import tsfresh
from tsfresh.feature_extraction import EfficientFCParameters, MinimalFCParameters
from tsfresh.utilities.dataframe_functions import impute
from tsfresh.utilities.dataframe_functions import roll_time_series as tsfresh_roll
from tsfresh.utilities.distribution import ApplyDistributor, MapDistributor

import streamfx
from streamfx import InvalidInput, StreamfxError
from streamfx.transformers import FeatureAugmenter, RelevantFeatureAugmenter

QUIET = {"disable_progressbar": True}
ROBOT = {"column_id": "id", "column_sort": "time"}
SMALL = {"mean": None, "maximum": None, "autocorrelation": [{"lag": 1}]}


def robot(ids: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """tsfresh's robot execution failures layout (``load_robot_execution_failures``): 15
    integer readings of six forces and torques per id, and ``y`` (True: a normal run),
    generated: failures are larger and offset, so some features are relevant."""
    rng = np.random.default_rng(seed)
    y = pd.Series({i: bool(i % 2) for i in range(1, ids + 1)})
    rows = [
        [i, t, *np.round(rng.normal(10 * (not ok), 2 if ok else 30, 6)).astype(int)]
        for i, ok in y.items()
        for t in range(15)
    ]
    columns = ["id", "time", "F_x", "F_y", "F_z", "T_x", "T_y", "T_z"]
    return pd.DataFrame(rows, columns=columns), y


def tsfresh_extract(*args, **kwargs) -> pd.DataFrame:
    return tsfresh.extract_features(*args, n_jobs=0, **QUIET, **kwargs)


@pytest.fixture(scope="module")
def robots() -> tuple[pd.DataFrame, pd.Series]:
    return robot(30)


# -- tsfresh's documented examples ---------------------------------------------------------


def test_robot_example_efficient_values_equal_tsfresh() -> None:
    df, _ = robot(4)
    settings = EfficientFCParameters()
    expected = tsfresh_extract(df, settings, **ROBOT)
    got = streamfx.extract_features(df, settings, **ROBOT, **QUIET)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6, atol=1e-9)


def test_robot_example_extract_impute_select(robots) -> None:
    """tsfresh's quick start: extract_features, impute, select_features,
    extract_relevant_features (each as in tsfresh's docs, minimal settings for speed)."""
    timeseries, y = robots
    sfx = streamfx  # the script's `import tsfresh`, swapped
    extracted = sfx.extract_features(
        timeseries, MinimalFCParameters(), column_id="id", column_sort="time", **QUIET
    )
    expected = tsfresh_extract(
        timeseries, MinimalFCParameters(), column_id="id", column_sort="time"
    )
    pd.testing.assert_frame_equal(extracted, expected)
    impute(extracted)
    impute(expected)
    filtered = sfx.select_features(extracted, y)
    pd.testing.assert_frame_equal(filtered, tsfresh.select_features(expected, y))
    assert 0 < filtered.shape[1] < extracted.shape[1]

    direct = sfx.extract_relevant_features(
        timeseries,
        y,
        column_id="id",
        column_sort="time",
        default_fc_parameters=MinimalFCParameters(),
        **QUIET,
    )
    pd.testing.assert_frame_equal(direct, filtered)

    # starting from an X: its ids' series only, the relevant features joined to it
    start = pd.DataFrame({"given": np.arange(len(y), dtype=float)}, index=y.index)
    joined = sfx.extract_relevant_features(
        timeseries, y, start, MinimalFCParameters(), column_id="id", column_sort="time", **QUIET
    )
    assert list(joined.columns) == ["given", *filtered.columns]
    with pytest.raises(ValueError, match="missing in y"):
        sfx.extract_relevant_features(timeseries, y.iloc[2:], column_id="id", **QUIET)


def test_forecasting_example_roll_extract_select() -> None:
    """tsfresh's forecasting recipe: roll_time_series, extract_features on the (id, time)
    windows, select_features against the next value; straight from polars too."""
    rng = np.random.default_rng(5)
    values = np.cumsum(rng.normal(size=40))
    df = pd.DataFrame({"id": "s", "time": np.arange(40), "x": values})
    options = {"column_id": "id", "column_sort": "time", "max_timeshift": 6, "min_timeshift": 5}
    rolled = streamfx.roll_time_series(df, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_rolled = tsfresh_roll(df, **options, n_jobs=0, **QUIET)
    pd.testing.assert_frame_equal(rolled, expected_rolled)

    features = streamfx.extract_features(rolled, MinimalFCParameters(), **ROBOT, **QUIET)
    expected = tsfresh_extract(expected_rolled, MinimalFCParameters(), **ROBOT)
    pd.testing.assert_frame_equal(features, expected)
    assert isinstance(features.index, pd.MultiIndex)
    features = features.iloc[:-1]  # the last window has no next value to predict
    target = pd.Series(values[features.index.get_level_values(1) + 1], index=features.index)
    impute(features)
    selected = streamfx.select_features(features, target)
    pd.testing.assert_frame_equal(selected, tsfresh.select_features(features, target))
    assert "x__mean" in selected.columns

    from_polars = streamfx.roll_time_series(pl.from_pandas(df), **options)
    assert from_polars.schema["id"] == pl.Struct({"id": pl.String, "time": pl.Int64})
    polars_features = streamfx.extract_features(
        from_polars, MinimalFCParameters(), **ROBOT, **QUIET
    )
    assert polars_features["id"].struct.field("time").to_list() == list(
        expected.index.get_level_values(1)
    )
    np.testing.assert_allclose(polars_features.drop("id").to_numpy(), expected.to_numpy())


# -- extract_features: tsfresh's signature, every argument ---------------------------------


def test_signatures_are_tsfreshs() -> None:
    from tsfresh.utilities import dataframe_functions

    pairs = [
        (streamfx.extract_features, tsfresh.extract_features),
        (streamfx.select_features, tsfresh.select_features),
        (streamfx.extract_relevant_features, tsfresh.extract_relevant_features),
        (streamfx.roll_time_series, dataframe_functions.roll_time_series),
    ]
    for ours, theirs in pairs:
        mine = inspect.signature(ours).parameters.values()
        positional = [p.name for p in mine if p.kind is not p.KEYWORD_ONLY]
        assert positional == list(inspect.signature(theirs).parameters), ours.__name__
    transformers = [
        (FeatureAugmenter, tsfresh.transformers.FeatureAugmenter),
        (RelevantFeatureAugmenter, tsfresh.transformers.RelevantFeatureAugmenter),
    ]
    for ours, theirs in transformers:
        assert issubclass(ours, theirs)
        assert set(ours().get_params()) == set(theirs().get_params()) | {"engine"}


def test_positional_order_and_settings_objects(robots) -> None:
    df, _ = robots
    by_position = streamfx.extract_features(
        df, MinimalFCParameters(), None, "id", "time", None, None, None, 0, False, True
    )
    by_name = streamfx.extract_features(
        df, default_fc_parameters="minimal", column_id="id", column_sort="time", **QUIET
    )
    pd.testing.assert_frame_equal(by_position, by_name)


def test_chunksize_is_the_work_unit_and_progress_shows(robots, capfd) -> None:
    df, _ = robots
    small = df[df["id"] <= 4]  # 4 ids x 6 kinds: 24 series
    whole = streamfx.extract_features(small, SMALL, **ROBOT, **QUIET)
    capfd.readouterr()
    for chunksize, units in ((1, 24), (7, 4), (None, 1)):
        got = streamfx.extract_features(small, SMALL, **ROBOT, chunksize=chunksize)
        pd.testing.assert_frame_equal(got, whole)
        shown = capfd.readouterr().err
        assert "Feature Extraction" in shown and f"{units}/{units}" in shown, shown
    streamfx.extract_features(small, SMALL, **ROBOT, disable_progressbar=True)
    assert capfd.readouterr().err == ""
    with pytest.raises(ValueError, match="chunksize must be a positive number"):
        streamfx.extract_features(small, SMALL, **ROBOT, chunksize=0, **QUIET)


class Recording(MapDistributor):
    """A tsfresh distributor that remembers the work units it was given."""

    def distribute(self, func, partitioned_chunks, kwargs):
        chunks = list(partitioned_chunks)
        self.units = sum(len(chunk) for chunk in chunks)
        return map(partial(func, **kwargs), chunks)


def test_distributor_runs_the_units_or_is_refused(robots) -> None:
    df, _ = robots
    expected = streamfx.extract_features(df, SMALL, **ROBOT, **QUIET)
    distributor = Recording(disable_progressbar=True)
    got = streamfx.extract_features(df, SMALL, **ROBOT, chunksize=50, distributor=distributor)
    pd.testing.assert_frame_equal(got, expected)
    assert distributor.units == math.ceil(30 * 6 / 50)
    for wrong in (ApplyDistributor(meta=[]), object()):
        with pytest.raises(ValueError, match="pass n_jobs, or one of tsfresh's MapDistributor"):
            streamfx.extract_features(df, SMALL, **ROBOT, distributor=wrong, **QUIET)


def test_n_jobs_and_engine(robots) -> None:
    df, _ = robots
    small = df[df["id"] <= 3]
    expected = tsfresh_extract(small, SMALL, **ROBOT)
    for engine in ("native", "tsfresh"):
        got = streamfx.extract_features(small, SMALL, **ROBOT, n_jobs=1, engine=engine, **QUIET)
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9)


def test_show_warnings(robots) -> None:
    """Warnings raised during the call are hidden unless show_warnings, as in tsfresh (here
    tsfresh's impute on a column without a finite value: autocorrelation of a constant)."""
    df, _ = robots
    flat = df[df["id"] <= 3].assign(F_x=1)[["id", "time", "F_x"]]
    settings = {"autocorrelation": [{"lag": 1}]}

    def imputing(frame: pd.DataFrame) -> None:
        impute(frame)

    for show in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = streamfx.extract_features(
                flat, settings, **ROBOT, impute_function=imputing, show_warnings=show, **QUIET
            )
        assert any("did not have any finite values" in str(w.message) for w in caught) is show
        assert got["F_x__autocorrelation__lag_1"].tolist() == [0.0] * 3


def test_impute_function_is_applied_as_tsfresh_does(robots) -> None:
    df, _ = robots
    flat = df[df["id"] <= 3].assign(F_x=1)[["id", "time", "F_x"]]
    settings = {"autocorrelation": [{"lag": 1}], "mean": None}

    def fill(frame: pd.DataFrame) -> None:  # tsfresh calls it for its effect on the frame
        frame.fillna(-1.0, inplace=True)

    expected = tsfresh_extract(flat, settings, **ROBOT, impute_function=fill)
    pd.testing.assert_frame_equal(
        streamfx.extract_features(flat, settings, **ROBOT, impute_function=fill, **QUIET),
        expected,
    )
    polars = streamfx.extract_features(
        pl.from_pandas(flat), settings, **ROBOT, **QUIET, impute_function=fill
    )
    assert polars.drop("id").to_numpy().tolist() == expected.to_numpy().tolist()
    with pytest.raises(ValueError, match="impute_function must be a function"):
        streamfx.extract_features(flat, settings, **ROBOT, impute_function="impute", **QUIET)


def test_profile_writes_tsfreshs_report(robots, tmp_path: Path) -> None:
    df, _ = robots
    report = tmp_path / "profile.txt"
    streamfx.extract_features(
        df,
        SMALL,
        **ROBOT,
        profile=True,
        profiling_filename=str(report),
        profiling_sorting="tottime",
        **QUIET,
    )
    text = report.read_text()
    assert "function calls" in text and "Ordered by: internal time" in text


def test_pivot_false_is_tsfreshs_unpivoted_result(robots) -> None:
    df, _ = robots
    small = df[df["id"] <= 3]
    expected = tsfresh_extract(small, SMALL, **ROBOT, pivot=False)
    got = streamfx.extract_features(small, SMALL, **ROBOT, pivot=False, **QUIET)
    assert [row[:2] for row in got] == [row[:2] for row in expected]
    np.testing.assert_allclose([r[2] for r in got], [r[2] for r in expected], rtol=1e-9)

    frame = streamfx.extract_features(pl.from_pandas(small), SMALL, **ROBOT, pivot=False, **QUIET)
    assert frame.columns == ["id", "variable", "value"]
    assert frame.rows() == got
    with pytest.raises(ValueError, match="pivot=True"):
        streamfx.extract_features(small, SMALL, **ROBOT, pivot=False, impute_function=impute)


def test_dict_of_frames(robots) -> None:
    df, _ = robots
    small = df[df["id"] <= 3]
    frames = {k: small[["id", "time", k]].rename(columns={k: "v"}) for k in ("T_z", "F_x")}
    options = {**ROBOT, "column_value": "v"}
    expected = tsfresh_extract(frames, SMALL, **options)
    assert expected.columns[0].startswith("T_z__")  # kinds in the dict's order
    pd.testing.assert_frame_equal(
        streamfx.extract_features(frames, SMALL, **options, **QUIET), expected
    )
    unpivoted = tsfresh_extract(frames, SMALL, **options, pivot=False)
    assert streamfx.extract_features(frames, SMALL, **options, pivot=False, **QUIET) == unpivoted
    polars = {kind: pl.from_pandas(frame) for kind, frame in frames.items()}
    got = streamfx.extract_features(polars, SMALL, **options, **QUIET)
    np.testing.assert_allclose(got.drop("id").to_numpy(), expected.to_numpy())
    with pytest.raises(ValueError, match="split by kind already"):
        streamfx.extract_features(frames, SMALL, **options, column_kind="kind", **QUIET)


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (pl.UInt64, [2**64 - 1, 3, 2**64 - 5]),  # offsets from the smallest, zero-padded
        (pl.Int8, [127, -128, 5]),
        (pl.Int64, [2**63 - 1, 0, -(2**63)]),  # a range past int64: the ids as text
    ],
)
def test_integer_ids_of_any_width_keep_their_rows(dtype, ids) -> None:
    """Each id's features stay its own, the result sorted by id, whatever the integers."""
    frame = pl.DataFrame(
        {
            "id": pl.Series([i for i in ids for _ in range(20)], dtype=dtype),
            "time": list(range(20)) * len(ids),
            "value": [float(k) for k in range(len(ids)) for _ in range(20)],
        }
    )
    got = streamfx.extract_features(frame, column_id="id", column_sort="time", **QUIET)
    assert got["id"].dtype == dtype and got["id"].to_list() == sorted(ids)
    means = dict(zip(got["id"].to_list(), got["value__mean"].to_list(), strict=True))
    assert means == {i: float(k) for k, i in enumerate(ids)}


def test_tuple_ids_of_tsfreshs_own_roll(robots) -> None:
    df, _ = robots
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rolled = tsfresh_roll(df[df["id"] <= 2], **ROBOT, max_timeshift=4, n_jobs=0, **QUIET)
    expected = tsfresh_extract(rolled, SMALL, **ROBOT)
    pd.testing.assert_frame_equal(
        streamfx.extract_features(rolled, SMALL, **ROBOT, **QUIET), expected
    )


def test_names_safe(robots) -> None:
    df, _ = robots
    settings = {"fft_coefficient": [{"coeff": 0, "attr": "real"}], "quantile": [{"q": 0.1}]}
    small = df[df["id"] <= 2]
    tsfresh_names = list(streamfx.extract_features(small, settings, **ROBOT, **QUIET).columns)
    safe = streamfx.extract_features(small, settings, **ROBOT, names="safe", **QUIET)
    assert list(safe.columns) == streamfx.safe_names(tsfresh_names)
    assert "F_x__fft_coefficient__attr_real__coeff_0" in safe.columns
    assert "F_x__quantile__q_0_1" in safe.columns
    with pytest.raises(ValueError, match="names must be one of tsfresh, safe"):
        streamfx.extract_features(small, settings, **ROBOT, names="sql", **QUIET)


def test_safe_names_are_deterministic() -> None:
    names = [
        "x__cwt_coefficients__coeff_0__w_2__widths_(2, 5, 10, 20)",
        "x__value_count__value_-1",
        "x__value_count__value_1",
        "x__range_count__max_1__min_-1",
        "a.b__mean",
        "a_b__mean",
        "a-b__mean",
    ]
    safe = streamfx.safe_names(names)
    assert safe == [
        "x__cwt_coefficients__coeff_0__w_2__widths_2_5_10_20",
        "x__value_count__value_neg1",
        "x__value_count__value_1",
        "x__range_count__max_1__min_neg1",
        "a_b__mean_3",  # a.b and a-b collide with a_b, which is safe already: it keeps the
        "a_b__mean",  # name, the others are numbered in their order ("-" < ".")
        "a_b__mean_2",
    ]
    assert streamfx.safe_names(names[::-1]) == safe[::-1]  # whatever the order


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"column_id": "nope"}, "column_id='nope' is not a column"),
        ({"column_kind": "F_x"}, "cannot guess the value column"),
        ({"timeseries_container": [1, 2]}, "must be a polars DataFrame"),
        ({"default_fc_parameters": {"no_such": None}}, "unknown feature calculator"),
        ({"engine": "warp"}, "unknown extractor"),
    ],
)
def test_errors_are_value_errors(robots, change, message) -> None:
    df, _ = robots
    arguments = {"timeseries_container": df, "default_fc_parameters": SMALL, **ROBOT, **QUIET}
    with pytest.raises(ValueError, match=message) as raised:
        streamfx.extract_features(**{**arguments, **change})
    assert isinstance(raised.value, InvalidInput) and isinstance(raised.value, StreamfxError)
    assert not issubclass(StreamfxError, ValueError)  # the CLI's errors are left as they were


def test_integer_sort_with_a_time_aware_calculator_is_refused() -> None:
    pytest.importorskip("streamfx_greenhouse")
    hours = pd.date_range("2024-01-01", periods=48, freq="h")
    df = pd.DataFrame({"id": 1, "time": hours, "temp": 18.0 - np.arange(48) % 24 / 2})
    settings = {"heating_degree_hours": [{"base": 18.0}]}
    got = streamfx.extract_features(df, settings, **ROBOT, **QUIET)
    assert got["temp__heating_degree_hours__base_18.0"].tolist() == [276.0]  # 2 x sum(h / 2) °C·h
    for sort in (df.assign(time=np.arange(48)), df.drop(columns="time")):
        columns = ROBOT if "time" in sort else {"column_id": "id"}
        with pytest.raises(
            ValueError, match=r"'heating_degree_hours' .* reads the readings' times"
        ):
            streamfx.extract_features(sort, settings, **columns, **QUIET)


# -- roll_time_series ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    """Two kinds of three ids of different lengths, shuffled; kind b stops early, so windows
    of both kinds share an id and interleave."""
    rng = np.random.default_rng(2)
    rows = [
        (i, 2 * t, kind, float(rng.normal()))
        for i, n in ((3, 7), (1, 5), (2, 9))
        for kind in ("a", "b")
        for t in range(n)
        if not (kind == "b" and t > 4)
    ]
    frame = pd.DataFrame(rows, columns=["id", "time", "kind", "value"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize(
    "options",
    [
        {"column_sort": "time"},
        {"column_sort": "time", "max_timeshift": 2},
        {"column_sort": "time", "rolling_direction": 2, "max_timeshift": 3, "min_timeshift": 1},
        {"column_sort": "time", "rolling_direction": -1, "max_timeshift": 2},
        {"column_sort": "time", "rolling_direction": -3, "min_timeshift": 2},
        {"column_sort": "time", "column_kind": "kind", "max_timeshift": 3},
        {"column_sort": "time", "column_kind": "kind", "rolling_direction": -2},
        {"column_kind": "kind", "max_timeshift": 1},
        {},
    ],
)
def test_roll_equals_tsfresh(series, options) -> None:
    frame = (
        series if "column_kind" in options else series[series["kind"] == "a"].drop(columns="kind")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = tsfresh_roll(frame.copy(), column_id="id", **options, n_jobs=0, **QUIET)
    got = streamfx.roll_time_series(frame, column_id="id", **options)
    pd.testing.assert_frame_equal(got, expected)  # rows, ids, order, index, columns

    polars = streamfx.roll_time_series(pl.from_pandas(frame), column_id="id", **options)
    assert polars.columns == list(expected.columns)
    assert [tuple(i.values()) for i in polars["id"].to_list()] == list(expected["id"])
    arrow = streamfx.roll_time_series(pa.Table.from_pandas(frame), column_id="id", **options)
    assert arrow.num_rows == len(expected)


def test_roll_dict_datetimes_and_errors(series) -> None:
    start = pd.Timestamp("2024-01-01", tz="Europe/Copenhagen")
    frame = series.assign(time=start + pd.to_timedelta(series["time"], unit="h"))
    frames = {kind: part.drop(columns="kind") for kind, part in frame.groupby("kind")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = tsfresh_roll(frames, **ROBOT, max_timeshift=2, n_jobs=0, **QUIET)
    got = streamfx.roll_time_series(frames, **ROBOT, max_timeshift=2)
    assert got.keys() == expected.keys()
    for kind in got:
        pd.testing.assert_frame_equal(got[kind], expected[kind])
    assert isinstance(got["a"]["id"].iloc[0][1], pd.Timestamp)
    assert any("not uniformly sampled" in str(w.message) for w in caught) is False

    uneven = series[series["kind"] == "a"].assign(time=lambda f: f["time"] ** 2)
    with pytest.warns(UserWarning, match="not uniformly sampled"):
        streamfx.roll_time_series(uneven, **ROBOT)
    wrong = [
        ({"rolling_direction": 0}, "Rolling direction of 0"),
        ({"max_timeshift": 0}, "max_timeshift needs to be positive"),
        ({"min_timeshift": -1}, "min_timeshift needs to be positive"),
        ({"column_sort": "nope"}, "column_sort='nope' is not a column"),
    ]
    for change, message in wrong:
        with pytest.raises(ValueError, match=message):
            streamfx.roll_time_series(series, **{**ROBOT, **change})
    with pytest.raises(ValueError, match="dictionary and gave a column name for the kind"):
        streamfx.roll_time_series(frames, **ROBOT, column_kind="kind")
    with pytest.raises(ValueError, match="zero or one rows"):
        streamfx.roll_time_series(series.head(1), **ROBOT)


def test_roll_of_many_rows_is_one_vectorized_pass() -> None:
    """200 series of 1,000 readings, windows of 11: 2.2 M rows (tsfresh: about a minute)."""
    ids, length = 200, 1000
    frame = pl.DataFrame(
        {
            "id": np.repeat(np.arange(ids), length),
            "time": np.tile(np.arange(length), ids),
            "x": np.arange(ids * length, dtype=float),
        }
    )
    rolled = streamfx.roll_time_series(frame, **ROBOT, max_timeshift=10, min_timeshift=10)
    assert rolled.height == ids * (length - 10) * 11
    last = rolled.filter(pl.col("id") == {"id": 199, "time": 999})
    assert last["time"].to_list() == list(range(989, 1000))


# -- selection on polars ---------------------------------------------------------------------


def test_select_features_keeps_the_callers_kind(robots) -> None:
    df, y = robots
    polars = streamfx.extract_features(
        pl.from_pandas(df), MinimalFCParameters(), **ROBOT, impute_function=impute, **QUIET
    )
    pandas = streamfx.extract_features(
        df, MinimalFCParameters(), **ROBOT, impute_function=impute, **QUIET
    )
    expected = tsfresh.select_features(pandas, y)
    selected = streamfx.select_features(polars, y)
    assert selected.columns == ["id", *expected.columns]
    in_order = streamfx.select_features(polars, y.loc[polars["id"].to_list()].to_numpy())
    assert in_order.equals(selected)
    arrow = streamfx.select_features(polars.to_arrow(), pl.Series(y.to_numpy()))
    assert arrow.column_names == selected.columns
    relevant = streamfx.extract_relevant_features(
        pl.from_pandas(df), y, None, MinimalFCParameters(), **ROBOT, **QUIET
    )
    assert relevant.columns == selected.columns


# -- scikit-learn ----------------------------------------------------------------------------


def test_pipeline_with_the_augmenters_fits_predicts_and_cross_validates(robots) -> None:
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    df, y = robots
    X = pd.DataFrame(index=y.index)
    options = {"column_id": "id", "column_sort": "time", **QUIET}
    ours = RelevantFeatureAugmenter(default_fc_parameters=MinimalFCParameters(), **options)
    theirs = tsfresh.transformers.RelevantFeatureAugmenter(
        default_fc_parameters=MinimalFCParameters(), n_jobs=0, **options
    )
    for augmenter in (ours, theirs):
        augmenter.set_timeseries_container(df)
    pd.testing.assert_frame_equal(ours.fit_transform(X, y), theirs.fit_transform(X, y))
    assert ours.feature_selector.relevant_features == theirs.feature_selector.relevant_features
    pd.testing.assert_frame_equal(ours.transform(X.iloc[:7]), theirs.transform(X.iloc[:7]))

    pipeline = Pipeline(
        [
            ("augmenter", RelevantFeatureAugmenter(default_fc_parameters="minimal", **options)),
            ("classifier", DecisionTreeClassifier(random_state=0)),
        ]
    )
    pipeline.set_params(augmenter__timeseries_container=pl.from_pandas(df))
    pipeline.fit(X, y)
    assert (pipeline.predict(X) == y.to_numpy()).mean() > 0.9
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert len(scores) == 3 and scores.mean() > 0.7

    plain = Pipeline(
        [
            ("augmenter", FeatureAugmenter(default_fc_parameters=SMALL, **options)),
            ("classifier", DecisionTreeClassifier(random_state=0)),
        ]
    )
    plain.set_params(augmenter__timeseries_container=df)
    assert len(plain.fit(X, y).predict(X.iloc[:5])) == 5
    augmented = FeatureAugmenter(default_fc_parameters=SMALL, timeseries_container=df, **options)
    expected = tsfresh.transformers.FeatureAugmenter(
        default_fc_parameters=SMALL, timeseries_container=df, n_jobs=0, **options
    ).transform(X)
    pd.testing.assert_frame_equal(augmented.transform(X), expected)
    with pytest.raises(RuntimeError, match="set_timeseries_container"):
        FeatureAugmenter(**options).transform(X)


def test_time_zones_in_a_rolled_polars_frame() -> None:
    """A tz-aware polars sort column keeps its times through rolling into extraction."""
    start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    frame = pl.DataFrame(
        {
            "id": ["a"] * 6,
            "time": [start + dt.timedelta(hours=h) for h in range(6)],
            "x": [float(h) for h in range(6)],
        }
    )
    rolled = streamfx.roll_time_series(frame, **ROBOT, max_timeshift=2, min_timeshift=2)
    features = streamfx.extract_features(rolled, {"mean": None}, **ROBOT, **QUIET)
    assert features["id"].struct.field("time").to_list()[0] == start + dt.timedelta(hours=2)
    assert features["x__mean"].to_list() == [1.0, 2.0, 3.0, 4.0]
