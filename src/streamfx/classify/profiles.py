"""Sensor profiles: which sensors suit the GPU or CPU lane, and which feature set each gets.

A profile is an ordered list of rules whose patterns are shell-style (``*_temp_c``). For each
sensor the first rule that sets an attribute wins. Rules from pipeline.yaml are consulted
before the profile's, so the YAML file always has the last word. A sensor no rule names gets
the pipeline's default feature set (``minimal``) and no lane preference.

Profiles come from plugins through the ``register_sensor_profiles`` hook; the built-in
``reference`` profile (``default_profiles``) registers through it like any other.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Lane = Literal["gpu", "cpu"]


@dataclass(frozen=True)
class SensorRule:
    """Attributes for every sensor whose name matches ``pattern``; None leaves it to later rules."""

    pattern: str
    lane: Lane | None = None
    features: str | None = None
    #: extra calculators (a plugin's or tsfresh's) -> parameter sets (None: the defaults)
    calculators: Mapping[str, list[dict[str, Any]] | None] = field(default_factory=dict)

    def matches(self, sensor: str) -> bool:
        return fnmatch.fnmatchcase(sensor, self.pattern)


@dataclass(frozen=True)
class SensorProfile:
    """A named, ordered set of sensor rules, contributed by a plugin or the core."""

    name: str
    rules: tuple[SensorRule, ...]
    description: str = ""


@dataclass(frozen=True)
class SensorClass:
    """The resolved class of one sensor: its lane preference and its feature set."""

    lane: Lane | None
    features: str
    calculators: tuple[tuple[str, Any], ...] = ()  # (name, parameter sets) from every match
    #: the feature set the rules give (None: no rule does, ``features`` is the default): the
    #: reference's complexity counts the sensors its efficient profile names, whatever is run
    profile_features: str | None = None


def classify_sensor(
    sensor: str, rules: Iterable[SensorRule], default_features: str = "minimal"
) -> SensorClass:
    """Resolve one sensor against rules in precedence order (first match per attribute wins;
    extra calculators accumulate over all matching rules)."""
    lane: Lane | None = None
    features: str | None = None
    calculators: dict[str, Any] = {}
    for rule in rules:
        if not rule.matches(sensor):
            continue
        lane = lane or rule.lane
        features = features or rule.features
        for name, params in rule.calculators.items():
            calculators.setdefault(name, params)  # earlier rules (the YAML file's) win
    return SensorClass(
        lane=lane,
        features=features or default_features,
        calculators=tuple(calculators.items()),
        profile_features=features,
    )


def profile_conflicts(profiles: Iterable[SensorProfile]) -> list[tuple[str, str, str]]:
    """Patterns that two profiles class differently: (pattern, attribute, "a: x; b: y")."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for profile in profiles:
        for attribute in ("lane", "features"):
            first: dict[str, str] = {}
            for rule in profile.rules:  # within a profile the first rule per pattern counts
                value = getattr(rule, attribute)
                if value is not None:
                    first.setdefault(rule.pattern, value)
            for pattern, value in first.items():
                seen.setdefault((pattern, attribute), {})[profile.name] = value
    return [
        (pattern, attribute, "; ".join(f"{p}: {v}" for p, v in sorted(by_profile.items())))
        for (pattern, attribute), by_profile in sorted(seen.items())
        if len(set(by_profile.values())) > 1
    ]
