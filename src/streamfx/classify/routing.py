"""Routing: the lane each era goes to, and the rule that decided it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import StreamfxError
from .analysis import EraAnalysis
from .config import RoutingConfig
from .profiles import Lane


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
