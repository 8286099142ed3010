"""The extract stage: readings of a pass in, long features out.

``era_features`` combines, for one pass of eras, the chosen extractor (``extractors/``: native,
gpu, tsfresh, or a plugin's), the plugin calculators (``plugin_calculators``) and the rolling
windows (``rolling``). ``calculators/`` holds streamfx's own kernels, ``feature_sets`` the
tsfresh feature sets by name, ``series`` the layout of readings as equal-length buckets.

Nothing is imported here: the stage's options (``config``, ``feature_sets``) load without
polars and the kernels. The public names are ``streamfx``'s.
"""
