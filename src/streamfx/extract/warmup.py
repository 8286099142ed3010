"""Compile streamfx's numba kernels once, before the workers need them.

numba keeps compiled kernels in an on-disk cache (``cache=True``), so each machine compiles them
once. On a fresh install, though, the first run's workers would all compile them at the same
time, each for several seconds, while they should be extracting. So the run compiles them
itself, once, on a thread of its own process (and half of them in a helper process beside it)
while it opens the source and plans; the workers start after it and load the kernels from the
cache. Once they are compiled, a marker beside
the cache says so, and later runs skip the warm-up: loading every kernel would cost the run's
own process 0.6 s and 120 MiB it never uses (it does not extract).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import hashlib
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from ..model import READINGS_SCHEMA
from ..version import __version__
from . import calculators
from .calculators import split_settings
from .extractor import Extractor
from .feature_sets import feature_set

#: Seconds the run waits for the kernels before it says that they are being compiled.
NOTICE_AFTER_S = 0.5


def compiled_marker() -> Path:
    """The file that says this machine's cache holds the kernels of these sources: named by
    what numba's cache depends on (its version, Python's, the CPU, each kernel file's size
    and modification time), so any change to them means compiling again."""
    folder = Path(calculators.__file__).parent
    stamp = [__version__, numba.__version__, sys.version, platform.machine()]
    stamp.append(numba.config.CPU_NAME or _host_cpu())
    for source in sorted(folder.glob("*.py")):
        info = source.stat()
        stamp.append(f"{source.name}:{info.st_size}:{info.st_mtime_ns}")
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    cache = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else folder / "__pycache__"
    return cache / f"streamfx-kernels-{key}.ok"


def _host_cpu() -> str:
    import llvmlite.binding as llvm

    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


def warm_up_once(extractor: Extractor) -> None:
    """:func:`warm_up`, unless the marker says it was done with these kernels on this machine;
    then leave the marker (where the cache is writable)."""
    marker = compiled_marker()
    if marker.exists() or not warm_up(extractor):
        return
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"compiled by streamfx {__version__}, pid {os.getpid()}\n")


#: Set when the process ends: the warm-up stops after the calculator it is compiling.
_STOPPING = threading.Event()


def warm_up(extractor: Extractor) -> bool:
    """Run every native calculator of the comprehensive set through ``extractor`` on a few
    small synthetic series, which compiles (or loads from the cache) every numba kernel with
    the types a run uses; False when the process ended it early (see ``KernelWarmup``).

    Every other calculator runs in a helper process (``warm_up_calculators``) at the same
    time: numba compiles on one core per process, so two halve the first run's wait. Where
    the helper does not start or fails (an extractor it cannot find by name), this process
    runs its calculators too."""
    native, _, _ = split_settings(feature_set("comprehensive"))
    mine = {name: native[name] for name in list(native)[0::2]}
    theirs = {name: native[name] for name in list(native)[1::2]}
    helper = None if _STOPPING.is_set() else _start_helper(extractor.name, list(theirs))
    done = False
    try:
        done = _run_calculators(extractor, mine)
    finally:
        helped = helper is not None and _join_helper(helper, stop=not done)
    return done and (helped or _run_calculators(extractor, theirs))


def warm_up_calculators(extractor: str, names: list[str]) -> None:
    """The helper process's part of ``warm_up``: the calculators ``names`` through the
    registered extractor of that name (the run's)."""
    from ..plugins.manager import get_extractor

    native, _, _ = split_settings(feature_set("comprehensive"))
    settings = {name: native[name] for name in names}
    if not _run_calculators(get_extractor(extractor), settings):
        raise SystemExit(1)


def _run_calculators(extractor: Extractor, settings: dict[str, object]) -> bool:
    """Each calculator in ``settings`` through ``extractor`` on the probe series, one at a
    time, so that an ending run stops between kernels; False if it did."""
    readings = _probe_readings()
    for name, params in settings.items():
        if _STOPPING.is_set():
            return False
        extractor.extract(readings, {"s": {name: params}})
    return True


def _probe_readings() -> pa.Table:
    """Three short random walks of two lengths (two buckets)."""
    rng = np.random.default_rng(0)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    eras, times, values = [], [], []
    for era, length in (("a", 60), ("b", 60), ("c", 25)):
        eras += [era] * length
        times += [start + dt.timedelta(minutes=5 * i) for i in range(length)]
        values += list(np.cumsum(rng.standard_normal(length)))
    return pa.table(
        {"era_id": eras, "sensor": ["s"] * len(eras), "time": times, "value": values},
        schema=READINGS_SCHEMA,
    )


def _start_helper(extractor: str, names: list[str]) -> subprocess.Popen[bytes] | None:
    """A Python process running ``warm_up_calculators`` (same interpreter and environment,
    so the same numba cache), or None where none starts: then this process compiles them
    all."""
    call = f"warm_up_calculators({extractor!r}, {names!r})"
    code = f"from streamfx.extract.warmup import warm_up_calculators; {call}"
    quiet = subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code], stdin=quiet, stdout=quiet, stderr=quiet
        )
    except OSError:
        return None


def _join_helper(helper: subprocess.Popen[bytes], *, stop: bool) -> bool:
    """Wait for the helper (ended at once where this process stops); whether it finished."""
    while helper.poll() is None:
        if stop or _STOPPING.is_set():
            helper.terminate()
            helper.wait()
            return False
        with contextlib.suppress(subprocess.TimeoutExpired):
            helper.wait(0.1)
    return helper.returncode == 0


class KernelWarmup:
    """``job`` (an extractor's ``warm_up``) on a background thread, while the run prepares."""

    def __init__(self, job: Callable[[], None]) -> None:
        self._job = job
        self._thread = threading.Thread(target=self._run, name="streamfx-warmup", daemon=True)
        self._thread.start()
        # a run that ends early (bad input, an unreachable database) would otherwise end the
        # interpreter while numba compiles on the thread, and LLVM's teardown under it aborts
        # the process (SIGABRT instead of exit status 2): stop it between kernels, and wait
        atexit.register(self._finish)

    def _finish(self) -> None:
        _STOPPING.set()
        self._thread.join()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the workers compile what is missing
            self._job()

    def wait(self, notify: Callable[[str], None]) -> None:
        """Until the kernels are compiled (call before starting the workers). When the run has
        to wait for them, it says why in one line; a run that stops before (bad input) or
        finds them compiled says nothing."""
        self._thread.join(NOTICE_AFTER_S)
        if self._thread.is_alive():
            notify("compiling streamfx's kernels for this machine (once: later runs load them)")
            self._thread.join()
