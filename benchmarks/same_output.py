"""Prove that a change to streamfx leaves its outputs identical (e.g. a restructuring).

``dump`` runs the real CLI (``streamfx`` on PATH, i.e. the active venv) in a fresh temporary
directory on the repository's pipelines and on two celle5 pipelines it writes itself (the real
Aarslev data seeded as a wide and as a long table), then saves every output in a canonical,
run-independent form: exit codes, features.parquet (rows and columns in a fixed order, plus its
original column order and Arrow types), manifest.json and the run report without volatile keys,
the PostgreSQL features and era-status tables, the database's tables and row counts, the run's
summary table without timings, stderr of ``run``, and the output of ``plan``, ``validate``,
``plugins --features`` and ``--help`` (COLUMNS=100). ``compare`` checks two dumps value for
value (floats exact, NaN == NaN, null == null, null != NaN), prints one line per artefact and
exits 0 only when everything is identical. Takes about 1.5 minutes on 2 cores.

    python benchmarks/same_output.py dump /tmp/outputs-before --data ../shared/data/aarslev-celle5
    # ... change the code, reinstall if needed ...
    python benchmarks/same_output.py dump /tmp/outputs-after
    python benchmarks/same_output.py compare /tmp/outputs-before /tmp/outputs-after
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "aarslev-celle5"
PG_DIR = Path(".streamfx/pg")  # the embedded server every pipeline here uses (cwd-relative)
RUN_TIMEOUT = 1800

#: The repository's pipeline files (relative to the repository), run in this order: the demo
#: seeds sensor_readings/eras first; fixed-windows reuses sensor_readings.
REPO_PIPELINES = (
    "pipeline.yaml",
    "pipelines/greenhouse.yaml",
    "pipelines/iot-long.yaml",
    "pipelines/fixed-windows.yaml",
)
#: The celle5 pipelines written here, daily eras over all 7 months (Dec 2013 - Jun 2014, both
#: DST changes; each run takes 10-20 s on 2 cores). A window such as
#: {"from": "2014-03-01", "to": "2014-05-01"} would restrict them.
CELLE5_WINDOW: dict[str, str] = {}
CELLE5_LAYOUTS = ("wide", "long")

ERA_COLUMNS = ["era_id", "partition", "start", "end", "readings"]
KEY_COLUMNS = ["partition", "start", "era_id", "sensor", "feature", "features_table"]
VOLATILE_MANIFEST = {"run_id", "created_at"}
VOLATILE_REPORT = {"run_id", "started_at", "seconds", "timings_s", "era_seconds"}
VOLATILE_WORKER = {"busy_s", "peak_rss_mb"}
VOLATILE_ERA = {"seconds", "peak_rss_mb"}
VOLATILE_BALANCE = {"actual_imbalance"}
#: Rows of the run summary (stdout of ``streamfx run``) that do not depend on timing.
STABLE_SUMMARY = (
    "eras",
    "skipped",
    "failed",
    "retried",
    "success rate",
    "lanes",
    "features",
    "rows written",
    "output",
)
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{6}\b")


def cli_env() -> dict[str, str]:
    """The environment for every ``streamfx`` call: fixed width, no forced colours, all plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORCE_COLOR", "TTY_"))}
    env.pop("STREAMFX_PLUGINS", None)
    env.pop("STREAMFX_DSN", None)
    env.update(COLUMNS="100", LINES="50", NO_COLOR="1", TERM="dumb")
    return env


def streamfx(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    exe = shutil.which("streamfx")
    if exe is None:
        sys.exit("same_output: no `streamfx` on PATH (activate the venv of the code to dump)")
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def helper(*args: str, cwd: Path) -> None:
    """This script's own internal subcommand in a child process of the same interpreter: the
    embedded server it starts stops when that child exits, before the next ``streamfx`` call."""
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], cwd=cwd, env=cli_env(), check=True
    )


# -- dump -------------------------------------------------------------------------------------


