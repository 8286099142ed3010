"""The native and GPU extractors' kernels (on NumPy), rolling windows, and GPU fallbacks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from streamfx import feature_set
from streamfx.errors import StreamfxError
from streamfx.extract.calculators import CALCULATORS, split_settings
from streamfx.extract.extractors.gpu import GpuExtractor
from streamfx.extract.extractors.native import NativeExtractor
from streamfx.extract.extractors.tsfresh import TsfreshExtractor
from streamfx.extract.rolling import rolling_features
from streamfx.extract.series import SERIES_ORDER, _in_order, sorted_series
from streamfx.model import READINGS_SCHEMA

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def readings(series: dict[tuple[str, str], np.ndarray], step_minutes: float = 5) -> pa.Table:
    frames = [
        pl.DataFrame(
            {
                "era_id": era,
                "sensor": sensor,
                "time": [T0 + dt.timedelta(minutes=step_minutes * i) for i in range(len(values))],
                "value": values,
            }
        )
        for (era, sensor), values in series.items()
    ]
    return pl.concat(frames).to_arrow().cast(READINGS_SCHEMA)


def as_dict(table: pa.Table) -> dict[tuple[str, str, str], float]:
    return {(r["era_id"], r["sensor"], r["feature"]): r["value"] for r in table.to_pylist()}


def assert_same(got: pa.Table, expected: pa.Table) -> None:
    a, b = as_dict(got), as_dict(expected)
    assert a.keys() == b.keys()
    for key, want in b.items():
        if np.isnan(want):
            assert np.isnan(a[key]), key
        else:
            assert a[key] == pytest.approx(want, rel=1e-6, abs=1e-9), key


@pytest.fixture(scope="module")
def demo_readings() -> pa.Table:
    rng = np.random.default_rng(3)
    series = {}
    for era in ("1", "2", "3"):
        for sensor, n in (("air_temp_c", 144), ("co2_status", 90), ("rain_status", 3)):
            n = n - int(era)  # different lengths per era: several buckets
            values = (
                rng.normal(size=n).cumsum() if sensor == "air_temp_c" else rng.integers(0, 2, n)
            )
            series[(era, sensor)] = np.asarray(values, dtype=float)
    series[("4", "air_temp_c")] = np.full(20, 21.5)  # constant
    return readings(series)


def test_native_equals_tsfresh_efficient(demo_readings: pa.Table) -> None:
    """The GPU lane's kernels (here on NumPy) and the CPU lane's tsfresh agree exactly."""
    settings = {
        "air_temp_c": feature_set("efficient"),
        "co2_status": feature_set("minimal"),
        "rain_status": feature_set("efficient"),
    }
    native = NativeExtractor().extract(demo_readings, settings)
    reference = TsfreshExtractor().extract(demo_readings, settings)
    assert_same(native, reference)
    assert native.num_rows > 2000


def test_gpu_extractor_needs_cupy(demo_readings: pa.Table) -> None:
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(StreamfxError, match="CuPy"):
            GpuExtractor().extract(demo_readings, {"air_temp_c": feature_set("minimal")})
    else:  # pragma: no cover - only on GPU machines
        pytest.skip("CuPy is installed: covered by benchmarks/gpu_check.py")


def test_rolling_windows_follow_sampling_interval() -> None:
    hours = 48
    signal = lambda t: 20 + 5 * np.sin(2 * np.pi * t / 24)  # noqa: E731 - hours -> °C
    ten = readings({("e", "air_temp_c"): signal(np.arange(0, hours, 1 / 6))}, step_minutes=10)
    five = readings({("e", "air_temp_c"): signal(np.arange(0, hours, 1 / 12))}, step_minutes=5)
    a = as_dict(rolling_features(ten, ["air_temp_c"]))
    b = as_dict(rolling_features(five, ["air_temp_c"]))
    assert a.keys() == b.keys()
    assert {k[2].split("__")[0] for k in a} == {
        f"rolling_{s}_{w}" for s in ("mean", "std") for w in ("1h", "5h", "24h")
    }
    for key in a:  # the same duration: means agree closely on a smooth signal
        if key[2].endswith("__mean") and "rolling_mean" in key[2]:
            assert a[key] == pytest.approx(b[key], abs=0.05)
    assert a[("e", "air_temp_c", "rolling_mean_24h__length")] == 48 * 6 - 144 + 1
    assert b[("e", "air_temp_c", "rolling_mean_24h__length")] == 48 * 12 - 288 + 1


def test_rolling_values_equal_pandas() -> None:
    values = np.random.default_rng(5).normal(400, 3, size=100)
    got = as_dict(rolling_features(readings({("e", "co2"): values}), ["co2"], ["1h"]))
    window = pd.Series(values).rolling(12)
    for stat, rolled in (("mean", window.mean()), ("std", window.std())):
        rolled = rolled.dropna().to_numpy()
        expected = {"mean": rolled.mean(), "maximum": rolled.max(), "median": np.median(rolled)}
        for name, want in expected.items():
            assert got[("e", "co2", f"rolling_{stat}_1h__{name}")] == pytest.approx(want, rel=1e-9)


def test_short_series_get_no_rolling_windows() -> None:
    table = readings({("e", "air_temp_c"): np.arange(5.0)})  # 25 minutes < 1 h
    assert rolling_features(table, ["air_temp_c"]).num_rows == 0


def test_ported_calculators_are_registered() -> None:
    assert {"mean", "median", "quantile", "length", "sum_values"} <= set(CALCULATORS)


class CountingExtractor(NativeExtractor):
    """The native extractor, counting the extract calls the warm-up makes."""

    calls = 0

    def extract(self, *args, **kwargs) -> pa.Table:  # type: ignore[override]
        CountingExtractor.calls += 1
        return super().extract(*args, **kwargs)


def test_kernels_warm_up_once_per_machine(tmp_path, monkeypatch) -> None:
    import numba

    from streamfx.extract.warmup import compiled_marker

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))
    marker = compiled_marker()
    assert marker.parent == tmp_path / "cache" and not marker.exists()
    extractor = CountingExtractor()
    CountingExtractor.calls = 0
    # compiles (here: loads) a calculator at a time, every other one in a helper process,
    # then leaves the marker
    extractor.warm_up()
    calls = CountingExtractor.calls
    native = list(split_settings(feature_set("comprehensive"))[0])
    assert calls == len(native[0::2]) and marker.exists()
    extractor.warm_up()  # the marker says done: no kernel is run, none loaded
    assert CountingExtractor.calls == calls


def test_the_warm_up_helper_runs_its_calculators_in_a_process_of_its_own() -> None:
    """The helper compiles (loads) its half and says whether it did (where it fails, the
    run's own thread takes its calculators), and one still running when the run stops is
    ended."""
    from streamfx.extract import warmup

    helper = warmup._start_helper("native", ["mean", "approximate_entropy"])
    assert helper is not None and warmup._join_helper(helper, stop=False)
    failing = warmup._start_helper("native", ["no_such_calculator"])
    assert failing is not None and not warmup._join_helper(failing, stop=False)
    stopped = warmup._start_helper("native", ["mean"])
    assert stopped is not None and not warmup._join_helper(stopped, stop=True)
    assert stopped.returncode is not None


def test_an_ending_process_stops_the_warm_up_without_a_marker(tmp_path, monkeypatch) -> None:
    """At exit the warm-up stops between calculators (numba compiling under the interpreter's
    teardown aborts the process), and leaves no marker: the next run compiles the rest."""
    import threading

    import numba

    from streamfx.extract import warmup

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))
    stopping = threading.Event()
    monkeypatch.setattr(warmup, "_STOPPING", stopping)
    CountingExtractor.calls = 0
    stopping.set()
    CountingExtractor().warm_up()
    assert CountingExtractor.calls == 0 and not warmup.compiled_marker().exists()


def test_threads_and_chunks_give_identical_values(monkeypatch) -> None:
    """n_jobs threads, and buckets split into row chunks, give bit-identical features: every
    calculator works row by row."""
    from streamfx.extract.extractors import native

    rng = np.random.default_rng(4)
    lengths = [*rng.integers(1, 400, size=12).tolist(), *([30] * 80)]
    readings = pa.table(
        {
            "era_id": np.repeat([f"e{i}" for i in range(len(lengths))], lengths),
            "sensor": ["s"] * sum(lengths),
            "time": pa.array(
                np.concatenate([np.arange(n) for n in lengths]).astype("datetime64[us]")
            ).cast(pa.timestamp("us", tz="UTC")),
            "value": np.concatenate([rng.normal(size=n).cumsum() for n in lengths]),
        }
    ).cast(READINGS_SCHEMA)
    settings = {"s": feature_set("efficient")}
    extractor = NativeExtractor()
    one = extractor.extract(readings, settings)

    def same(other: pa.Table) -> bool:  # NaN equal to NaN, bit for bit otherwise
        keys = ["era_id", "sensor", "feature"]
        values = [t["value"].to_numpy() for t in (one, other)]
        return other.select(keys).equals(one.select(keys)) and np.array_equal(
            *values, equal_nan=True
        )

    monkeypatch.setattr(native, "MIN_CHUNK_VALUES", 64)  # many chunks per bucket
    for jobs in (2, 3):
        assert same(extractor.extract(readings, settings, n_jobs=jobs))
    monkeypatch.setattr(native, "CHUNK_VALUES", 500)  # one thread, chunked by size
    assert same(extractor.extract(readings, settings))


def test_series_layout_is_the_same_for_sorted_and_shuffled_readings() -> None:
    """Sorted readings skip the sort; shuffled ones (in several chunks) get it: both give the
    same series, offsets and values."""
    rng = np.random.default_rng(12)
    n = 3_000
    readings = pa.table(
        {
            "era_id": pa.array(rng.choice(["e1", "e2", "e10"], n)),
            "sensor": pa.array(rng.choice(["a", "b"], n)),
            "time": pa.array(rng.permutation(n), pa.timestamp("us", "UTC")),
            "value": rng.normal(size=n),
        }
    )
    ordered = readings.sort_by([(k, "ascending") for k in SERIES_ORDER])
    shuffled = pa.concat_tables([readings.slice(0, 1_000), readings.slice(1_000)])
    assert _in_order(ordered) and not _in_order(shuffled)
    for table in (ordered, shuffled):
        frame, series = sorted_series(table, intervals=True)
        want_frame, want_series = sorted_series(ordered, intervals=True)
        assert frame.equals(want_frame) and series.equals(want_series)
    # equal times within a series are in order: ties keep their rows' order, as the sort
    tied = ordered.set_column(2, "time", pa.array([0] * n, pa.timestamp("us", "UTC")))
    assert _in_order(tied) and not _in_order(tied.take(rng.permutation(n)))


def test_blas_runs_on_one_thread_until_the_outermost_context_ends() -> None:
    """A calculator's context inside the extractor's changes nothing, and the outer one puts
    the library's threads back."""
    from threadpoolctl import threadpool_info

    from streamfx.extract.calculators import one_blas_thread

    def threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = threads()
    with one_blas_thread():
        with one_blas_thread():
            assert set(threads()) == {1}
        assert set(threads()) == {1}
    assert threads() == before
