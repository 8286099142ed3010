"""streamfx: per-era time-series features from PostgreSQL, on GPUs and CPUs, to Parquet and back.

This namespace is the public API: tsfresh's functions for tsfresh users (``extract_features``,
``select_features``, ``extract_relevant_features``, ``roll_time_series``; the scikit-learn
transformers are in ``streamfx.transformers``; see docs/api.md), and everything a
plugin author needs (hooks, calculators, profiles, extractors, sinks and the records they
exchange), so that a plugin never reaches into streamfx's modules. See docs/plugins.md.
"""

from __future__ import annotations

from typing import Any

from .api import extract_features
from .classify.default_profiles import REFERENCE_PROFILE
from .classify.profiles import SensorClass, SensorProfile, SensorRule
from .errors import DatabaseLost, InvalidInput, StreamfxError
from .extract.extractor import (
    BlockExtractor,
    Costed,
    Extractor,
    FeatureBlock,
    FeatureCalculator,
    MemoryBounded,
)
from .extract.extractors.native import NativeExtractor
from .extract.extractors.tsfresh import TsfreshExtractor
from .extract.feature_sets import FCParameters, feature_set
from .model import FEATURES_SCHEMA, READINGS_SCHEMA, Era, EraResult
from .names import safe_names
from .plugins.hookspecs import hookimpl
from .sinks import (
    BatchWriter,
    EraStatus,
    ReportFolder,
    ResumableSink,
    RunRecorder,
    Sink,
    SinkContext,
    SinkPlugin,
    StatusSink,
    WorkerWritable,
)
from .version import __version__

#: Loaded when first used: they import tsfresh's selection (and with it stumpy, SciPy's
#: statistics, scikit-learn), seconds that every command and worker process would pay.
_LAZY = {
    "roll_time_series": "roll",
    "select_features": "selection",
    "extract_relevant_features": "selection",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamfx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "FEATURES_SCHEMA",
    "READINGS_SCHEMA",
    "REFERENCE_PROFILE",
    "BatchWriter",
    "BlockExtractor",
    "Costed",
    "DatabaseLost",
    "Era",
    "EraResult",
    "EraStatus",
    "Extractor",
    "FCParameters",
    "FeatureBlock",
    "FeatureCalculator",
    "InvalidInput",
    "MemoryBounded",
    "NativeExtractor",
    "ReportFolder",
    "ResumableSink",
    "RunRecorder",
    "SensorClass",
    "SensorProfile",
    "SensorRule",
    "Sink",
    "SinkContext",
    "SinkPlugin",
    "StatusSink",
    "StreamfxError",
    "TsfreshExtractor",
    "WorkerWritable",
    "__version__",
    "extract_features",
    "extract_relevant_features",
    "feature_set",
    "hookimpl",
    "roll_time_series",
    "safe_names",
    "select_features",
]
