"""Load balancing: spread eras over a lane's workers by estimated cost (LPT bin packing)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Packing:
    """Which items each worker gets, and the resulting loads."""

    bins: list[list[int]]  # item indexes per worker
    loads: list[float]


def imbalance(loads: Sequence[float]) -> float | None:
    """max / mean of ``loads``; None when there is no load to compare."""
    mean = sum(loads) / len(loads) if loads else 0.0
    return max(loads) / mean if mean > 0 else None


def lpt(costs: Sequence[float], workers: int) -> Packing:
    """Longest processing time first: biggest item to the least-loaded worker.

    Graham's bound: the makespan is at most 4/3 of the optimum (and so of
    max(largest item, total / workers) times 4/3).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    bins: list[list[int]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    heap = [(0.0, w) for w in range(workers)]
    for item in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, worker = heapq.heappop(heap)
        bins[worker].append(item)
        loads[worker] = load + costs[item]
        heapq.heappush(heap, (loads[worker], worker))
    return Packing(bins=bins, loads=loads)
