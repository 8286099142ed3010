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
    """Where an era goes and the rule that decided it (lane None: skipped, no readings).

    ``rule`` says it with the era's own figures; ``condition`` is the rule alone, the same for
    every era it decided (what `streamfx plan` counts eras by)."""

    lane: Lane | None
    rule: str
    condition: str


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
        return Route(None, "no readings: skipped", "no readings: skipped")
    if policy == "size":
        if n >= config.size_threshold:
            above = f">= {config.size_threshold:,}"
            return Route("gpu", f"size: readings {n:,} {above}", f"size: readings {above}")
        below = f"< {config.size_threshold:,}"
        return Route("cpu", f"size: readings {n:,} {below}", f"size: readings {below}")
    if n < config.cpu_below_readings:
        below = f"< {config.cpu_below_readings:,}"
        return Route("cpu", f"readings {n:,} {below}", f"readings {below}")
    if n > config.gpu_above_readings:
        above = f"> {config.gpu_above_readings:,}"
        return Route("gpu", f"readings {n:,} {above}", f"readings {above}")
    ratio, complexity = analysis.gpu_suitable_ratio, analysis.complexity_score
    if ratio > config.gpu_ratio_above:
        above = f"> {config.gpu_ratio_above}"
        return Route(
            "gpu", f"gpu_suitable_ratio {ratio:.2f} {above}", f"gpu_suitable_ratio {above}"
        )
    if complexity > config.complexity_above:
        above = f"> {config.complexity_above}"
        return Route(
            "gpu", f"complexity_score {complexity:.2f} {above}", f"complexity_score {above}"
        )
    return Route(
        "cpu",
        f"default (ratio {ratio:.2f} <= {config.gpu_ratio_above}, "
        f"complexity {complexity:.2f} <= {config.complexity_above})",
        "default",
    )
