"""The hooks a streamfx plugin can implement.

Plugins are modules or packages exposing functions decorated with ``streamfx.hookimpl``,
registered through the ``streamfx`` entry-point group. The built-in extractors, sinks and the
reference sensor profile register through these same hooks (see ``manager.DEFAULT_PLUGINS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ..classify.profiles import SensorProfile
    from ..extract.extractor import Extractor, FeatureCalculator
    from ..sinks import SinkPlugin

hookspec = pluggy.HookspecMarker("streamfx")
hookimpl = pluggy.HookimplMarker("streamfx")


@hookspec
def register_extractors() -> list[Extractor]:
    """Return extractors (objects following ``streamfx.Extractor``) this plugin provides.

    The pipeline picks one by its ``name`` (``stages.extract.extractor`` in pipeline.yaml).
    """


@hookspec
def register_sensor_profiles() -> list[SensorProfile]:
    """Return named sensor profiles: which sensors suit which lane and feature set.

    The pipeline uses the one named in ``stages.classify.profile``; rules in the YAML file
    take precedence over the profile's.
    """


@hookspec
def register_feature_calculators() -> list[FeatureCalculator]:
    """Return feature calculators (``streamfx.FeatureCalculator``) this plugin provides.

    Their names become usable in any feature set: in pipeline.yaml sensor rules
    (``calculators:``) and in ``streamfx.extract_features`` settings dicts.
    """


@hookspec
def register_sinks() -> list[SinkPlugin]:
    """Return sink types (``streamfx.SinkPlugin``) this plugin provides.

    A sink named ``x`` is configured under ``sinks: {x: {...options}}`` in pipeline.yaml.
    """
