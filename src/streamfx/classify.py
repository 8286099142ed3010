"""The classifier stage: each sensor's class (lane preference and feature set).

Rules from pipeline.yaml come first, then the selected sensor profile's (from a plugin or the
built-in ``reference`` profile). Era analysis and GPU/CPU routing extend this stage.
"""

from __future__ import annotations

from functools import cache

from .config import ClassifyConfig
from .errors import StreamfxError
from .extract import FCParameters, feature_set
from .plugins import sensor_profiles
from .profiles import SensorClass, SensorRule, classify_sensor


class Classifier:
    """Resolves sensors to classes and feature-set parameters, caching per sensor."""

    def __init__(self, config: ClassifyConfig) -> None:
        rules = [
            SensorRule(pattern=pattern, lane=rule.lane, features=rule.features)
            for pattern, rule in config.sensors.items()
        ]
        if config.profile is not None:
            profiles = sensor_profiles()
            if config.profile not in profiles:
                raise StreamfxError(
                    f"stages.classify.profile: unknown sensor profile {config.profile!r} "
                    f"(available: {', '.join(sorted(profiles)) or 'none'})"
                )
            rules += profiles[config.profile].rules
        self.rules = tuple(rules)
        self.default_features = config.default_features
        self.sensor_class = cache(self._sensor_class)

    def _sensor_class(self, sensor: str) -> SensorClass:
        return classify_sensor(sensor, self.rules, self.default_features)

    def fc_parameters(self, sensors: list[str]) -> dict[str, FCParameters]:
        """tsfresh-style calculators for each sensor, from its class's feature set."""
        return {s: _feature_set(self.sensor_class(s).features) for s in sensors}


@cache
def _feature_set(name: str) -> FCParameters:
    return feature_set(name)
