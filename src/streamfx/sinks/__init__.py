"""Sinks receive finished eras and store them; each ``write`` call lands whole or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..model import EraResult


@runtime_checkable
class Sink(Protocol):
    """Where finished eras go. The pipeline calls ``write`` with batches, then ``close`` once."""

    name: str

    def write(self, results: Sequence[EraResult]) -> int:
        """Store a batch of non-empty eras atomically; return the number of rows written."""
        ...

    def close(self) -> str:
        """Finish the run (compose final files, release connections); say where output is."""
        ...
