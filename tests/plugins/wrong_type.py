"""A plugin whose hook returns the wrong type."""

from streamfx import hookimpl


@hookimpl
def register_feature_calculators():
    return ["not a calculator"]
