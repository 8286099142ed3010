"""GPU check: every calculator's parity on a CUDA device, and GPU vs CPU vs tsfresh timings.

For a machine with a CUDA GPU and CuPy (cuDF optional); no database needed. One command, done
in under five minutes on the default sizes::

    python benchmarks/gpu_check.py [--demo-days 30] [--celle5-days 60] [--budget-s 270]

Without CuPy or a usable CUDA device it prints one line,
``gpu_check: CuPy/CUDA not available: <reason>``, and exits with status 3, so a script can tell.

(a) Parity on the device: every calculator in ``streamfx.extract.calculators.CALCULATORS`` with its
    efficient parameter sets (comprehensive ones for a calculator the efficient set lacks) is
    computed by ``calculators.compute`` on ``cupy.asarray(batch)`` (series bucketed by length, as
    the extractor does) and compared with tsfresh on the host, cell by cell (rtol 1e-6,
    atol 1e-9 as ``math.isclose``; NaN equal to NaN; a missing feature unequal), for random
    walks, white noise, constants, lengths 1-5, ties, a binary status, large offsets and real
    celle5 days of all 17 sensors. The same kernels on NumPy are checked too, so a failure can
    be told apart as GPU-only or not.
(b) Timings on the same eras for the ``gpu`` extractor (``GpuExtractor``), the ``native`` CPU
    extractor and tsfresh (``n_jobs`` = all usable cores): the generated demo data over
    ``--demo-days`` days (2 compartments, eras = fixed 1-day windows per compartment) and the
    celle5 export (the first ``--celle5-days`` UTC days with readings, eras = days), each with the
    ported calculators only and with the whole efficient set (calculators not ported fall back
    to tsfresh inside both streamfx extractors). GPU and native get one warm-up era first (JIT
    and CUDA kernel compilation). Runs that would not fit in ``--budget-s`` are skipped.
(c) The results go into ``benchmarks/RESULTS.md`` under "## GPU check (gpu_check.py)"; other
    sections are kept.

Exit status: 0 when every calculator matches tsfresh on the device, 1 when some do not, 3 without
CuPy/CUDA. ``--simulate`` runs everything with NumPy in place of CuPy, to check this script on a
machine without a GPU; it never writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from common import (
    ATOL,
    DATA,
    RTOL,
    add_output_options,
    command_line,
    machine,
    markdown_table,
    publish,
    speedup,
    timestamp,
)

HEADING = "## GPU check (gpu_check.py)"
UNAVAILABLE_EXIT = 3


class Unavailable(Exception):
    """No usable CuPy/CUDA on this machine."""


@dataclass
class Device:
    """The array module the GPU side runs on, and how to describe it."""

    xp: ModuleType  # array_api_compat.cupy (or .numpy with --simulate)
    name: str
    simulated: bool
    cupy: Any = None

    def to_host(self, array: Any) -> np.ndarray:
        get = getattr(array, "get", None)
        return np.asarray(get() if callable(get) else array, dtype=np.float64)

    def extractor(self) -> Any:
        """The ``gpu`` extractor (the native one on NumPy when simulated)."""
        if self.simulated:
            from streamfx.extract.extractors.native import NativeExtractor

            return NativeExtractor()
        from streamfx.extract.extractors.gpu import GpuExtractor

        return GpuExtractor()


def probe(simulate: bool) -> Device:
    """CuPy imported, a CUDA device seen and a kernel run on it; else ``Unavailable``."""
    if simulate:
        from array_api_compat import numpy as array_numpy

        return Device(array_numpy, "SIMULATED: NumPy on the CPU, no GPU", True)
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that does not load
        raise Unavailable(f"cannot import cupy: {type(exc).__name__}: {exc}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            raise Unavailable("CuPy sees no CUDA device")
        if int(cupy.arange(4).sum().item()) != 6:
            raise Unavailable("a test kernel gave a wrong result")
        from array_api_compat import cupy as array_cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        memory = cupy.cuda.Device(0).mem_info[1] / 1024**3
        runtime = cupy.cuda.runtime.runtimeGetVersion()
    except Unavailable:
        raise
    except Exception as exc:  # no driver, no device, a broken install
        raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        import cudf

        cudf_version = f"cuDF {cudf.__version__}"
    except Exception:
        cudf_version = "cuDF not installed"
    name = (
        f"{gpu} ({memory:.0f} GiB; {count} device(s)), CUDA runtime "
        f"{runtime // 1000}.{runtime % 1000 // 10}, CuPy {cupy.__version__}, {cudf_version}"
    )
    return Device(array_cupy, name, False, cupy)


# -- data -----------------------------------------------------------------------------------


def celle5_long(folder: Path = DATA) -> pl.DataFrame:
    """The celle5 export as long readings (time, sensor, value) with ``era_id`` = UTC day."""
    from streamfx.source.datasets.aarslev import load_aarslev, to_long

    return to_long(load_aarslev(folder)).with_columns(
        era_id=pl.col("time").dt.strftime("%Y-%m-%dT00:00:00Z")
    )


def parity_cases(seed: int = 7) -> list[tuple[str, np.ndarray]]:
    """Labelled series: synthetic edge cases and real celle5 days of every sensor."""
    rng = np.random.default_rng(seed)
    cases = [(f"walk-{n}", rng.normal(size=n).cumsum()) for n in (10, 50, 144, 288, 1000, 5000)]
    cases += [(f"noise-{n}", rng.normal(size=n)) for n in (20, 144)]
    cases += [(f"const-{n}", np.full(n, 3.5)) for n in (1, 5, 40)]
    cases += [("zeros-30", np.zeros(30)), ("const-1e6-144", np.full(144, 1e6))]
    cases += [(f"len-{n}", rng.normal(size=n)) for n in (1, 2, 3, 4, 5)]
    cases += [(f"ties-{n}", rng.integers(0, 4, size=n).astype(float)) for n in (6, 60)]
    cases += [("binary-144", rng.integers(0, 2, size=144).astype(float))]
    cases += [("co2-like-144", 420 + 5 * rng.normal(size=144).cumsum())]
    cases += [("pattern-5", np.array([1.0, 1.0, 2.0, 2.0, 1.0]))]
    cases += [("alternating-4", np.array([5.0, -5.0, 5.0, -5.0]))]
    if DATA.is_dir():
        long = celle5_long()
        days = long["era_id"].unique().sort()
        picked = [days[i] for i in (0, 40, 100) if i < len(days)]
        for (day, sensor), group in long.filter(pl.col("era_id").is_in(picked)).group_by(
            "era_id", "sensor", maintain_order=True
        ):
            values = group.sort("time")["value"].to_numpy()
            cases.append((f"celle5 {sensor} {str(day)[:10]}", values))
    return cases


def parameters() -> tuple[dict[str, Any], list[str]]:
    """Every ported calculator with its efficient (else comprehensive) parameter sets."""
    from streamfx import feature_set
    from streamfx.extract.calculators import CALCULATORS

    efficient, comprehensive = feature_set("efficient"), feature_set("comprehensive")
    settings, unknown = {}, []
    for name in sorted(CALCULATORS):
        if name in efficient:
            settings[name] = efficient[name]
        elif name in comprehensive:
            settings[name] = comprehensive[name]
        else:
            unknown.append(name)
    return settings, unknown


# -- (a) parity -----------------------------------------------------------------------------


@dataclass
class CalculatorParity:
    """One calculator's cells on the device and on NumPy against tsfresh."""

    name: str
    features: int = 0
    cells: int = 0
    gpu_bad: int = 0
    cpu_bad: int = 0
    first_failure: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.gpu_bad == 0 and not self.error and self.features > 0


