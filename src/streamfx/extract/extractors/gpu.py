"""The ``gpu`` extractor: the native calculators on a CUDA device through CuPy.

The era's values go from Arrow to device memory without a host-side copy (through cuDF when it
is installed, else CuPy from the Arrow buffer's NumPy view), and the same array-API kernels as
the CPU run on CuPy. The device memory pool is capped (``executor.gpu_memory_limit_gb``,
default 30 GB as in the reference, at most the device's memory) and released after every batch;
a batch that does not fit runs on the CPU instead, with a warning, never a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import StreamfxError
from ...plugins.hookspecs import hookimpl
from ..extractor import Device, FeatureBlock
from ..feature_sets import FCParameters
from .native import NativeExtractor

log = logging.getLogger(__name__)
DEFAULT_MEMORY_LIMIT_GB = 30.0


@cache
def gpu_devices() -> int:
    """Number of usable CUDA devices; 0 when CuPy/cuDF are missing or no device answers."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        pass
    try:
        import cudf  # noqa: F401
        import rmm  # cuDF's memory manager knows the devices

        return int(rmm._cuda.gpu.getDeviceCount())
    except Exception:
        return 0


class GpuExtractor(NativeExtractor):
    """NativeExtractor with CuPy as the array module and a bounded device memory pool."""

    name = "gpu"
    description = "streamfx's calculators on a CUDA GPU (CuPy; cuDF optional); needs the gpu extra"
    device: Device = "gpu"

    def __init__(self, memory_limit_gb: float = DEFAULT_MEMORY_LIMIT_GB) -> None:
        self.memory_limit_gb = memory_limit_gb
        self._ready = False

    def with_memory_limit(self, gigabytes: float) -> GpuExtractor:
        """A fresh GPU extractor capped at ``gigabytes`` (the registered one stays as it is)."""
        return GpuExtractor(gigabytes)

    def array_namespace(self) -> Any:
        """CuPy's array namespace (set up on first use: CuPy is imported only on the GPU lane)."""
        self._setup()
        return self.xp

    def _setup(self) -> None:
        if self._ready:
            return
        try:
            import cupy
            from array_api_compat import cupy as array_cupy
        except ImportError as exc:
            raise StreamfxError(
                "the gpu extractor needs CuPy and a CUDA device: pip install -e '.[gpu]'"
            ) from exc
        total = cupy.cuda.Device().mem_info[1]
        limit = min(int(self.memory_limit_gb * 1024**3), total)
        cupy.get_default_memory_pool().set_limit(size=limit)
        self.xp = array_cupy
        self._cupy = cupy
        self._ready = True

    def to_device(self, values: np.ndarray) -> Any:
        """Arrow/NumPy host values -> device: cuDF from Arrow when installed, else CuPy."""
        try:
            import cudf

            return cudf.Series.from_arrow(pa.array(values)).values
        except ImportError:
            return self._cupy.asarray(values)

    def extract_blocks(
        self,
        readings: pa.Table,
        fc_parameters: Mapping[str, FCParameters],
        *,
        n_jobs: int = 0,
    ) -> tuple[list[FeatureBlock], pa.Table]:
        """The native kernels on CuPy; a batch that does not fit in the GPU's memory runs on
        the CPU instead (``extract`` comes here too)."""
        self._setup()
        pool = self._cupy.get_default_memory_pool()
        try:
            return super().extract_blocks(readings, fc_parameters, n_jobs=n_jobs)
        except self._cupy.cuda.memory.OutOfMemoryError:
            log.warning(
                "batch of %d readings does not fit in %.1f GB of GPU memory: running it on the CPU",
                readings.num_rows,
                self.memory_limit_gb,
            )
            pool.free_all_blocks()
            return NativeExtractor().extract_blocks(readings, fc_parameters, n_jobs=n_jobs)
        finally:
            pool.free_all_blocks()


@hookimpl
def register_extractors() -> list[GpuExtractor]:
    return [GpuExtractor()]
