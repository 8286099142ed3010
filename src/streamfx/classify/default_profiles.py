"""The built-in ``reference`` sensor profile: the sensor lists of the system streamfx replaces.

It registers through the ``register_sensor_profiles`` hook, exactly as a plugin's profile does
(see ``plugins.manager.DEFAULT_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..plugins.hookspecs import hookimpl
from .profiles import Lane, SensorProfile, SensorRule


def _rules(lane: Lane | None, features: str | None, sensors: Sequence[str]) -> list[SensorRule]:
    return [SensorRule(pattern=s, lane=lane, features=features) for s in sensors]


#: Sensor lists of the system streamfx replaces (see the reference document).
REFERENCE_GPU_SENSORS = (
    "air_temp_c",
    "relative_humidity_percent",
    "light_intensity_umol",
    "radiation_w_m2",
    "co2_measured_ppm",
    "pipe_temp_1_c",
    "flow_temp_1_c",
    "outside_temp_c",
)
REFERENCE_CPU_SENSORS = (
    "rain_status",
    "co2_status",
    "co2_dosing_status",
    "spot_price_dkk_mwh",
    "vent_*",
)
REFERENCE_EFFICIENT_SENSORS = (
    "air_temp_c",
    "relative_humidity_percent",
    "co2_measured_ppm",
    "light_intensity_umol",
    "radiation_w_m2",
    "dli_sum",
    "par_synth_umol",
)

REFERENCE_PROFILE = SensorProfile(
    name="reference",
    description="GPU-, CPU- and efficient-profile sensor lists of the system streamfx replaces",
    rules=tuple(
        _rules(None, "efficient", REFERENCE_EFFICIENT_SENSORS)
        + _rules("gpu", None, REFERENCE_GPU_SENSORS)
        + _rules("cpu", None, REFERENCE_CPU_SENSORS)
    ),
)


@hookimpl
def register_sensor_profiles() -> list[SensorProfile]:
    return [REFERENCE_PROFILE]