def celle5_pipeline(layout: str) -> dict[str, Any]:
    return {
        "name": f"celle5-{layout}",
        "source": {
            "dsn": "embedded",
            "readings": {"table": f"celle5_{layout}", "layout": layout},
            "eras": {"every": "1d", **CELLE5_WINDOW},
        },
        "stages": {"classify": {"profile": "reference"}},
        "sinks": {
            "parquet": {"path": f"output/celle5-{layout}"},
            "postgres": {"table": f"celle5_{layout}_features"},
        },
    }


def canonical_features(path: Path, out: Path) -> None:
    """features.parquet with rows sorted by (partition, start, era_id) and the feature columns
    sorted by name; its original column order and Arrow types go to features.schema.json."""
    import polars as pl
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    (out / "features.schema.json").write_text(
        json.dumps(
            {
                "columns": [[f.name, str(f.type), f.nullable] for f in schema],
                "metadata": {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()},
            },
            indent=1,
        )
        + "\n"
    )
    frame = pl.read_parquet(path)
    head = [c for c in ERA_COLUMNS if c in frame.columns]
    rest = sorted(c for c in frame.columns if c not in head)
    keys = [c for c in ("partition", "start", "era_id") if c in frame.columns]
    frame = frame.select(head + rest)
    if keys:
        frame = frame.sort(keys, nulls_last=False, maintain_order=True)
    frame.write_parquet(out / "features.parquet")


def without(data: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def canonical_report(report: dict[str, Any]) -> dict[str, Any]:
    """The run report without run ids, wall-clock times and memory peaks."""
    report = without(report, VOLATILE_REPORT)
    report["workers"] = [without(w, VOLATILE_WORKER) for w in report.get("workers", [])]
    report["balance"] = {
        lane: without(b, VOLATILE_BALANCE) for lane, b in report.get("balance", {}).items()
    }
    report["eras_detail"] = [without(e, VOLATILE_ERA) for e in report.get("eras_detail", [])]
    return report


def stable_summary(stdout: str) -> str:
    """The rows of the run's summary table that do not depend on timing or memory, with the
    run id replaced; a row wrapped over several lines is joined into one."""
    rows: list[list[str]] = []
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) != 2 or not line.lstrip().startswith("│"):
            continue
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1][1] += " " + cells[1]
    kept = [f"{key}: {value}" for key, value in rows if key.startswith(STABLE_SUMMARY)]
    return "".join(RUN_ID.sub("RUN_ID", line) + "\n" for line in kept)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def save_outputs(config: dict[str, Any], work: Path, out: Path) -> list[str]:
    """Parquet-side artefacts of one run; returns the notes for missing ones."""
    notes = []
    sinks = config.get("sinks") or {}
    parquet = sinks.get("parquet")
    if not parquet:
        return notes
    folder = work / parquet["path"]
    features = folder / "features.parquet"
    if features.exists():
        canonical_features(features, out)
    else:
        notes.append("no features.parquet")
    manifest = folder / "manifest.json"
    if manifest.exists():
        write_json(
            out / "manifest.json", without(json.loads(manifest.read_text()), VOLATILE_MANIFEST)
        )
    else:
        notes.append("no manifest.json")
    reports = sorted((folder / "runs").glob("*.json"))
    if len(reports) == 1:
        write_json(out / "report.json", canonical_report(json.loads(reports[0].read_text())))
    else:
        notes.append(f"{len(reports)} run reports (expected 1)")
    return notes


