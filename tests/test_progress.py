"""The run's progress bars: a bar per phase with its count, rate and ETA, tallies beside it;
nothing at all when quiet or when stderr is no terminal (a log gets the notices alone)."""

from __future__ import annotations

import io
import time

from rich.console import Console

from streamfx.run.progress import BarProgress


def shown(progress: BarProgress) -> dict[str, str]:
    """Each phase's line as the terminal shows it now."""
    console = Console(file=io.StringIO(), width=150, record=True)
    console.print(progress.bars.make_tasks_table(progress.bars.tasks))
    lines = console.export_text().splitlines()
    return {line.split()[0]: line for line in lines if line.strip()}


def test_each_phase_shows_its_count_rate_and_eta() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=150)
    with BarProgress(terminal) as progress:
        progress.phase("plan", note="analysing and routing 5 eras")
        assert "analysing and routing 5 eras" in shown(progress)["plan"]
        progress.end("plan")
        progress.phase("extract", 4, note="1 without readings")
        progress.phase("write", 4)
        time.sleep(0.05)
        for outcome in ("done", "done", "failed"):
            progress.advance("extract", outcome)
        progress.advance("write", "written")
        lines = shown(progress)
        assert "/" not in lines["plan"] and "analysing" not in lines["plan"]
        extract = lines["extract"]
        assert "3/4 eras" in extract and "/s" in extract and "ETA 0:00:0" in extract
        assert "2 done, 1 failed, 1 without readings" in extract
        assert "1/4 eras" in lines["write"] and "1 written" in lines["write"]
        progress.advance("extract", "done")
        progress.end("extract")
        progress.phase("compose", 2, note="closing parquet")
        lines = shown(progress)
        assert "4/4 eras" in lines["extract"] and "ETA" not in lines["extract"]
        assert "0/2 sinks" in lines["compose"] and "/s" not in lines["compose"]
        assert "closing parquet" in lines["compose"]


def test_quiet_and_no_terminal_print_nothing() -> None:
    for console, quiet in (
        (Console(file=io.StringIO(), force_terminal=True), True),
        (Console(file=io.StringIO(), force_terminal=False), False),
    ):
        with BarProgress(console, quiet=quiet) as progress:
            progress.phase("extract", 2)
            progress.advance("extract", "done")
            progress.end("extract")
        assert console.file.getvalue() == ""


def test_composing_shows_its_eras_rate_and_eta() -> None:
    """While a sink that reports its close composes, the compose phase's note counts eras."""
    from streamfx.run.pipeline import _close_note
    from streamfx.run.progress import NoProgress

    notes: list[str | None] = []

    class Notes(NoProgress):
        def phase(self, name: str, total: int | None = None, note: str | None = None) -> None:
            notes.append(note)

    report = _close_note(Notes(), "parquet")
    time.sleep(0.02)
    report(1, 4)
    report(4, 4)
    assert notes[0] is not None and notes[0].startswith("closing parquet: 1/4 eras")
    assert "/s  ETA 0:00:0" in notes[0]
    assert notes[1] == "closing parquet: 4/4 eras"
