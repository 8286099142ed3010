"""Era analysis: what the coordinator knows about each era before extracting it.

Every era is analysed from one aggregate query (``Source.era_stats``): readings per sensor,
unique timestamps, the share of GPU-suitable sensors, the complexity score, and an estimated
cost from the extractor's cost model, which packing balances workers on.

The complexity score is the reference coordinator's: the share of the era's sensors that the
rules (the profile's and the pipeline file's) give the efficient set or a richer one, whatever
set the others get by default or ``--features`` gives everyone. So routing does not change
with the default feature set; what the sensors actually get is ``efficient_share``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from ..extract.extractor import Costed, Costs, Extractor
from ..extract.extractors.native import NATIVE_COSTS
from ..model import Era
from .classifier import Classifier

#: Per-era seconds besides the series: reading it, rolling windows, assembling its features.
ERA_OVERHEAD_S = 0.1


def extractor_costs(extractor: Extractor) -> Costs:
    """The extractor's own cost model, or the native kernels' for one that states none."""
    return extractor.costs if isinstance(extractor, Costed) else NATIVE_COSTS


@dataclass(frozen=True)
class EraAnalysis:
    """What the coordinator knows about an era before extracting it."""

    era: Era
    readings_per_sensor: dict[str, int]
    gpu_suitable_ratio: float  # share of the era's sensors whose class prefers the GPU
    complexity_score: float  # share of the era's sensors the rules give efficient (or richer)
    efficient_share: float  # share of the era's sensors that get efficient (or richer)
    estimated_cost: float  # rough extraction seconds, used to balance workers

    @property
    def readings(self) -> int:
        return sum(self.readings_per_sensor.values())

    @property
    def sensors(self) -> int:
        return len(self.readings_per_sensor)


def _rich(features: str | None) -> bool:
    return features in ("efficient", "comprehensive")


def analyze_eras(
    eras: list[Era], stats: pl.DataFrame, classifier: Classifier, costs: Costs = NATIVE_COSTS
) -> list[EraAnalysis]:
    """Per-era analysis from ``Source.era_stats`` rows; eras without readings get zeros."""
    counts: list[dict[str, int]] = [{} for _ in eras]
    for era, sensor, readings in stats.select("era", "sensor", "readings").iter_rows():
        counts[era][sensor] = readings  # a row per (era, sensor): not per reading
    analyses = []
    for era, era_counts in zip(eras, counts, strict=True):
        classes = [classifier.sensor_class(s) for s in era_counts]
        n = len(classes) or 1
        cost = (ERA_OVERHEAD_S if era_counts else 0.0) + math.fsum(  # exact: any row order
            costs[c.features][0] + costs[c.features][1] * era_counts[s]
            for s, c in zip(era_counts, classes, strict=True)
        )
        analyses.append(
            EraAnalysis(
                era=era,
                readings_per_sensor=era_counts,
                gpu_suitable_ratio=sum(c.lane == "gpu" for c in classes) / n,
                complexity_score=sum(_rich(c.profile_features) for c in classes) / n,
                efficient_share=sum(_rich(c.features) for c in classes) / n,
                estimated_cost=cost,
            )
        )
    return analyses