def dump(outdir: Path, data: Path) -> int:
    import yaml

    if outdir.exists() and any(outdir.iterdir()):
        sys.exit(f"same_output: {outdir} exists and is not empty")
    outdir.mkdir(parents=True, exist_ok=True)
    data = data.resolve()
    if not data.is_dir():
        sys.exit(f"same_output: no celle5 data folder at {data} (pass --data)")
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sfx-same-"))
    print(f"same_output: working in {work}, streamfx = {shutil.which('streamfx')}", flush=True)
    try:
        pipelines: list[tuple[str, dict[str, Any]]] = []
        for rel in REPO_PIPELINES:
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / rel, target)
            pipelines.append((rel, yaml.safe_load(target.read_text())))
        for layout in CELLE5_LAYOUTS:
            rel = f"pipelines/celle5-{layout}.yaml"
            config = celle5_pipeline(layout)
            (work / rel).write_text(yaml.safe_dump(config, sort_keys=False))
            pipelines.append((rel, config))

        seeded = False
        for rel, config in pipelines:
            name = config["name"]
            if name.startswith("celle5-") and not seeded:
                started = time.monotonic()
                helper("seed", str(PG_DIR), str(data), cwd=work)
                seeded = True
                print(f"  seeded celle5 ({time.monotonic() - started:.0f} s)", flush=True)
            out = outdir / name
            out.mkdir()
            (out / "pipeline.yaml").write_text((work / rel).read_text())
            started = time.monotonic()
            result = streamfx("run", rel, "-q", cwd=work, timeout=RUN_TIMEOUT)
            took = time.monotonic() - started
            (out / "run.exit_code").write_text(f"{result.returncode}\n")
            (out / "run.summary").write_text(stable_summary(result.stdout))
            (out / "run.stderr").write_text(result.stderr)
            notes = save_outputs(config, work, out)
            for command in ("plan", "validate"):
                shown = streamfx(command, rel, cwd=work)
                (out / f"{command}.stdout").write_text(shown.stdout)
                (out / f"{command}.stderr").write_text(shown.stderr)
                (out / f"{command}.exit_code").write_text(f"{shown.returncode}\n")
            status = "ok" if result.returncode == 0 else f"exit {result.returncode}"
            print(f"  {name}: run {status} in {took:.0f} s" + "".join(f"; {n}" for n in notes))
            if result.returncode:
                print(result.stderr[-2000:], file=sys.stderr)

        spec = [
            {"name": c["name"], "table": (c["sinks"].get("postgres") or {}).get("table")}
            for _, c in pipelines
        ]
        helper("pgdump", str(PG_DIR), str(outdir.resolve()), json.dumps(spec), cwd=work)

        for name, args in {
            "plugins--features": ("plugins", "--features"),
            "help": ("--help",),
            "run--help": ("run", "--help"),
            "plan--help": ("plan", "--help"),
        }.items():
            shown = streamfx(*args, cwd=work)
            (outdir / f"{name}.stdout").write_text(shown.stdout)
            (outdir / f"{name}.exit_code").write_text(f"{shown.returncode}\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"same_output: dump in {outdir} ({time.monotonic() - began:.0f} s)")
    return 0


def seed(pg_dir: str, data: str) -> None:
    """Seed the real celle5 data into the embedded server as celle5_wide and celle5_long."""
    from streamfx.database import connect, start_embedded

    try:  # the module's home before and after the restructuring into subpackages
        from streamfx.datasets.aarslev import seed_aarslev
    except ImportError:
        from streamfx.source.datasets.aarslev import seed_aarslev

    conn = connect(start_embedded(Path(pg_dir)))
    try:
        for layout in CELLE5_LAYOUTS:
            seed_aarslev(conn, Path(data), table=f"celle5_{layout}", layout=layout)
    finally:
        conn.close()


def query(conn: Any, sql: str, *params: Any) -> Any:
    import polars as pl

    with conn.cursor() as cur:
        cur.execute(sql, parameters=params or None)
        frame = pl.from_arrow(cur.fetch_arrow_table())
    conn.commit()
    return frame


def pgdump(pg_dir: str, outdir: str, spec_json: str) -> None:
    """Each pipeline's features table (sorted, without run_id/extracted_at) and era-status rows
    (without timestamps and run_id), and the list of tables with their columns and row counts."""
    from streamfx.database import connect, quote_ident, start_embedded

    out = Path(outdir)
    conn = connect(start_embedded(Path(pg_dir)))
    try:
        for entry in json.loads(spec_json):
            if not entry["table"]:
                continue
            target = out / entry["name"]
            table = f"public.{quote_ident(entry['table'])}"
            query(
                conn,
                f"SELECT era_id, sensor, feature, value FROM {table} "
                "ORDER BY era_id, sensor, feature",
            ).write_parquet(target / "postgres_features.parquet")
            query(
                conn,
                "SELECT pipeline, features_table, era_id, fingerprint, status, attempts, error, "
                "worker FROM public.streamfx_era_status WHERE pipeline = $1 AND features_table = $2"
                " ORDER BY era_id",
                entry["name"],
                f"{quote_ident('public')}.{quote_ident(entry['table'])}",
            ).write_parquet(target / "era_status.parquet")
        columns = query(
            conn,
            "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, "
            "c.data_type::text AS data_type, c.is_nullable::text AS is_nullable "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_schema, table_name) WHERE c.table_schema = 'public' "
            "AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position",
        )
        tables: dict[str, Any] = {}
        for row in columns.iter_rows(named=True):
            entry = tables.setdefault(row["table_name"], {"columns": []})
            entry["columns"].append([row["column_name"], row["data_type"], row["is_nullable"]])
        for name, entry in tables.items():
            count = query(conn, f"SELECT count(*) AS n FROM public.{quote_ident(name)}")
            entry["rows"] = count["n"][0]
        write_json(out / "database_tables.json", tables)
    finally:
        conn.close()


