"""The classifier stage: sensor classes, era analysis, and routing eras to the GPU or CPU lane.

Sensor classes come from rules: pipeline.yaml's first, then the selected sensor profile's (from
a plugin or the built-in ``reference`` profile). Every era is analysed from one aggregate query
(see ``Source.era_stats``) and routed by a policy; each decision records the rule that fired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import polars as pl

from .config import ClassifyConfig, RoutingConfig
from .errors import StreamfxError
from .extract import FCParameters, feature_set
from .model import Era
from .plugins import sensor_profiles
from .profiles import Lane, SensorClass, SensorRule, classify_sensor

#: Rough extraction seconds per series (fixed, per reading) by engine and feature set, on one
#: core: tsfresh pays a large overhead per series; streamfx's native kernels run batched
#: (measured with NativeExtractor on random walks of 144 and 1,152 readings). Comprehensive
#: falls back to tsfresh for the calculators native lacks, so it keeps tsfresh's figures.
COST_MODEL = {
    "tsfresh": {"minimal": (0.005, 2e-6), "efficient": (0.15, 1e-4), "comprehensive": (0.6, 1e-3)},
    "native": {"minimal": (7e-5, 2e-7), "efficient": (4e-4, 3.5e-6), "comprehensive": (0.6, 1e-3)},
}
#: Per-era seconds besides the series: reading it, rolling windows, assembling its features.
ERA_OVERHEAD_S = 0.1


def cost_engine(extractor: str) -> str:
    """Whose costs an extractor has: tsfresh's, or the native kernels' (gpu runs them too; a
    plugin's are unknown, and packing only needs the ratios between eras)."""
    return "tsfresh" if extractor == "tsfresh" else "native"


BYTES_PER_READING = 8 + 8 + 8  # time, value and a share of sensor/era labels in Arrow


class Classifier:
    """Resolves sensors to classes and feature-set parameters, caching per sensor."""

    def __init__(self, config: ClassifyConfig) -> None:
        rules = [
            SensorRule(pattern, rule.lane, rule.features, dict(rule.calculators))
            for pattern, rule in config.sensors.items()
        ]
        if config.profile is not None:
            profiles = sensor_profiles()
            if config.profile not in profiles:
                raise StreamfxError(
                    f"stages.classify.profile: unknown sensor profile {config.profile!r} "
                    f"(available: {', '.join(sorted(profiles)) or 'none'})"
                )
            profile = profiles[config.profile]
            for rule in profile.rules:
                if rule.features is not None and rule.features not in COST_MODEL["native"]:
                    raise StreamfxError(
                        f"sensor profile {profile.name!r}, rule {rule.pattern!r}: unknown feature "
                        f"set {rule.features!r} (use minimal, efficient or comprehensive)"
                    )
                if rule.lane not in (None, "gpu", "cpu"):
                    raise StreamfxError(
                        f"sensor profile {profile.name!r}, rule {rule.pattern!r}: lane must be "
                        f"gpu or cpu (got {rule.lane!r})"
                    )
            rules += profile.rules
        self.rules = tuple(rules)
        self.default_features = config.default_features
        self.sensor_class = cache(self._sensor_class)

    def _sensor_class(self, sensor: str) -> SensorClass:
        return classify_sensor(sensor, self.rules, self.default_features)

    def fc_parameters(self, sensors: list[str]) -> dict[str, FCParameters]:
        """Calculators for each sensor: its class's feature set plus its rules' extras."""
        settings = {}
        for sensor in sensors:
            cls = self.sensor_class(sensor)
            settings[sensor] = {**_feature_set(cls.features), **dict(cls.calculators)}
        return settings


@cache
def _feature_set(name: str) -> FCParameters:
    return feature_set(name)


@dataclass(frozen=True)
class EraAnalysis:
    """What the coordinator knows about an era before extracting it."""

    era: Era
    readings_per_sensor: dict[str, int]
    unique_timestamps: int
    sampling_interval_s: float | None
    gpu_suitable_ratio: float  # share of the era's sensors whose class prefers the GPU
    complexity_score: float  # share of the era's sensors with the efficient profile (or richer)
    estimated_cost: float  # rough extraction seconds, used to balance workers
    estimated_bytes: int

    @property
    def readings(self) -> int:
        return sum(self.readings_per_sensor.values())

    @property
    def sensors(self) -> int:
        return len(self.readings_per_sensor)


def analyze_eras(
    eras: list[Era], stats: pl.DataFrame, classifier: Classifier, extractor: str = "native"
) -> list[EraAnalysis]:
    """Per-era analysis from ``Source.era_stats`` rows; eras without readings get zeros."""
    costs = COST_MODEL[cost_engine(extractor)]
    by_era: dict[str, list[dict]] = {}
    for row in stats.iter_rows(named=True):  # one row per (era, sensor): small
        by_era.setdefault(row["era_id"], []).append(row)
    analyses = []
    for era in eras:
        rows = by_era.get(era.id, [])
        counts = {row["sensor"]: row["readings"] for row in rows}
        classes = [classifier.sensor_class(s) for s in counts]
        unique = rows[0]["unique_timestamps"] if rows else 0
        interval = None
        if rows and unique > 1:
            interval = (rows[0]["last"] - rows[0]["first"]).total_seconds() / (unique - 1)
        n = len(classes) or 1
        cost = (ERA_OVERHEAD_S if counts else 0.0) + sum(
            costs[c.features][0] + costs[c.features][1] * counts[s]
            for s, c in zip(counts, classes, strict=True)
        )
        analyses.append(
            EraAnalysis(
                era=era,
                readings_per_sensor=counts,
                unique_timestamps=unique,
                sampling_interval_s=interval,
                gpu_suitable_ratio=sum(c.lane == "gpu" for c in classes) / n,
                complexity_score=sum(c.features != "minimal" for c in classes) / n,
                estimated_cost=cost,
                estimated_bytes=sum(counts.values()) * BYTES_PER_READING,
            )
        )
    return analyses


@dataclass(frozen=True)
class Route:
    """Where an era goes and the rule that decided it (lane None: skipped, no readings)."""

    lane: Lane | None
    rule: str


def routing_policy(config: RoutingConfig) -> str:
    """The policy in effect: USE_SMART_DISTRIBUTION=true|false overrides the YAML file."""
    env = os.environ.get("USE_SMART_DISTRIBUTION")
    if env is None or env.strip() == "":
        return config.policy
    value = env.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise StreamfxError(f"USE_SMART_DISTRIBUTION must be true or false (got {env!r})")
    return "smart" if value in ("true", "1", "yes") else "size"


def route(analysis: EraAnalysis, config: RoutingConfig, policy: str) -> Route:
    """The reference coordinator's decision list (smart) or a single readings threshold (size)."""
    n = analysis.readings
    if n == 0:
        return Route(None, "no readings: skipped")
    if policy == "size":
        if n >= config.size_threshold:
            return Route("gpu", f"size: readings {n:,} >= {config.size_threshold:,}")
        return Route("cpu", f"size: readings {n:,} < {config.size_threshold:,}")
    if n < config.cpu_below_readings:
        return Route("cpu", f"readings {n:,} < {config.cpu_below_readings:,}")
    if n > config.gpu_above_readings:
        return Route("gpu", f"readings {n:,} > {config.gpu_above_readings:,}")
    ratio, complexity = analysis.gpu_suitable_ratio, analysis.complexity_score
    if ratio > config.gpu_ratio_above:
        return Route("gpu", f"gpu_suitable_ratio {ratio:.2f} > {config.gpu_ratio_above}")
    if complexity > config.complexity_above:
        return Route("gpu", f"complexity_score {complexity:.2f} > {config.complexity_above}")
    return Route(
        "cpu",
        f"default (ratio {ratio:.2f} <= {config.gpu_ratio_above}, "
        f"complexity {complexity:.2f} <= {config.complexity_above})",
    )
