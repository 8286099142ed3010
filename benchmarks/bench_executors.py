"""Local vs Ray executor: the same demo run on both, and Ray's overhead on one node as a ratio.

One command::

    python benchmarks/bench_executors.py [--days 9] [--repeats 2] [--cpus 2]

It starts a throwaway embedded PostgreSQL in a temporary directory, seeds the generated demo
dataset (``days=N``) into one database, then runs ``python -m streamfx.cli run <pipeline.yaml>
-q`` as a real subprocess, alternately with ``executor: {kind: local, cpu_workers: C}`` and
``executor: {kind: ray, ray_num_cpus: C}`` (a local Ray instance started and stopped by each run;
``address: local`` would be the same, ``auto`` is used as users would), ``--repeats`` times each,
every run into its own Parquet folder and PostgreSQL table. Reported per executor: the median
wall time of the command (interpreter start to exit), the run time streamfx reports (planning,
extraction and sinks; with Ray also connecting, which starts the instance), the workers' summed
busy time from the run report, and whether the output equals the local executor's (Parquet and
PostgreSQL, exactly). The ratio ray/local is Ray's overhead on one node: starting the instance,
a fresh worker process per streamfx worker, and results passing through Ray's object store.

The table is written into ``benchmarks/RESULTS.md`` under its own heading; other sections of that
file are left as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from common import add_output_options, command_line, machine, markdown_table, publish, timestamp
from common import work_dir as make_work_dir

from streamfx.database import connect, start_embedded
from streamfx.source.datasets.demo import DemoTables, seed_demo

HEADING = "## Local vs Ray executor (bench_executors.py)"
DEFAULT_DAYS = 9


def pipeline(work: Path, label: str, executor: dict) -> Path:
    """A pipeline file for the demo tables, its own Parquet folder and PostgreSQL table."""
    config = {
        "name": f"bench-executors-{label}",
        "source": {
            "dsn": "${STREAMFX_DSN}",
            "readings": {
                "table": "sensor_readings",
                "layout": "long",
                "partition_column": "compartment_id",
            },
            "eras": {"table": "eras", "partition_column": "compartment_id"},
        },
        "stages": {"classify": {"profile": "reference"}},
        "sinks": {
            "parquet": {"path": str(work / label)},
            "postgres": {"table": f"features_{label.replace('-', '_')}"},
        },
        "executor": executor,
    }
    path = work / f"{label}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Run:
    executor: str
    label: str
    wall_s: float
    report: dict

    @property
    def run_s(self) -> float:
        return float(self.report["seconds"])

    @property
    def busy_s(self) -> float:
        return sum(w["busy_s"] for w in self.report["workers"])


def run_streamfx(work: Path, label: str, executor: dict, dsn: str) -> Run:
    path = pipeline(work, label, executor)
    env = {**os.environ, "STREAMFX_DSN": dsn}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "streamfx.cli", "run", str(path), "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{label}: streamfx exited {result.returncode}:\n{result.stderr}")
    (report,) = (work / label / "runs").glob("*.json")
    return Run(executor["kind"], label, wall, json.loads(report.read_text()))


def same_output(work: Path, dsn: str, a: str, b: str) -> bool:
    """Parquet and PostgreSQL outputs of two runs are equal, row for row."""
    import polars as pl

    def table(label: str) -> pl.DataFrame:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT era_id, sensor, feature, value "
                f"FROM features_{label.replace('-', '_')} ORDER BY era_id, sensor, feature"
            )
            frame = pl.from_arrow(cur.fetch_arrow_table())
        conn.commit()
        return frame

    conn = connect(dsn)
    try:
        parquet = pl.read_parquet(work / a / "features.parquet").equals(
            pl.read_parquet(work / b / "features.parquet")
        )
        return parquet and table(a).equals(table(b))
    finally:
        conn.close()


def section(runs: list[Run], same: bool, command: str, counts: dict, days: int, cpus: int) -> str:
    by_kind = {kind: [r for r in runs if r.executor == kind] for kind in ("local", "ray")}
    median = {k: statistics.median(r.wall_s for r in rs) for k, rs in by_kind.items()}
    rows = []
    for kind, rs in by_kind.items():
        rows.append(
            [
                kind,
                str(len(rs)),
                " / ".join(f"{r.wall_s:.1f}" for r in rs),
                f"{median[kind]:.1f}",
                f"{statistics.median(r.run_s for r in rs):.1f}",
                f"{statistics.median(r.busy_s for r in rs):.1f}",
                str(rs[0].report["eras"]["done"]),
                ", ".join(f"{w['worker']}@{w['node'] or 'local'}" for w in rs[0].report["workers"]),
                f"{median[kind] / median['local']:.2f}",
            ]
        )
    header = [
        "executor",
        "runs",
        "wall s (each)",
        "wall s (median)",
        "run s (report)",
        "busy s (workers)",
        "eras done",
        "workers @ node",
        "ratio vs local",
    ]
    ratio = median["ray"] / median["local"]
    return "\n".join(
        [
            HEADING,
            "",
            f"- Date: {timestamp()}",
            f"- Machine: {machine()}; load average at start "
            + " / ".join(f"{x:.2f}" for x in os.getloadavg()),
            f"- Command: `{command}`",
            f"- Input: the demo dataset, {days} days: {counts['readings']:,} readings, "
            f"{counts['eras']} eras, in a throwaway embedded PostgreSQL; reference sensor "
            "profile, native extractor, default `eras_per_pass`.",
            f"- Each run: `python -m streamfx.cli run <pipeline.yaml> -q` in a subprocess, "
            f"local (`cpu_workers: {cpus}`) and ray (`kind: ray, ray_num_cpus: {cpus}`: a local "
            "Ray instance started and stopped by the run; lanes sized to its CPUs) alternately. "
            "Wall s: the whole command; run s: streamfx's own run time from the run report "
            "(with Ray it includes starting the instance); busy s: the workers' summed "
            "extraction time.",
            "",
            markdown_table(header, rows),
            "",
            f"- Ray / local wall time (median): **{ratio:.2f}** "
            f"(+{median['ray'] - median['local']:.1f} s on one node).",
            f"- Output of the ray runs equal to the local run's (Parquet and PostgreSQL, "
            f"exactly): **{'yes' if same else 'NO'}**.",
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of demo data")
    parser.add_argument("--repeats", type=int, default=2, help="runs per executor")
    parser.add_argument("--cpus", type=int, default=2, help="workers / Ray CPUs")
    add_output_options(parser, keep=True)
    args = parser.parse_args(argv)
    if args.days < 1 or args.repeats < 1 or args.cpus < 1:
        parser.error("--days, --repeats and --cpus must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = command_line("bench_executors.py")
    work = make_work_dir("streamfx-bench-executors-", args.keep)  # before the server
    t0 = time.perf_counter()
    server = start_embedded(work / "pg")
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(server, autocommit=True) as admin, admin.cursor() as cur:
        cur.execute('CREATE DATABASE "bench"')
    head, _, query = server.partition("?")
    dsn = f"{head.rsplit('/', 1)[0]}/bench" + (f"?{query}" if query else "")
    conn = connect(dsn)
    try:
        counts = seed_demo(conn, DemoTables(), days=args.days)
    finally:
        conn.close()
    print(f"seeded {counts['readings']:,} readings, {counts['eras']} eras", flush=True)
    executors = {
        "local": {"kind": "local", "cpu_workers": args.cpus},
        "ray": {"kind": "ray", "ray_num_cpus": args.cpus},
    }
    runs = []
    for i in range(args.repeats):
        for kind, executor in executors.items():
            run = run_streamfx(work, f"{kind}-{i}", executor, dsn)
            print(f"{run.label}: {run.wall_s:.1f} s", flush=True)
            runs.append(run)
    same = all(same_output(work, dsn, "local-0", r.label) for r in runs if r.executor == "ray")
    text = section(runs, same, command, counts, args.days, args.cpus)
    total = f"(benchmark total {time.perf_counter() - t0:.0f} s)"
    publish(text, HEADING, write=not args.no_write, note=total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
