"""The classify stage's options (``stages.classify``): sensor rules, the profile, routing."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator

from ..errors import StreamfxError
from ..extract.feature_sets import FEATURE_SET_NAMES, FeatureSetName
from ..options import Section
from .profiles import Lane

#: Chooses every sensor's feature set, as the reference's FEATURE_SET did (--features wins).
FEATURE_SET_ENV = "STREAMFX_FEATURE_SET"


class SensorRuleConfig(Section):
    lane: Lane | None = None
    features: str | None = None
    calculators: dict[str, list[dict[str, Any]] | None] = Field(default_factory=dict)

    @field_validator("calculators", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """A list of names means each with its default parameters."""
        return dict.fromkeys(value) if isinstance(value, list) else value

    @field_validator("features")
    @classmethod
    def _features(cls, value: str | None) -> str | None:
        if value is not None and value not in FEATURE_SET_NAMES:
            raise ValueError(
                f"unknown feature set {value!r}; use one of {', '.join(FEATURE_SET_NAMES)}"
            )
        return value


class RoutingConfig(Section):
    """Which lane an era goes to. Defaults are the reference coordinator's thresholds."""

    policy: Literal["smart", "size"] = "smart"
    cpu_below_readings: int = Field(10_000, ge=0)
    gpu_above_readings: int = Field(500_000, ge=0)
    gpu_ratio_above: float = Field(0.6, ge=0, le=1)
    complexity_above: float = Field(0.5, ge=0, le=1)
    size_threshold: int = Field(100_000, ge=0)


class ClassifyConfig(Section):
    profile: str | None = "reference"
    default_features: FeatureSetName = "minimal"
    # every sensor's feature set, over default_features and every rule's; set by --features
    # or STREAMFX_FEATURE_SET (None: the rules and default_features decide)
    feature_set: FeatureSetName | None = None
    sensors: dict[str, SensorRuleConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()

    def with_feature_set(self, flag: str | None) -> ClassifyConfig:
        """These options with ``feature_set`` from ``--features``, else from
        STREAMFX_FEATURE_SET, else as the file says; a name that is no feature set is an error
        naming where it came from."""
        env = os.environ.get(FEATURE_SET_ENV, "").strip()
        name, where = (flag, "--features") if flag is not None else (env, FEATURE_SET_ENV)
        if not name:
            return self
        if name not in FEATURE_SET_NAMES:
            raise StreamfxError(
                f"{where}: unknown feature set {name!r} (use {', '.join(FEATURE_SET_NAMES)})"
            )
        return self.model_copy(update={"feature_set": name})
