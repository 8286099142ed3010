"""Extraction by series length: streamfx vs tsfresh, tsfresh-rs and tsfx, on the same input.

One command::

    python benchmarks/bench_extract.py [--lengths 12,144,1000,10000]
                                       [--sets efficient,comprehensive]
                                       [--engines streamfx,tsfresh-rs,tsfx,tsfresh]
                                       [--series 12=4000,144=20,1000=200,10000=16]
                                       [--tsfresh-series 10000:comprehensive=2] [--repeat 7]
                                       [--quick] [--results PATH | --no-write]

The defaults are the whole matrix (4 lengths x 2 sets x 4 engines), sized to take about a
quarter of an hour on 2 idle cores, tsfresh most of it; ``--quick`` is a smoke run of small
sizes (12, 144 and 1,000 points, one call each), under its own heading.

For each length the input is one long Arrow table (id int64, time, value float64; sorted by id,
then time) built once and written to an Arrow IPC file that every engine reads whole (not
memory-mapped), so all see the same data:

* 12, 1,000 and 10,000 points: generated series (seed 16 + length), even ids a random walk
  (cumulative sum of standard normal steps), odd ids white noise (standard normal); time =
  0 .. length - 1 (int64).
* 144: the real Aarslev celle5 export (``../shared/data/aarslev-celle5`` beside the repository),
  every (UTC day, sensor) of the first ``144=DAYS`` days that have readings as one series
  (17 sensors; 10-minute readings, so 144 points where none is missing, fewer where some are);
  time = the reading's timestamp (UTC).

Each (engine, length, set) runs in a fresh process of this script (``--worker NAME``): it
imports the engine, reads the input and turns it into what a user would hold (outside the
timing), makes one warm-up call on the first two series (streamfx: whole, for its numba JIT;
the others compile nothing, so their first 1,000 points: lazy imports, thread pools), then times
the call: the median of ``--repeat`` calls (7: calls of a few tenths of a second vary by 30%
on a shared 2-core machine), or one where a call takes over 5 s. The calls,
exactly as a user writes them:

* streamfx: ``streamfx.extract_features(df, column_id="id", column_sort="time",
  column_value="value", default_fc_parameters=SET, disable_progressbar=True)`` on a polars
  DataFrame (its default ``n_jobs``: the cores, as threads; no progress bar, as for tsfresh).
* tsfresh: ``tsfresh.extract_features(pandas_df, column_id=..., column_sort=...,
  column_value=..., default_fc_parameters=EfficientFCParameters() or
  ComprehensiveFCParameters(), n_jobs=2, disable_progressbar=True)``.
* tsfresh-rs: ``tsfresh_rs.extract_features`` with the same arguments (its own settings classes)
  minus ``n_jobs``: its default, one thread per core.
* tsfx: ``tsfx.extract_features(lazy_frame, tsfx.ExtractionSettings(grouping_cols=["id"],
  feature_setting=tsfx.FeatureSetting.Efficient or .Comprehensive, value_cols=["value"]))`` on
  a polars LazyFrame. tsfx takes each series in row order (it has no sort column: the input is
  sorted) and runs on polars' thread pool (one thread per core). It pins polars 1.x, so it runs
  in its own virtual environment, ``benchmarks/.venv-tsfx``, made on first use (``python -m
  venv`` + ``pip install tsfx==0.8.0 pyarrow psutil``); its worker imports only those.

Where tsfresh would take too long (``TSFRESH_SERIES``: comprehensive at 10,000 points, whose
approximate_entropy builds N x N x m arrays), it gets the first K series of the same input;
its time is then compared per series (wall / series), and its parity covers those K. Measured
on one 10,000-point random walk in one process (``n_jobs=0``): comprehensive 108 s of CPU and
4.9 GB peak RSS, efficient 5.2 s; so K = 2, one series in each of its two processes (about
2 minutes, 10 GB).

Memory: a process of its own samples the RSS of the worker and its children (psutil, every 5
ms; shared pages count in each process) during the timed calls (a thread would take the GIL
from the engine); the figure is the peak minus the RSS just
before the call (imports, input and warm-up done), beside the target 3 x the input's Arrow size
+ 100 MB. ``ru_maxrss`` of the worker (and of its largest waited-for child) is recorded too.

Parity against tsfresh: every (id, feature) cell tsfresh computed, equal within rtol 1e-6 /
atol 1e-9 (as ``math.isclose``), NaN equal to NaN, a missing cell unequal. tsfx names its
features its own way: ``tsfx_to_tsfresh`` maps them (calculator and parameter names, parameters
compared as values), which was checked on probe series of 30 to 1,000 points (walks, noise,
integer and rounded values): 754 of tsfx's 755 comprehensive features map to a tsfresh feature,
one each (``index_mass_quantile__q_0.5`` has no tsfresh counterpart and matches none by value),
and 750 of them were equal there (permutation_entropy at dimensions 4 to 7 differs where values
tie). tsfresh features tsfx lacks: linear_trend's pvalue / rvalue / stderr, agg_linear_trend's
rvalue / stderr, symmetry_looking r=0, query_similarity_count (29 of 783). tsfx's cells are
compared on the tsfresh features it shares; its time is that of its whole call.

The tables and the targets are printed and written into ``benchmarks/RESULTS.md`` (or
``--results``) under this benchmark's heading; other sections are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from common import (
    ATOL,
    DATA,
    HERE,
    MIB,
    RESULTS,
    RTOL,
    add_output_options,
    command_line,
    markdown_table,
    timestamp,
    work_dir,
    write_section,
)

HEADING = "## Extraction by series length: streamfx vs tsfresh, tsfresh-rs, tsfx (bench_extract.py)"
LENGTHS = (12, 144, 1000, 10000)
SETS = ("efficient", "comprehensive")
ENGINES = ("streamfx", "tsfresh-rs", "tsfx", "tsfresh")
SERIES = {12: 4000, 144: 20, 1000: 200, 10000: 16}  # 144: celle5 days (x 17 sensors)
QUICK_SERIES = {12: 100, 144: 2, 1000: 4, 10000: 2}
QUICK_LENGTHS = (12, 144, 1000)
TSFRESH_SERIES = {(10000, "comprehensive"): 2}  # tsfresh on the first K series only
WARM_SERIES, WARM_POINTS = 2, 1000  # warm-up: the first 2 series, 1,000 points (streamfx: all)
SLOW_CALL_S = 5.0  # a call this long is not repeated
SAMPLE_S = 0.005
TSFX_VENV = HERE / ".venv-tsfx"
TSFX_REQUIREMENTS = ("tsfx==0.8.0", "pyarrow", "psutil")
# targets of the issue
VS_TSFRESH_RS, VS_TSFX, COMPREHENSIVE_VS_EFFICIENT = 2.0, 1.0, 2.0
RSS_FACTOR, RSS_SLACK_MIB = 3.0, 100e6 / MIB  # 3 x Arrow input + 100 MB


# -- input ----------------------------------------------------------------------------------


def generated(length: int, series: int) -> pa.Table:
    """``series`` series of ``length`` points: even ids random walks, odd ids white noise."""
    import numpy as np

    rng = np.random.default_rng(16 + length)
    steps = rng.standard_normal((series, length))
    values = np.where((np.arange(series) % 2 == 0)[:, None], np.cumsum(steps, axis=1), steps)
    return pa.table(
        {
            "id": np.repeat(np.arange(series, dtype=np.int64), length),
            "time": np.tile(np.arange(length, dtype=np.int64), series),
            "value": values.ravel(),
        }
    )


def celle5(days: int) -> pa.Table:
    """Every (UTC day, sensor) of celle5's first ``days`` days with readings as one series."""
    from streamfx.source.datasets.aarslev import load_aarslev, to_long

    long = to_long(load_aarslev(DATA)).with_columns(day=pl.col("time").dt.date())
    chosen = long["day"].unique().sort().head(days).implode()
    long = long.filter(pl.col("day").is_in(chosen))
    ids = long.select("day", "sensor").unique().sort("day", "sensor").with_row_index("id")
    frame = (
        long.join(ids, on=["day", "sensor"])
        .select(pl.col("id").cast(pl.Int64), "time", "value")
        .sort("id", "time")
    )
    return frame.to_arrow().combine_chunks()


