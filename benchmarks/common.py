"""Helpers the benchmark scripts share: machine description, Markdown tables, RESULTS.md sections.

Imported as ``from common import ...`` by the scripts beside it (run as ``python benchmarks/x.py``,
so this folder is on ``sys.path``). Kept light: streamfx and psutil are imported where used, so
``--help`` and the early exits of the scripts stay fast.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
DATA = HERE.parent.parent / "shared/data/aarslev-celle5"  # beside the repository
MIB = 1024 * 1024
RTOL, ATOL = 1e-6, 1e-9  # parity tolerances, as math.isclose
NOT_NUMBERS = ("", "-", "skipped")  # cells that do not decide a column's alignment


def machine() -> str:
    """Cores (usable / logical), RAM, CPU model and Python of this machine."""
    import psutil

    from streamfx.classify.plan import available_cores

    ram = psutil.virtual_memory().total / 1024**3
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        model = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    return (
        f"{available_cores()} usable cores ({psutil.cpu_count()} logical), {ram:.1f} GiB RAM, "
        f"{model}, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def timestamp() -> str:
    """Local date and time with zone, for the ``- Date:`` line of a section."""
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def command_line(script: str) -> str:
    """How this run was started, as ``python benchmarks/<script> <arguments>``."""
    return shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]])


def add_output_options(parser: argparse.ArgumentParser, *, keep: bool) -> None:
    """``--no-write`` (for ``publish``) and, with ``keep``, ``--keep`` (for ``work_dir``)."""
    parser.add_argument(
        "--no-write", action="store_true", help="only print; leave benchmarks/RESULTS.md alone"
    )
    if keep:
        parser.add_argument("--keep", action="store_true", help="keep the temporary directory")


def work_dir(prefix: str, keep: bool) -> Path:
    """A fresh temporary directory, printed, removed at exit unless ``keep``.

    Call it before starting anything that registers its own ``atexit`` cleanup (an embedded
    server): atexit runs last-in first-out, so that stops first and the directory goes last.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"work dir {work}", flush=True)
    if not keep:
        atexit.register(shutil.rmtree, work, True)
    return work


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; columns that start with digits are right-aligned."""
    columns = zip(*rows, strict=True) if rows else iter(())
    numbers = [[c for c in col if c not in NOT_NUMBERS] for col in columns]
    align = ["---:" if col and all(c[:1].isdigit() for c in col) else "---" for col in numbers]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def speedup(reference: float | None, seconds: float | None) -> str:
    """``reference / seconds`` as ``12.3×``, or ``-`` when either is unknown."""
    if reference is None or seconds is None or seconds <= 0:
        return "-"
    return f"{reference / seconds:.1f}×"


def write_section(text: str, heading: str, path: Path = RESULTS) -> None:
    """Put ``text`` into ``path`` in place of the ``heading`` section (or at the end).

    The section runs from the line equal to ``heading`` to the next ``## `` line; the rest of
    the file is kept as it is.
    """
    if not path.exists():
        path.write_text(f"# Benchmark results\n\n{text}")
        return
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        existing = "".join(lines).rstrip("\n")
        path.write_text(f"{existing}\n\n{text}")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + text + ("\n" + after if after else ""))


def publish(text: str, heading: str, *, write: bool, note: str = "") -> None:
    """Print the section (then ``note``); if ``write``, put it into RESULTS.md and say so."""
    print()
    print(text)
    if note:
        print(note)
    if write:
        write_section(text, heading)
        print(f"wrote {RESULTS.relative_to(HERE.parent)}")
