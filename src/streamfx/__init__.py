"""streamfx: per-era time-series features from PostgreSQL, on GPUs and CPUs, to Parquet and back."""

from __future__ import annotations

from .api import extract_features
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "extract_features", "hookimpl"]