def write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_ipc(path: Path) -> pa.Table:
    """The whole table in memory (not memory-mapped, so it counts in RSS like any input)."""
    with pa.OSFile(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def first_series(table: pa.Table, count: int, points: int | None = None) -> pa.Table:
    """The rows of the first ``count`` ids (at most their first ``points`` rows each)."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    ids = frame["id"].unique(maintain_order=True).head(count).implode()
    frame = frame.filter(pl.col("id").is_in(ids))
    if points is not None:
        frame = frame.filter(pl.int_range(pl.len()).over("id") < points)
    return frame.to_arrow()


# -- workers: one engine per fresh process -----------------------------------------------------


@dataclass
class Engine:
    """How one engine is called: the input a user holds, the call, its result as long rows."""

    prepare: Callable[[pa.Table], Any]
    call: Callable[[Any], Any]
    to_polars: Callable[[Any], pl.DataFrame]  # wide, ``id`` column first
    versions: dict[str, str]
    parallelism: str
    warm_points: int | None = WARM_POINTS  # None: the warm-up series whole


def streamfx_engine(set_name: str) -> Engine:
    import inspect

    import streamfx

    n_jobs = inspect.signature(streamfx.extract_features).parameters["n_jobs"].default

    def call(frame: pl.DataFrame) -> pl.DataFrame:
        return streamfx.extract_features(
            frame,
            column_id="id",
            column_sort="time",
            column_value="value",
            default_fc_parameters=set_name,
            disable_progressbar=True,  # as tsfresh's and tsfresh-rs's calls here
        )

    return Engine(
        prepare=pl.from_arrow,
        call=call,
        to_polars=lambda wide: wide,
        versions={"streamfx": streamfx.__version__},
        parallelism=f"its default n_jobs={n_jobs}",
        warm_points=None,  # numba: kernels compiled for the paths this length takes
    )


def tsfresh_like_engine(module: str, set_name: str) -> Engine:
    """tsfresh (``n_jobs=2``) or tsfresh-rs (its default parallelism) on a pandas frame."""
    import importlib

    lib = importlib.import_module(module)
    settings_class = getattr(lib.feature_extraction, f"{set_name.capitalize()}FCParameters")
    extra = {"n_jobs": 2} if module == "tsfresh" else {}

    def call(frame: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lib.extract_features(
                frame,
                column_id="id",
                column_sort="time",
                column_value="value",
                default_fc_parameters=settings_class(),
                disable_progressbar=True,
                **extra,
            )

    def to_polars(wide: Any) -> pl.DataFrame:
        return pl.from_pandas(wide.rename_axis("id").reset_index(), nan_to_null=False)

    return Engine(
        prepare=lambda table: table.to_pandas(),
        call=call,
        to_polars=to_polars,
        versions={module.replace("_", "-"): lib.__version__},
        parallelism="n_jobs=2 processes" if extra else "its default: a thread per core",
    )


def tsfx_engine(set_name: str) -> Engine:
    import tsfx

    setting = getattr(tsfx.FeatureSetting, set_name.capitalize())

    def call(frame: pl.LazyFrame) -> pl.DataFrame:
        return tsfx.extract_features(
            frame,
            tsfx.ExtractionSettings(
                grouping_cols=["id"], feature_setting=setting, value_cols=["value"]
            ),
        )

    return Engine(
        prepare=lambda table: pl.from_arrow(table).lazy(),
        call=call,
        to_polars=lambda wide: wide,
        versions={"tsfx": metadata.version("tsfx"), "polars (tsfx venv)": pl.__version__},
        parallelism="its default: polars' pool, a thread per core",
    )


ENGINE_FACTORIES: dict[str, Callable[[str], Engine]] = {
    "streamfx": streamfx_engine,
    "tsfresh": lambda s: tsfresh_like_engine("tsfresh", s),
    "tsfresh-rs": lambda s: tsfresh_like_engine("tsfresh_rs", s),
    "tsfx": tsfx_engine,
}


class PeakRss:
    """The peak RSS (MiB) of this process plus its children while active, sampled every
    ``SAMPLE_S`` by a process of its own (``_sample_rss``): a sampling thread here would take
    the GIL from the engine under test every 5 ms, which slowed streamfx's 0.1 s calls by a
    fifth (and not the Rust engines, which release it)."""

    def __init__(self) -> None:
        import multiprocessing

        import psutil

        self.process, self.psutil = psutil.Process(), psutil
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self._sampler = context.Process(target=_sample_rss, args=(os.getpid(), theirs))
        self._sampler.daemon = True
        self._sampler.start()
        self.peak = 0.0

    def now(self) -> float:
        """RSS of this process and its children (not the sampler), now."""
        return _rss_mib(self.process, self._sampler.pid)

    def __enter__(self) -> PeakRss:
        self._conn.send("start")
        self.peak = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self.peak = max(self.peak, self._conn.recv())


def _rss_mib(process: Any, sampler: int | None, children: Sequence[Any] | None = None) -> float:
    import psutil

    if children is None:
        with contextlib.suppress(psutil.Error):
            children = process.children(recursive=True)
    total = process.memory_info().rss
    for child in children or ():
        if child.pid != sampler:
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total / MIB


def _sample_rss(pid: int, conn: Any) -> None:
    """The sampler process: between "start" and "stop", the peak of ``_rss_mib`` of ``pid``
    every ``SAMPLE_S`` (its children looked up again every 0.25 s), sent back at "stop"."""
    import psutil

    process, own = psutil.Process(pid), os.getpid()
    while conn.recv() == "start":
        children = process.children(recursive=True)
        peak = _rss_mib(process, own, children)
        conn.send(peak)
        for tick in range(1, sys.maxsize):
            if conn.poll(SAMPLE_S):
                conn.recv()  # "stop"
                break
            if tick % 50 == 0:  # new children (tsfresh's pool)
                with contextlib.suppress(psutil.Error):
                    children = process.children(recursive=True)
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _rss_mib(process, own, children))
        conn.send(peak)


def max_rss_mib() -> tuple[float, float]:
    """``ru_maxrss`` of this process and of its largest waited-for child (MiB)."""
    unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / MIB
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit / MIB


def worker_main(args: argparse.Namespace) -> int:
    """Run one engine on one input and write its timings, memory and long output."""
    engine = ENGINE_FACTORIES[args.worker](args.set)
    sampler = PeakRss()
    rss_imports = sampler.now()
    table = read_ipc(args.input)
    if args.subset:
        table = first_series(table, args.subset)
    warm = engine.prepare(first_series(table, WARM_SERIES, engine.warm_points))
    engine.call(warm)
    data = engine.prepare(table)
    del warm
    times, added, wide = [], 0.0, None
    while len(times) < args.repeat and (not times or times[0] <= SLOW_CALL_S):
        wide = None  # the previous result is no part of this call
        gc.collect()
        with sampler as peak:
            rss_before = peak.peak
            t0 = time.perf_counter()
            wide = engine.call(data)
            times.append(time.perf_counter() - t0)
        added = max(added, peak.peak - rss_before)
    frame = engine.to_polars(wide)
    values = [c for c in frame.columns if c != "id"]
    long = frame.select(
        pl.col("id").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in values)
    ).unpivot(index="id", variable_name="feature", value_name="value")
    long.with_columns(pl.col("feature").str.replace(r"^value__", "")).write_parquet(args.out)
    own, child = max_rss_mib()
    result = {
        "seconds": statistics.median(times),
        "times": times,
        "series": frame.height,
        "features": len(values),
        "rss_imports_mib": rss_imports,
        "rss_before_mib": rss_before,
        "rss_added_mib": added,
        "ru_maxrss_mib": own,
        "ru_maxrss_child_mib": child,
        "versions": engine.versions,
        "parallelism": engine.parallelism,
    }
    Path(args.result).write_text(json.dumps(result))
    return 0


# -- tsfx's names -> tsfresh's ------------------------------------------------------------------

TSFX_CALCULATORS = {
    "absolute_energy": "abs_energy",
    "mean_absolute_change": "mean_abs_change",
    "percentage_of_reoccurring_values_to_all_datapoints": (
        "percentage_of_reoccurring_datapoints_to_all_datapoints"
    ),
}
TSFX_PARAMETERS = {
    ("agg_linear_trend", "chunk_size"): "chunk_len",
    ("agg_linear_trend", "agg"): "f_agg",
    ("mean_n_absolute_max", "n"): "number_of_maxima",
}
# ``name_value``: names with underscores first, else the letters before the first underscore
PARAMETER = re.compile(
    r"(chunk_size|chunk_len|f_agg|max_bins|num_segments|segment_focus|number_of_maxima|[a-z]+)_(.*)"
)


def _parameter_value(text: str) -> Any:
    """``"mean"`` -> mean, ``True``/``t`` -> True, ``1.00``/``1`` -> 1.0, ``(2, 5)``/``2_5`` ->
    (2.0, 5.0): the value a name stands for, so tsfx's and tsfresh's spellings compare equal."""
    text = text.strip('"')
    if text.lower() in ("true", "t", "false", "f"):
        return text.lower() in ("true", "t")
    if text.startswith("(") or re.fullmatch(r"\d+(_\d+)+", text):
        return tuple(float(x) for x in re.split(r"[(),_ ]+", text) if x)
    try:
        return round(float(text), 9)  # tsfresh's r_0.15000000000000002 is tsfx's r_0.15
    except ValueError:
        return text


def feature_key(feature: str, *, tsfx: bool) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """A feature name (without the ``value__`` prefix) as (calculator, sorted parameters)."""
    calculator, *parts = feature.split("__")
    if tsfx:
        for stem in ("agg_linear_trend", "linear_trend"):  # tsfx: linear_trend_slope, ...
            attr = calculator.removeprefix(f"{stem}_")
            if attr in ("intercept", "slope"):
                calculator, parts = stem, [f"attr_{attr}", *parts]
                break
        calculator = TSFX_CALCULATORS.get(calculator, calculator)
    parameters = []
    for part in parts:
        match = PARAMETER.fullmatch(part)
        if match is None:
            return None
        name, value = match.groups()
        name = TSFX_PARAMETERS.get((calculator, name), name) if tsfx else name
        parameters.append((name, _parameter_value(value)))
    return calculator, tuple(sorted(parameters))


def tsfx_to_tsfresh(tsfx_features: Sequence[str], tsfresh_features: Sequence[str]) -> dict:
    """tsfx feature -> the tsfresh feature of the same calculator and parameter values."""
    by_key = {feature_key(f, tsfx=False): f for f in tsfresh_features}
    found = {f: by_key.get(feature_key(f, tsfx=True)) for f in tsfx_features}
    return {f: t for f, t in found.items() if t is not None}


# -- the parent: inputs, workers, parity ----------------------------------------------------------


@dataclass
class Parity:
    """An engine's cells against tsfresh's (on the features they share, for tsfx)."""

    cells: int
    equal: int
    features: int  # tsfresh features compared
    differing: list[str] = field(default_factory=list)  # features with an unequal cell

    @property
    def share(self) -> float:
        return self.equal / self.cells if self.cells else 0.0


@dataclass
class Case:
    """One (length, set): its input and each engine's result."""

    length: int
    set_name: str
    series: int
    rows: int
    arrow_mib: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # or {"error": ...}
    parity: dict[str, Parity] = field(default_factory=dict)

    def seconds(self, engine: str, per_series: bool = False) -> float | None:
        r = self.results.get(engine, {})
        if "seconds" not in r:
            return None
        return r["seconds"] / r["series"] if per_series else r["seconds"]

    def ratio(self, engine: str) -> float | None:
        """``engine``'s time over streamfx's (per series where tsfresh ran a subset)."""
        a, b = self.seconds(engine, True), self.seconds("streamfx", True)
        return a / b if a is not None and b else None

    @property
    def rss_limit_mib(self) -> float:
        return RSS_FACTOR * self.arrow_mib + RSS_SLACK_MIB


def parity(reference: pl.DataFrame, got: pl.DataFrame, names: dict[str, str] | None) -> Parity:
    """Cells of ``got`` against ``reference`` (long: id, feature, value), on the ids the
    reference has; ``names`` maps ``got``'s feature names to the reference's (tsfx)."""
    if names is not None:
        got = got.with_columns(pl.col("feature").replace_strict(names, default=None))
        got = got.drop_nulls("feature")
        reference = reference.filter(pl.col("feature").is_in(list(names.values())))
    joined = reference.join(got, on=["id", "feature"], how="left", suffix="_got")
    a, b = pl.col("value"), pl.col("value_got")
    close = (a == b) | (
        (a - b).abs() <= pl.max_horizontal(RTOL * pl.max_horizontal(a.abs(), b.abs()), ATOL)
    )
    equal = (
        pl.when(b.is_null())
        .then(False)
        .when(a.is_nan() | b.is_nan())
        .then(a.is_nan() & b.is_nan())
        .otherwise(close.fill_null(False))
    )
    joined = joined.with_columns(equal=equal.fill_null(False))
    per_feature = joined.group_by("feature").agg(pl.col("equal").all())
    return Parity(
        cells=joined.height,
        equal=int(joined["equal"].sum()),
        features=per_feature.height,
        differing=sorted(per_feature.filter(~pl.col("equal"))["feature"]),
    )


def tsfx_python() -> Path:
    """The tsfx venv's interpreter, the venv made on first use."""
    python = TSFX_VENV / "bin" / "python"
    if not python.exists():
        print(f"tsfx: making {TSFX_VENV} ({' '.join(TSFX_REQUIREMENTS)}), once ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TSFX_VENV)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", *TSFX_REQUIREMENTS]
        done = subprocess.run(install, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            python.unlink()  # try again next time
            raise RuntimeError(f"pip install failed: {done.stderr.strip().splitlines()[-1:]}")
    return python


def run_worker(engine: str, case: Case, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One engine on one case in a fresh process; its result, or ``{"error": ...}``."""
    stem = work / f"{engine}-{case.length}-{case.set_name}"
    python, env = Path(sys.executable), dict(os.environ)
    if engine == "tsfx":
        try:
            python = tsfx_python()
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            return {"error": f"no tsfx venv: {exc}"}
        env.pop("PYTHONPATH", None)  # nothing of streamfx's environment
    subset = args.tsfresh_series.get((case.length, case.set_name)) if engine == "tsfresh" else None
    command = [
        str(python), str(Path(__file__).resolve()), "--worker", engine, "--set", case.set_name,
        "--input", str(work / f"input-{case.length}.arrow"), "--result", f"{stem}.json",
        "--out", f"{stem}.parquet", "--repeat", str(args.repeat),
    ]  # fmt: skip
    if subset and subset < case.series:
        command += ["--subset", str(subset)]
    print(f"  {engine} ...", end=" ", flush=True)
    # the work dir as cwd: tsfx would read a .tsfx-config.toml from the working directory
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, check=False)
    worker_s = time.perf_counter() - t0
    if done.returncode != 0 or not Path(f"{stem}.json").exists():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        print(f"FAILED ({tail})", flush=True)
        return {"error": f"failed: {tail}"}
    result = json.loads(Path(f"{stem}.json").read_text()) | {"worker_s": worker_s}
    print(
        f"{result['seconds']:.2f} s on {result['series']:,} series, "
        f"+{result['rss_added_mib']:.0f} MiB (worker {worker_s:.0f} s)",
        flush=True,
    )
    return result


def run_case(length: int, set_name: str, work: Path, args: argparse.Namespace) -> Case:
    table = read_ipc(work / f"input-{length}.arrow")
    case = Case(length, set_name, len(table["id"].unique()), table.num_rows, table.nbytes / MIB)
    print(f"{length} points, {set_name}: {case.series:,} series", flush=True)
    for engine in args.engines:
        case.results[engine] = run_worker(engine, case, work, args)
    if "seconds" not in case.results.get("tsfresh", {}):
        return case
    stem = f"{length}-{set_name}"
    reference = pl.read_parquet(work / f"tsfresh-{stem}.parquet")
    for engine in ("streamfx", "tsfresh-rs", "tsfx"):
        if "seconds" in case.results.get(engine, {}):
            got = pl.read_parquet(work / f"{engine}-{stem}.parquet")
            names = None
            if engine == "tsfx":
                names = tsfx_to_tsfresh(got["feature"].unique(), reference["feature"].unique())
                case.results[engine]["shared"] = len(names)
            case.parity[engine] = parity(reference, got, names)
    return case


# -- output ---------------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def seconds_cell(case: Case, engine: str) -> str:
    r = case.results.get(engine)
    if r is None:
        return "-"
    if "error" in r:
        return r["error"][:60]
    text = f"{r['seconds']:.3f}" if r["seconds"] < 10 else f"{r['seconds']:.1f}"
    if r["series"] < case.series:
        text += f" ({r['series']} series: {r['seconds'] / r['series']:.2f} s each)"
    return text


def time_table(cases: list[Case]) -> str:
    by_key = {(c.length, c.set_name): c for c in cases}
    rows = []
    for c in cases:
        eff = by_key.get((c.length, "efficient"))
        comp = c.seconds("streamfx") if c.set_name == "comprehensive" else None
        base = eff.seconds("streamfx") if eff else None
        rows.append(
            [
                f"{c.length:,}",
                c.set_name,
                f"{c.series:,}",
                f"{c.arrow_mib:.2f}",
                *(seconds_cell(c, e) for e in ENGINES),
                *(fmt(c.ratio(e), ".1f", "×") for e in ENGINES[1:]),
                fmt(comp / base if comp is not None and base else None, ".2f", "×"),
            ]
        )
    header = [
        "points", "set", "series", "Arrow MiB", *(f"{e} s" for e in ENGINES),
        *(f"{e} / streamfx" for e in ENGINES[1:]), "streamfx comp / eff",
    ]  # fmt: skip
    return markdown_table(header, rows)


def memory_table(cases: list[Case]) -> str:
    def cell(c: Case, engine: str) -> str:
        r = c.results.get(engine, {})
        if "rss_added_mib" not in r:
            return "-"
        return (
            f"+{r['rss_added_mib']:.0f} (before {r['rss_before_mib']:.0f}, after imports "
            f"{r['rss_imports_mib']:.0f}; "
            f"ru_maxrss {r['ru_maxrss_mib']:.0f} + {r['ru_maxrss_child_mib']:.0f})"
        )

    rows = [
        [f"{c.length:,}", c.set_name, f"{c.rss_limit_mib:.0f}", *(cell(c, e) for e in ENGINES)]
        for c in cases
    ]
    return markdown_table(["points", "set", "limit MiB", *(f"{e} MiB" for e in ENGINES)], rows)


def parity_table(cases: list[Case]) -> str:
    def cell(c: Case, engine: str) -> str:
        r, p = c.results.get(engine, {}), c.parity.get(engine)
        if "features" not in r:
            return "-"
        text = f"{r['features']}"
        if "shared" in r:
            text += f" ({r['shared']} shared)"
        if p is not None:
            text += f": {100 * p.share:.3f}% of {p.cells:,}"
            if p.differing:
                text += f"; {len(p.differing)} differ, e.g. {', '.join(p.differing[:2])}"
        return text

    rows = [[f"{c.length:,}", c.set_name, *(cell(c, e) for e in ENGINES)] for c in cases]
    return markdown_table(["points", "set", *ENGINES], rows)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def targets(cases: list[Case]) -> list[str]:
    lines = []
    for engine, floor in (("tsfresh-rs", VS_TSFRESH_RS), ("tsfx", VS_TSFX)):
        got = [(c, c.ratio(engine)) for c in cases]
        known = [(c, r) for c, r in got if r is not None]
        ok = all(r >= floor for _, r in known) if len(known) == len(got) and known else None
        worst = min(known, key=lambda cr: cr[1], default=None)
        at = f"lowest {worst[1]:.2f}× at {worst[0].length:,} {worst[0].set_name}" if worst else "-"
        lines.append(
            f"- streamfx {'at least as fast as' if floor == 1 else f'≥ {floor:g}× faster than'} "
            f"{engine} at every length and set ({engine} / streamfx): {at}: {verdict(ok)}"
        )
    shares = [c.parity.get("streamfx") for c in cases]
    ok = None if None in shares or not shares else all(p.share == 1.0 for p in shares if p)
    low = min((100 * p.share for p in shares if p), default=None)
    lines.append(
        f"- streamfx cells equal to tsfresh: lowest {fmt(low, '.3f', '%')} (target 100%): "
        f"{verdict(ok)}"
    )
    eff = {c.length: c.seconds("streamfx") for c in cases if c.set_name == "efficient"}
    ratios = [
        (c.length, c.seconds("streamfx") / eff[c.length])
        for c in cases
        if c.set_name == "comprehensive" and eff.get(c.length) and c.seconds("streamfx")
    ]
    ok = all(r <= COMPREHENSIVE_VS_EFFICIENT for _, r in ratios) if ratios else None
    lines.append(
        f"- streamfx comprehensive ≤ {COMPREHENSIVE_VS_EFFICIENT:g}× efficient: "
        f"{', '.join(f'{n:,}: {r:.2f}×' for n, r in ratios) or '-'}: {verdict(ok)}"
    )
    mem = [(c, c.results.get("streamfx", {}).get("rss_added_mib")) for c in cases]
    known_mem = [(c, m) for c, m in mem if m is not None]
    ok = all(m <= c.rss_limit_mib for c, m in known_mem) if known_mem else None
    lines.append(
        "- streamfx memory added ≤ 3 × Arrow input + 100 MB: "
        + ", ".join(
            f"{c.length:,} {c.set_name} +{m:.0f} / {c.rss_limit_mib:.0f}" for c, m in known_mem
        )
        + f" MiB: {verdict(ok)}"
    )
    return lines


def parallelism(cases: list[Case]) -> str:
    found: dict[str, str] = {}
    for c in cases:
        for engine, r in c.results.items():
            found.setdefault(engine, r.get("parallelism", "-"))
    return "; ".join(f"{engine} {p}" for engine, p in found.items())


def versions(cases: list[Case]) -> str:
    found = {}
    for c in cases:
        for r in c.results.values():
            found |= r.get("versions", {})
    for lib in ("polars", "numpy", "pandas", "pyarrow"):
        found[lib] = metadata.version(lib)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        import streamfx

        commit = subprocess.run(
            ["git", "-C", str(Path(streamfx.__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        found["streamfx"] = f"{found.get('streamfx', streamfx.__version__)} ({commit})"
    return ", ".join(f"{lib} {v}" for lib, v in found.items())


def section(cases: list[Case], heading: str, command: str, load: float, repeat: int) -> str:
    """The RESULTS.md section, heading included."""
    from common import machine

    from streamfx.classify.plan import available_cores

    calls = f"median of {repeat} calls, one where a call takes over {SLOW_CALL_S:g} s"
    calls = calls if repeat > 1 else "one call"
    lines = [
        heading,
        "",
        f"- Date: {timestamp()}",
        f"- Machine: {machine()}; load average at start {load:.2f}",
        f"- Command: `{command}`",
        f"- Versions: {versions(cases)}",
        f"- Parallelism: {parallelism(cases)}.",
        "- Input per length (one Arrow table, id / time / value, every engine reads it): "
        + "; ".join(
            f"{c.length:,}: {c.series:,} "
            f"{'celle5 (UTC day, sensor)' if c.length == 144 else 'generated'} series, "
            f"{c.rows:,} rows, {c.arrow_mib:.2f} MiB"
            for c in {c.length: c for c in cases}.values()
        )
        + ".",
        "- Wall s: the extraction call alone (input in memory as the engine takes it, imports "
        f"and a warm-up call done), {calls}. Ratios: the engine's time over streamfx's, per "
        "series where tsfresh ran on the first K series only (shown in its cell).",
        "",
        time_table(cases),
        "",
        "Memory (MiB): peak RSS of the worker and its children during the call (sampled every "
        "5 ms) minus the RSS just before it (input and warm-up done), that RSS and the RSS "
        "after imports, and `ru_maxrss` of the worker + its largest child; limit = 3 × Arrow "
        "input + 100 MB.",
        "",
        memory_table(cases),
        "",
        "Features per series, and cells equal to tsfresh's (rtol 1e-6 / atol 1e-9, NaN = NaN, "
        "missing = unequal; tsfx: on the tsfresh features it shares, names mapped):",
        "",
        parity_table(cases),
        "",
        "Targets:",
        "",
        *targets(cases),
    ]
    if load > available_cores():
        lines.append(
            f"- **Warning:** the load average was {load:.1f} on {available_cores()} cores at the "
            "start: other processes shared the CPUs, so times are longer than on an idle machine."
        )
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def name_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [x for x in text.split(",") if x]
        if bad := [n for n in names if n not in choices]:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return names

    return parse


def length_map(text: str) -> dict[int, int]:
    pairs = [p.split("=") for p in text.split(",") if p]
    return {int(k): int(v) for k, v in pairs}


def case_map(text: str) -> dict[tuple[int, str], int]:
    """``10000=4`` (both sets) or ``10000:comprehensive=4`` -> {(length, set): 4}."""
    found = {}
    for part in filter(None, text.split(",")):
        key, count = part.split("=")
        length, _, set_name = key.partition(":")
        for s in [set_name] if set_name else SETS:
            found[int(length), name_list(SETS)(s)[0]] = int(count)
    return found


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--lengths", type=int_list, help="points per series (default 12,144,1000,10000)"
    )
    parser.add_argument("--sets", type=name_list(SETS), default=list(SETS), help="feature sets")
    parser.add_argument("--engines", type=name_list(ENGINES), default=list(ENGINES), help="engines")
    parser.add_argument(
        "--series", type=length_map, default={},
        help="LENGTH=N,...: series per length (for 144: celle5 days, x 17 sensors)",
    )  # fmt: skip
    parser.add_argument(
        "--tsfresh-series", type=case_map, default={},
        help="LENGTH[:SET]=K,...: tsfresh on the first K series only (default "
        + ",".join(f"{n}:{s}={k}" for (n, s), k in TSFRESH_SERIES.items()) + "; 0 = all)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=7, help="timed calls (median) under 5 s")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one call")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write")
    add_output_options(parser, keep=True)
    # internal: one engine in this fresh process
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--set", choices=SETS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--subset", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.lengths = args.lengths or list(QUICK_LENGTHS if args.quick else LENGTHS)
    args.series = {**(QUICK_SERIES if args.quick else SERIES), **args.series}
    args.repeat = 1 if args.quick else args.repeat
    args.tsfresh_series = {**TSFRESH_SERIES, **args.tsfresh_series}
    if bad := [n for n in args.lengths if n not in args.series]:
        parser.error(f"no series count for length {bad}: give --series {bad[0]}=N")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    command, load = command_line("bench_extract.py"), os.getloadavg()[0]
    work = work_dir("streamfx-bench-extract-", args.keep)
    t0 = time.perf_counter()
    cases = []
    for length in args.lengths:
        count = args.series[length]
        table = celle5(count) if length == 144 else generated(length, count)
        write_ipc(table, work / f"input-{length}.arrow")
        cases += [run_case(length, s, work, args) for s in args.sets]
    heading = HEADING + (" (quick smoke run)" if args.quick else "")
    text = section(cases, heading, command, load, args.repeat)
    print(f"\n{text}\n(benchmark total {time.perf_counter() - t0:.0f} s)")
    if not args.no_write:
        write_section(text, heading, args.results)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