# -- compare ----------------------------------------------------------------------------------


def _same_cells(a: Any, b: Any) -> Any:
    """Per-row equality of two polars Series: exact, NaN == NaN, null == null, null != NaN,
    0.0 != -0.0."""
    import numpy as np
    import polars as pl

    if a.dtype.is_float() and b.dtype.is_float():
        null_a, null_b = a.is_null().to_numpy(), b.is_null().to_numpy()
        x = a.cast(pl.Float64).fill_null(0.0).to_numpy()
        y = b.cast(pl.Float64).fill_null(0.0).to_numpy()
        with np.errstate(invalid="ignore"):
            values = (np.isnan(x) & np.isnan(y)) | ((x == y) & (np.signbit(x) == np.signbit(y)))
        return (null_a & null_b) | (~null_a & ~null_b & values)
    if a.dtype != b.dtype:
        return np.zeros(len(a), dtype=bool)
    return a.eq_missing(b).fill_null(False).to_numpy()


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str | float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compare_tables(path_a: Path, path_b: Path) -> str | None:
    import numpy as np
    import polars as pl

    a, b = pl.read_parquet(path_a), pl.read_parquet(path_b)
    problems = []
    only_a = [c for c in a.columns if c not in b.columns]
    only_b = [c for c in b.columns if c not in a.columns]
    if only_a:
        problems.append(f"{len(only_a)} column(s) only in A, e.g. {only_a[:3]}")
    if only_b:
        problems.append(f"{len(only_b)} column(s) only in B, e.g. {only_b[:3]}")
    common = [c for c in a.columns if c in b.columns]
    if [c for c in a.columns if c in common] != [c for c in b.columns if c in common]:
        problems.append("column order differs")
    types = [f"{c}: {a[c].dtype} vs {b[c].dtype}" for c in common if a[c].dtype != b[c].dtype]
    if types:
        problems.append(f"{len(types)} column type(s) differ, e.g. {types[0]}")
    keys = [c for c in KEY_COLUMNS if c in common]
    if a.height != b.height:
        problems.append(f"rows {a.height} vs {b.height}")
        if keys:
            ka, kb = a.select(keys).unique(), b.select(keys).unique()
            missing = ka.join(kb, on=keys, how="anti", nulls_equal=True)
            extra = kb.join(ka, on=keys, how="anti", nulls_equal=True)
            if missing.height:
                problems.append(f"{missing.height} key(s) only in A, e.g. {missing.row(0)}")
            if extra.height:
                problems.append(f"{extra.height} key(s) only in B, e.g. {extra.row(0)}")
        return "; ".join(problems)
    cells, columns, example = 0, 0, None
    for column in common:
        differ = ~_same_cells(a[column], b[column])
        n = int(differ.sum())
        if n:
            cells += n
            columns += 1
            if example is None:
                row = int(np.flatnonzero(differ)[0])
                named = [k for k in keys if k not in ("partition", "start")] or keys
                where = ", ".join(f"{k}={_show(a[k][row])}" for k in named) or f"row {row}"
                example = f"{column} at {where}: {_show(a[column][row])} vs {_show(b[column][row])}"
    if cells:
        problems.append(f"{cells} cell(s) differ in {columns} column(s), e.g. {example}")
    return "; ".join(problems) or None


