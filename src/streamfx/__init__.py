"""streamfx: per-era time-series features from PostgreSQL, on GPUs and CPUs, to Parquet and back.

This namespace is the public API: tsfresh's functions for tsfresh users (``extract_features``,
``select_features``, ``extract_relevant_features``, ``roll_time_series``; the scikit-learn
transformers are in ``streamfx.transformers``; see docs/api.md), and everything a
plugin author needs (hooks, calculators, profiles, extractors, sinks and the records they
exchange), so that a plugin never reaches into streamfx's modules. See docs/plugins.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

#: Where each public name lives. A name's module is imported when the name is first used, so
#: that a command or a worker loads only what it needs: importing them all up front (NumPy,
#: polars, numba and the kernels, tsfresh's selection) made every ``streamfx`` command,
#: ``--version`` and ``--help`` included, take 1.5 s.
_EXPORTS = {
    "extract_features": "api",
    "REFERENCE_PROFILE": "classify.default_profiles",
    "SensorClass": "classify.profiles",
    "SensorProfile": "classify.profiles",
    "SensorRule": "classify.profiles",
    "DatabaseLost": "errors",
    "InvalidInput": "errors",
    "StreamfxError": "errors",
    "BlockExtractor": "extract.extractor",
    "Costed": "extract.extractor",
    "Extractor": "extract.extractor",
    "FeatureBlock": "extract.extractor",
    "FeatureCalculator": "extract.extractor",
    "MemoryBounded": "extract.extractor",
    "NativeExtractor": "extract.extractors.native",
    "TsfreshExtractor": "extract.extractors.tsfresh",
    "FCParameters": "extract.feature_sets",
    "feature_set": "extract.feature_sets",
    "FEATURES_SCHEMA": "model",
    "READINGS_SCHEMA": "model",
    "Era": "model",
    "EraResult": "model",
    "safe_names": "names",
    "hookimpl": "plugins.hookspecs",
    "BatchWriter": "sinks",
    "EraStatus": "sinks",
    "ReportFolder": "sinks",
    "ResumableSink": "sinks",
    "RunRecorder": "sinks",
    "Sink": "sinks",
    "SinkContext": "sinks",
    "SinkPlugin": "sinks",
    "StatusSink": "sinks",
    "WorkerWritable": "sinks",
    "roll_time_series": "roll",
    "select_features": "selection",
    "extract_relevant_features": "selection",
}

if TYPE_CHECKING:
    from .api import extract_features
    from .classify.default_profiles import REFERENCE_PROFILE
    from .classify.profiles import (
        SensorClass,
        SensorProfile,
        SensorRule,
    )
    from .errors import (
        DatabaseLost,
        InvalidInput,
        StreamfxError,
    )
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
    from .extract.feature_sets import (
        FCParameters,
        feature_set,
    )
    from .model import (
        FEATURES_SCHEMA,
        READINGS_SCHEMA,
        Era,
        EraResult,
    )
    from .names import safe_names
    from .plugins.hookspecs import hookimpl
    from .roll import roll_time_series
    from .selection import (
        extract_relevant_features,
        select_features,
    )
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamfx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
