"""Sensor classes: which lane each sensor suits, and which calculators it gets.

Classes come from rules: pipeline.yaml's first, then the selected sensor profile's (from a
plugin or the built-in ``reference`` profile, all through the ``register_sensor_profiles`` hook).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import cache

from ..errors import StreamfxError
from ..extract.feature_sets import FEATURE_SET_NAMES, FCParameters, feature_set
from ..plugins.manager import sensor_profiles
from .config import ClassifyConfig
from .profiles import SensorClass, SensorRule, classify_sensor


class Classifier:
    """Resolves sensors to classes and feature-set parameters, caching per sensor."""

    def __init__(self, config: ClassifyConfig) -> None:
        rules = [
            SensorRule(pattern, rule.lane, rule.features, dict(rule.calculators))
            for pattern, rule in config.sensors.items()
        ]
        self.profile = config.profile
        self.profile_rules: tuple[SensorRule, ...] = ()  # the profile's alone
        if config.profile is not None:
            profiles = sensor_profiles()
            if config.profile not in profiles:
                raise StreamfxError(
                    f"stages.classify.profile: unknown sensor profile {config.profile!r} "
                    f"(available: {', '.join(sorted(profiles)) or 'none'})"
                )
            profile = profiles[config.profile]
            for rule in profile.rules:
                if rule.features is not None and rule.features not in FEATURE_SET_NAMES:
                    raise StreamfxError(
                        f"sensor profile {profile.name!r}, rule {rule.pattern!r}: unknown feature "
                        f"set {rule.features!r} (use minimal, efficient or comprehensive)"
                    )
                if rule.lane not in (None, "gpu", "cpu"):
                    raise StreamfxError(
                        f"sensor profile {profile.name!r}, rule {rule.pattern!r}: lane must be "
                        f"gpu or cpu (got {rule.lane!r})"
                    )
            self.profile_rules = profile.rules
            rules += profile.rules
        self.rules = tuple(rules)
        self.default_features = config.default_features
        self.feature_set = config.feature_set
        self.sensor_class = cache(self._sensor_class)
        self._settings = cache(self._sensor_settings)

    def _sensor_class(self, sensor: str) -> SensorClass:
        found = classify_sensor(sensor, self.rules, self.default_features)
        if self.feature_set is None:
            return found
        return dataclasses.replace(found, features=self.feature_set)

    def profile_notice(self, sensors: Iterable[str]) -> str | None:
        """One line when the profile's rules match none of ``sensors`` (their lanes and
        feature sets then come from the YAML rules and the defaults alone); else None."""
        sensors = sorted(set(sensors))
        if self.profile is None or not sensors:
            return None
        if any(rule.matches(s) for rule in self.profile_rules for s in sensors):
            return None
        shown = ", ".join(sensors[:5]) + (", ..." if len(sensors) > 5 else "")
        return (
            f"sensor profile {self.profile!r} (stages.classify.profile) matches none of the "
            f"{len(sensors)} sensors ({shown}): its rules give them no lane and no feature set"
        )

    def fc_parameters(self, sensors: list[str]) -> dict[str, FCParameters]:
        """Calculators for each sensor: its class's feature set plus its rules' extras (one
        dict per sensor, the same on every call: treat it as read-only)."""
        return {sensor: self._settings(sensor) for sensor in sensors}

    def _sensor_settings(self, sensor: str) -> FCParameters:
        cls = self.sensor_class(sensor)
        return {**_feature_set(cls.features), **dict(cls.calculators)}

    def rolling_sensors(self, sensors: list[str]) -> list[str]:
        """The sensors that get rolling-window features: the GPU-suitable ones."""
        return [s for s in sensors if self.sensor_class(s).lane == "gpu"]


@cache
def _feature_set(name: str) -> FCParameters:
    return feature_set(name)
