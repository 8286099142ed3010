"""The extractor interface and the feature sets every extractor understands.

An extractor turns long readings (``model.READINGS_SCHEMA``, any number of eras) into long
features (``model.FEATURES_SCHEMA``), computing for each sensor the tsfresh-style calculators
of its feature set. Extractors register through the ``register_extractors`` hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from .errors import StreamfxError

#: tsfresh's settings format: calculator name -> list of parameter dicts, or None when it takes none.
FCParameters = Mapping[str, list[dict[str, Any]] | None]


@runtime_checkable
class Extractor(Protocol):
    """Computes features for every (era, sensor) series in a batch of readings."""

    name: str
    description: str

    def extract(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> pa.Table:
        """Return FEATURES_SCHEMA rows for ``readings`` (READINGS_SCHEMA).

        ``fc_parameters`` maps each sensor to its calculators; sensors absent from it are
        skipped. ``n_jobs`` is the extractor's own parallelism (0 = in this process).
        """
        ...


def feature_set(spec: str | FCParameters) -> dict[str, list[dict[str, Any]] | None]:
    """Resolve a feature-set name (minimal, efficient, comprehensive) or a tsfresh dict."""
    from tsfresh.feature_extraction import settings

    if not isinstance(spec, str):
        return dict(spec)
    sets = {
        "minimal": settings.MinimalFCParameters,
        "efficient": settings.EfficientFCParameters,
        "comprehensive": settings.ComprehensiveFCParameters,
    }
    if spec not in sets:
        raise StreamfxError(
            f"unknown feature set {spec!r}: expected one of {', '.join(sets)} or a dict of calculators"
        )
    return dict(sets[spec]())
