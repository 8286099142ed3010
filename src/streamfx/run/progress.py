"""What a run tells whoever shows its progress, phase by phase, and the terminal's bars for it.

A run goes through four phases: ``plan`` (open the source, list, select and analyse the eras),
``extract`` (the workers), ``write`` (the sinks' writer, alongside extraction and after it)
and ``compose`` (closing the sinks: the Parquet sink composes ``features.parquet``; then the
run report). ``extract`` and ``write`` count eras, ``compose`` sinks; ``plan`` counts nothing.
The writer's threads report too, so an implementation must be thread-safe (rich's is).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

#: The phases, in the order a run goes through them.
PHASES = ("plan", "extract", "write", "compose")
#: What each phase counts.
UNITS = {"extract": "eras", "write": "eras", "compose": "sinks"}


class RunProgress(Protocol):
    """Told by the run as it goes; every method may be called from the writer's threads."""

    def phase(self, name: str, total: int | None = None, note: str | None = None) -> None:
        """Phase ``name`` begins, counting to ``total``; called again, its note changes."""
        ...

    def advance(self, name: str, outcome: str = "") -> None:
        """One more unit of ``name`` is through; an ``outcome`` (done, failed, ...) is
        tallied beside the bar."""
        ...

    def end(self, name: str) -> None:
        """Phase ``name`` is over."""
        ...


class NoProgress:
    """Tells no one (the Python API, ``--quiet``)."""

    def phase(self, name: str, total: int | None = None, note: str | None = None) -> None:
        pass

    def advance(self, name: str, outcome: str = "") -> None:
        pass

    def end(self, name: str) -> None:
        pass


class _Rate(ProgressColumn):
    """``12/40 eras  3.1/s  ETA 0:00:09``: the rate since the phase began, not rich's recent
    speed, which batches landing at once would send to thousands; for eras only (two sinks
    have no rate), nothing for a phase that counts nothing (plan)."""

    def render(self, task: Task) -> Text:
        unit = task.fields["unit"]
        if not unit or task.total is None:
            return Text("")
        text = f"{task.completed:,.0f}/{task.total:,.0f} {unit}"
        elapsed = task.finished_time or task.elapsed
        if unit != "eras" or not elapsed or not task.completed:
            return Text(text)
        rate = task.completed / elapsed
        text += f"  {rate:.1f}/s"
        if task.completed < task.total:
            text += f"  ETA {dt.timedelta(seconds=round((task.total - task.completed) / rate))}"
        return Text(text)


class BarProgress:
    """A rich bar per phase on ``console``, each added when its phase begins and left on screen
    when it ends (its count, rate and time stay); disabled when ``console`` is no terminal
    (logs and pipes get the notices alone) or when ``quiet``."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.bars = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(bar_width=24),
            TimeElapsedColumn(),
            _Rate(),
            TextColumn("{task.fields[note]}"),
            console=console,
            disable=quiet or not console.is_terminal,
        )
        self._tasks: dict[str, int] = {}
        self._tallies: dict[str, dict[str, int]] = {}
        self._notes: dict[str, str] = {}

    def __enter__(self) -> BarProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def phase(self, name: str, total: int | None = None, note: str | None = None) -> None:
        if note is not None:
            self._notes[name] = note
        if name not in self._tasks:
            self._tallies[name] = {}
            self._tasks[name] = self.bars.add_task(
                name, total=total, unit=UNITS.get(name, ""), note=self._notes.get(name, "")
            )
            return
        self._show(name)

    def advance(self, name: str, outcome: str = "") -> None:
        if outcome:
            tally = self._tallies[name]
            tally[outcome] = tally.get(outcome, 0) + 1
        self.bars.advance(self._tasks[name])
        self._show(name)

    def end(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is None:
            return
        if name not in UNITS:  # counts nothing (plan): a full bar
            self.bars.update(task, total=1, completed=1)
        self._notes[name] = ""
        self._show(name)
        self.bars.stop_task(task)

    def _show(self, name: str) -> None:
        parts = [f"{n:,} {outcome}" for outcome, n in self._tallies[name].items()]
        note = self._notes.get(name, "")
        self.bars.update(self._tasks[name], note=", ".join([*parts, note] if note else parts))