def _json_diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in b:
                found.append(f"{path} only in A")
            elif key not in a:
                found.append(f"{path} only in B")
            else:
                found += _json_diff(a[key], b[key], path)
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where or 'top'}: {len(a)} vs {len(b)} items"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _json_diff(x, y, f"{where}[{i}]")
        ]
    same = a == b and type(a) is type(b)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        same = True
    return [] if same else [f"{where or 'top'}: {_show(a)} vs {_show(b)}"]


def compare_json(path_a: Path, path_b: Path) -> str | None:
    found = _json_diff(json.loads(path_a.read_text()), json.loads(path_b.read_text()))
    if not found:
        return None
    return f"{len(found)} difference(s): " + "; ".join(found[:3])


def compare_text(path_a: Path, path_b: Path) -> str | None:
    a, b = path_a.read_text(), path_b.read_text()
    if a == b:
        return None
    lines_a, lines_b = a.splitlines(), b.splitlines()
    changed = [
        line
        for line in difflib.unified_diff(lines_a, lines_b, "A", "B", n=0, lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    first = "; ".join(repr(line[:100]) for line in changed[:2]) or "whitespace only"
    return f"{len(lines_a)} vs {len(lines_b)} lines, {len(changed)} changed: {first}"


def compare(dir_a: Path, dir_b: Path) -> int:
    for folder in (dir_a, dir_b):
        if not folder.is_dir():
            sys.exit(f"same_output: {folder} is not a folder")
    files_a = {p.relative_to(dir_a) for p in dir_a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(dir_b) for p in dir_b.rglob("*") if p.is_file()}
    differing = 0
    for rel in sorted(files_a | files_b, key=lambda p: (len(p.parts) == 1, str(p))):
        group, artefact = (
            (rel.parts[0], "/".join(rel.parts[1:])) if len(rel.parts) > 1 else ("*", str(rel))
        )
        if rel not in files_b or rel not in files_a:
            problem: str | None = f"only in {'A' if rel in files_a else 'B'}"
        elif rel.suffix == ".parquet":
            problem = compare_tables(dir_a / rel, dir_b / rel)
        elif rel.suffix == ".json":
            problem = compare_json(dir_a / rel, dir_b / rel)
        else:
            problem = compare_text(dir_a / rel, dir_b / rel)
        differing += problem is not None
        print(f"{group:<18} {artefact:<28} {'same' if problem is None else 'DIFFERS: ' + problem}")
    total = len(files_a | files_b)
    if differing:
        print(f"same_output: {differing} of {total} artefacts differ")
        return 1
    print(f"same_output: all {total} artefacts identical")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{dump,compare}")
    p = commands.add_parser("dump", help="run the pipelines and save canonical outputs")
    p.add_argument("outdir", type=Path)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the aarslev-celle5 folder")
    p = commands.add_parser("compare", help="compare two dumps; exit 0 only if identical")
    p.add_argument("dir_a", type=Path)
    p.add_argument("dir_b", type=Path)
    p = commands.add_parser("seed")  # internal, run by dump in a child process
    p.add_argument("pg_dir")
    p.add_argument("data")
    p = commands.add_parser("pgdump")  # internal, run by dump in a child process
    p.add_argument("pg_dir")
    p.add_argument("outdir")
    p.add_argument("spec")
    args = parser.parse_args()
    if args.command == "dump":
        return dump(args.outdir, args.data)
    if args.command == "compare":
        return compare(args.dir_a, args.dir_b)
    if args.command == "seed":
        seed(args.pg_dir, args.data)
    else:
        pgdump(args.pg_dir, args.outdir, args.spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
