"""A plugin whose import fails."""

import streamfx_nowhere_to_be_found  # noqa: F401