def tsfresh_reference(
    cases: Sequence[tuple[str, np.ndarray]], settings: dict[str, Any], n_jobs: int
) -> dict[str, np.ndarray]:
    """tsfresh.extract_features on every case: feature (without ``x__``) -> value per case."""
    import pandas as pd
    import tsfresh

    frame = pd.DataFrame(
        {
            "id": np.repeat(np.arange(len(cases)), [len(v) for _, v in cases]),
            "time": np.concatenate([np.arange(len(v)) for _, v in cases]),
            "value": np.concatenate([v for _, v in cases]),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide = tsfresh.extract_features(
            frame,
            column_id="id",
            column_sort="time",
            column_value="value",
            default_fc_parameters=settings,
            n_jobs=n_jobs,
            disable_progressbar=True,
        )
    wide = wide.sort_index()
    return {c.removeprefix("value__"): wide[c].to_numpy(dtype=np.float64) for c in wide.columns}


def kernel_values(
    cases: Sequence[tuple[str, np.ndarray]],
    name: str,
    params: Any,
    xp: ModuleType,
    to_host: Callable[[Any], np.ndarray],
) -> dict[str, np.ndarray]:
    """One calculator via ``compute`` on ``xp.asarray(batch)``, one batch per series length."""
    from streamfx.extract.calculators import compute

    lengths = np.array([len(v) for _, v in cases])
    out: dict[str, np.ndarray] = {}
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        batch = xp.asarray(np.stack([cases[i][1].astype(np.float64) for i in members]))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for feature, values in compute(batch, {name: params}):
                column = out.setdefault(feature, np.full(len(cases), np.nan))
                column[members] = to_host(values)
    return out


def unequal(want: np.ndarray, have: np.ndarray) -> np.ndarray:
    """Mask of cells that differ (``math.isclose`` tolerances, NaN equal to NaN)."""
    with np.errstate(all="ignore"):
        nan = np.isnan(want) | np.isnan(have)
        close = (want == have) | (
            np.abs(want - have) <= np.maximum(RTOL * np.maximum(np.abs(want), np.abs(have)), ATOL)
        )
    return np.where(nan, np.isnan(want) != np.isnan(have), ~close)


def check_parity(device: Device, n_jobs: int) -> tuple[list[CalculatorParity], int, list[str]]:
    """Parity of every calculator; returns the rows, the number of cases and unknown names."""
    from array_api_compat import numpy as array_numpy

    cases = parity_cases()
    settings, unknown = parameters()
    reference = tsfresh_reference(cases, settings, n_jobs)
    rows = []
    for name, params in settings.items():
        row = CalculatorParity(name)
        wanted = {f: v for f, v in reference.items() if f == name or f.startswith(f"{name}__")}
        try:
            gpu = kernel_values(cases, name, params, device.xp, device.to_host)
        except Exception as exc:  # a kernel that does not run on the device at all
            row.error = f"{type(exc).__name__}: {exc}"[:200]
            rows.append(row)
            continue
        try:
            cpu = kernel_values(cases, name, params, array_numpy, device.to_host)
        except Exception:  # counted as all unequal on NumPy; the device result still counts
            cpu = {}
        row.features = len(wanted)
        for feature in sorted(set(gpu) - set(wanted)):
            row.first_failure = row.first_failure or f"{feature}: not a tsfresh feature"
            row.gpu_bad += len(cases)
        for feature, want in wanted.items():
            row.cells += len(want)
            missing = np.full(len(want), np.nan)
            bad = unequal(want, gpu[feature]) if feature in gpu else np.ones(len(want), bool)
            row.gpu_bad += int(bad.sum())
            row.cpu_bad += int(unequal(want, cpu.get(feature, missing)).sum())
            if bad.any() and not row.first_failure:
                i = int(np.flatnonzero(bad)[0])
                have = gpu[feature][i] if feature in gpu else "missing"
                row.first_failure = f"{feature} on {cases[i][0]}: {have} != tsfresh {want[i]}"
        rows.append(row)
    return rows, len(cases), unknown


# -- (b) timings ----------------------------------------------------------------------------


@dataclass
class Timing:
    """One dataset and feature set: the three engines' seconds and their agreement."""

    dataset: str
    feature_set: str
    eras: int
    series: int
    readings: int
    seconds: dict[str, float | None] = field(default_factory=dict)
    gpu_vs_native: float | None = None  # share of cells equal
    gpu_vs_tsfresh: float | None = None
    note: str = ""


def demo_readings(days: int) -> pa.Table:
    """Generated demo readings, 2 compartments, eras = 1-day windows per compartment."""
    from streamfx.model import READINGS_SCHEMA
    from streamfx.source.datasets.demo import generate_readings

    long = generate_readings(days=days, compartments=2).with_columns(
        era_id=pl.format(
            "{}/{}",
            pl.col("compartment_id"),
            pl.col("time").dt.strftime("%Y-%m-%dT00:00:00Z"),
        )
    )
    frame = long.select("era_id", "sensor", "time", "value").sort("era_id", "sensor", "time")
    return frame.to_arrow().cast(READINGS_SCHEMA)


def celle5_readings(days: int) -> pa.Table:
    """The first ``days`` UTC days of celle5 with readings; eras = days."""
    from streamfx.model import READINGS_SCHEMA

    long = celle5_long()
    chosen = long["era_id"].unique().sort().head(days)
    frame = (
        long.filter(pl.col("era_id").is_in(chosen.implode()))
        .select("era_id", "sensor", "time", "value")
        .sort("era_id", "sensor", "time")
    )
    return frame.to_arrow().cast(READINGS_SCHEMA)


def share_equal(reference: pa.Table, got: pa.Table) -> float:
    """Share of ``reference``'s long feature cells that ``got`` has equal."""
    keys = ["era_id", "sensor", "feature"]
    a = pl.from_arrow(reference)
    b = pl.from_arrow(got)
    assert isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame)
    joined = a.join(b, on=keys, how="left", suffix="_got")
    if joined.height == 0:
        return 1.0
    want = joined["value"].to_numpy().astype(np.float64)
    have = joined["value_got"].to_numpy().astype(np.float64)
    missing = joined["value_got"].is_null().to_numpy()
    bad = unequal(want, have) | missing
    return 1.0 - float(bad.mean())


class Clock:
    """The time budget of the whole check."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


def timed(function: Callable[[], pa.Table]) -> tuple[float, pa.Table]:
    t0 = time.perf_counter()
    result = function()
    return time.perf_counter() - t0, result


def time_engines(
    label: str,
    readings: pa.Table,
    feature_set_name: str,
    settings: dict[str, Any],
    device: Device,
    clock: Clock,
    cores: int,
) -> Timing:
    """tsfresh, native and gpu on the same eras; later engines skipped when out of budget."""
    import pyarrow.compute as pc

    from streamfx.extract.calculators import split_settings
    from streamfx.extract.extractors.native import NativeExtractor
    from streamfx.extract.extractors.tsfresh import TsfreshExtractor

    sensors = sorted(set(readings["sensor"].to_pylist()))
    fc = dict.fromkeys(sensors, settings)
    eras = pc.unique(readings["era_id"])
    row = Timing(
        label,
        feature_set_name,
        len(eras),
        len(readings.select(["era_id", "sensor"]).group_by(["era_id", "sensor"]).aggregate([])),
        readings.num_rows,
    )
    first = readings.filter(pc.equal(readings["era_id"], eras[0]))
    warm = dict.fromkeys(sensors, split_settings(settings)[0])  # ported part: JIT, CUDA kernels
    engines: list[tuple[str, Any]] = [
        ("tsfresh", TsfreshExtractor()),
        ("native", NativeExtractor()),
        ("gpu", device.extractor()),
    ]
    outputs: dict[str, pa.Table] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_era, _ = timed(lambda: TsfreshExtractor().extract(first, fc))
        estimate = 1.3 * one_era * len(eras) / cores  # tsfresh's run, from one era in process
        for name, extractor in engines:
            if clock.left() < max(5.0, estimate):
                row.seconds[name] = None
                row.note = f"{name} and later skipped: time budget (estimated {estimate:.0f} s)"
                break
            if name != "tsfresh":
                extractor.extract(first, warm)
            seconds, outputs[name] = timed(
                lambda ex=extractor: ex.extract(readings, fc, n_jobs=cores)
            )
            row.seconds[name] = seconds
            estimate = 1.2 * seconds
            print(f"  {label} / {feature_set_name} / {name}: {seconds:.2f} s", flush=True)
    if "gpu" in outputs and "native" in outputs:
        row.gpu_vs_native = share_equal(outputs["native"], outputs["gpu"])
    if "gpu" in outputs and "tsfresh" in outputs:
        row.gpu_vs_tsfresh = share_equal(outputs["tsfresh"], outputs["gpu"])
    return row


# -- output ---------------------------------------------------------------------------------


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.3f}%"


def seconds_text(value: float | None) -> str:
    return "skipped" if value is None else f"{value:.3f}"


def timing_table(rows: Sequence[Timing]) -> str:
    header = [
        "data",
        "feature set",
        "eras",
        "series",
        "readings",
        "tsfresh s",
        "native s",
        "gpu s",
        "gpu vs native",
        "gpu vs tsfresh",
        "native vs tsfresh",
        "gpu = native (cells)",
        "gpu = tsfresh (cells)",
    ]
    body = [
        [
            r.dataset,
            r.feature_set,
            f"{r.eras:,}",
            f"{r.series:,}",
            f"{r.readings:,}",
            seconds_text(r.seconds.get("tsfresh")),
            seconds_text(r.seconds.get("native")),
            seconds_text(r.seconds.get("gpu")),
            speedup(r.seconds.get("native"), r.seconds.get("gpu")),
            speedup(r.seconds.get("tsfresh"), r.seconds.get("gpu")),
            speedup(r.seconds.get("tsfresh"), r.seconds.get("native")),
            percent(r.gpu_vs_native),
            percent(r.gpu_vs_tsfresh),
        ]
        for r in rows
    ]
    return markdown_table(header, body)


def parity_lines(rows: Sequence[CalculatorParity], cases: int, unknown: Sequence[str]) -> list[str]:
    passed = sum(r.passed for r in rows)
    cells = sum(r.cells for r in rows)
    gpu_bad = sum(r.gpu_bad for r in rows)
    cpu_bad = sum(r.cpu_bad for r in rows)
    cpu_passed = sum(r.cpu_bad == 0 and not r.error and r.features > 0 for r in rows)
    lines = [
        f"- Parity on the device: **{passed} of {len(rows)} calculators pass** "
        f"({cells - gpu_bad:,} of {cells:,} cells equal to tsfresh over {cases} series); "
        f"the same kernels on NumPy: {cpu_passed} of {len(rows)} pass "
        f"({cells - cpu_bad:,} of {cells:,} cells).",
    ]
    if unknown:
        lines.append(f"- Not checked (in no tsfresh feature set): {', '.join(unknown)}.")
    failing = [r for r in rows if not r.passed]
    if failing:
        lines += [
            "",
            markdown_table(
                [
                    "failing calculator",
                    "features",
                    "cells",
                    "GPU unequal",
                    "NumPy unequal",
                    "first",
                ],
                [
                    [
                        r.name,
                        str(r.features),
                        f"{r.cells:,}",
                        "error" if r.error else f"{r.gpu_bad:,}",
                        f"{r.cpu_bad:,}",
                        (r.error or r.first_failure).replace("|", "/"),
                    ]
                    for r in failing
                ],
            ),
        ]
    return lines


def section(
    device: Device,
    parity_rows: Sequence[CalculatorParity],
    cases: int,
    unknown: Sequence[str],
    timings: Sequence[Timing],
    command: str,
    total_s: float,
    fallbacks: int,
) -> str:
    from streamfx.classify.plan import available_cores

    cores = available_cores()
    lines = [
        HEADING,
        "",
        f"- Date: {timestamp()}",
        f"- Machine: {machine()}",
        f"- GPU: {device.name}",
        f"- Command: `{command}` ({total_s:.0f} s in all)",
        "",
        *parity_lines(parity_rows, cases, unknown),
        "",
        f"Timings (seconds of the `extract` call; tsfresh n_jobs={cores}; native and gpu run "
        f"their kernels in process and give calculators that are not ported to tsfresh with "
        f"n_jobs={cores}; one warm-up era before each streamfx run; `ported` = only the "
        "calculators streamfx implements, `efficient` = tsfresh's whole efficient set; "
        "ratios are speed-ups, cells compare the long outputs within rtol 1e-6 / atol 1e-9):",
        "",
        timing_table(timings),
        "",
    ]
    notes = [f"- {t.dataset} / {t.feature_set}: {t.note}" for t in timings if t.note]
    if fallbacks:
        notes.append(
            f"- The gpu extractor fell back to the CPU {fallbacks} time(s) (batch too large "
            "for the device memory cap)."
        )
    if notes:
        lines += [*notes, ""]
    return "\n".join(lines)


class CountWarnings(logging.Handler):
    """Counts the gpu extractor's 'running it on the CPU' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--demo-days", type=int, default=30, help="days of generated demo data")
    parser.add_argument("--celle5-days", type=int, default=60, help="celle5 days with readings")
    parser.add_argument(
        "--budget-s", type=float, default=270.0, help="skip timings that would run past this"
    )
    parser.add_argument(
        "--skip-efficient", action="store_true", help="time the ported calculators only"
    )
    add_output_options(parser, keep=False)
    parser.add_argument(
        "--simulate", action="store_true", help="NumPy in place of CuPy (checks this script)"
    )
    args = parser.parse_args(argv)
    if args.demo_days < 1 or args.celle5_days < 1:
        parser.error("--demo-days and --celle5-days must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget_s)
    try:
        device = probe(args.simulate)
    except Unavailable as exc:
        print(f"gpu_check: CuPy/CUDA not available: {exc}")
        return UNAVAILABLE_EXIT
    from streamfx.classify.plan import available_cores

    command = command_line("gpu_check.py")
    cores = available_cores()
    print(f"gpu_check: {device.name}; {cores} usable cores", flush=True)
    counter = CountWarnings()
    logging.getLogger("streamfx.extract.extractors.gpu").addHandler(counter)

    print("(a) calculator parity on the device ...", flush=True)
    parity_rows, cases, unknown = check_parity(device, cores)
    for line in parity_lines(parity_rows, cases, unknown):
        print(line)

    print("(b) timings ...", flush=True)
    from streamfx import feature_set
    from streamfx.extract.calculators import split_settings

    efficient = feature_set("efficient")
    ported, _, _ = split_settings(efficient)
    datasets: list[tuple[str, Callable[[], pa.Table]]] = [
        (f"demo {args.demo_days} d × 2 compartments", lambda: demo_readings(args.demo_days)),
    ]
    if DATA.is_dir():
        datasets.append((f"celle5 {args.celle5_days} d", lambda: celle5_readings(args.celle5_days)))
    loaded = [(label, load()) for label, load in datasets]
    sets = [("ported", ported)] + ([] if args.skip_efficient else [("efficient", efficient)])
    timings = [
        time_engines(label, readings, set_name, settings, device, clock, cores)
        for set_name, settings in sets
        for label, readings in loaded
    ]
    total = time.perf_counter() - clock.start
    text = section(device, parity_rows, cases, unknown, timings, command, total, counter.count)
    simulated = "(simulated: RESULTS.md left alone)" if device.simulated else ""
    publish(text, HEADING, write=not (device.simulated or args.no_write), note=simulated)
    return 0 if all(r.passed for r in parity_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
