"""Is there a usable CUDA device? CuPy or cuDF importable and at least one device present."""

from __future__ import annotations

from functools import cache


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
