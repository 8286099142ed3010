"""The extract stage: readings of a pass in, long features out.

``era_features`` combines, for one pass of eras, the chosen extractor (``extractors/``: native,
gpu, tsfresh, or a plugin's), the plugin calculators (``plugin_calculators``) and the rolling
windows (``rolling``). ``calculators/`` holds streamfx's own kernels, ``feature_sets`` the
tsfresh feature sets by name, ``series`` the layout of readings as equal-length buckets.
"""

from .extractor import Costed, Device, Extractor, FeatureCalculator, MemoryBounded, Warmable
from .feature_sets import FEATURE_SET_NAMES, FCParameters, feature_set

__all__ = [
    "FEATURE_SET_NAMES",
    "Costed",
    "Device",
    "Extractor",
    "FCParameters",
    "FeatureCalculator",
    "MemoryBounded",
    "Warmable",
    "feature_set",
]
