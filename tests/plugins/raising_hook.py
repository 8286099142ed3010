"""A plugin whose hook raises."""

from streamfx import hookimpl


@hookimpl
def register_sensor_profiles():
    raise RuntimeError("profile database offline")
