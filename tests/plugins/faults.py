"""A fault-injection plugin: the ``faulty`` extractor misbehaves on chosen eras.

``STREAMFX_FAULTS`` says which, e.g. ``E03:raise,E07:crash,E11:hang,E15:crash-once``:

- ``raise``: raise on every try;      ``raise-once``: raise on the first try only;
- ``crash``: kill the worker process (SIGKILL, as the OOM killer does) on every try;
  ``crash-once``: only on the first try;
- ``hang``: sleep for an hour (a stuck kernel).

"Once" is remembered by a marker file in ``STREAMFX_FAULTS_DIR``, since the retry may run in
a fresh process. Everything else is the native extractor's work.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from streamfx import NativeExtractor, hookimpl


def _faults() -> dict[str, str]:
    spec = os.environ.get("STREAMFX_FAULTS", "")
    return dict(item.split(":", 1) for item in spec.split(",") if item)


def _first_time(era_id: str) -> bool:
    marker = Path(os.environ["STREAMFX_FAULTS_DIR"]) / f"{era_id.replace('/', '_')}.tried"
    if marker.exists():
        return False
    marker.touch()
    return True


class FaultyExtractor(NativeExtractor):
    name = "faulty"
    description = "the native extractor, misbehaving on the eras STREAMFX_FAULTS names (tests)"

    def extract(self, readings: pa.Table, fc_parameters, *, n_jobs: int = 0) -> pa.Table:
        faults = _faults()
        for era_id in pc.unique(readings["era_id"]).to_pylist():
            fault = faults.get(era_id)
            if fault is None:
                continue
            once = fault.endswith("-once")
            if once and not _first_time(era_id):
                continue
            if fault.startswith("raise"):
                raise RuntimeError(f"injected fault on era {era_id}")
            if fault.startswith("crash"):
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "hang":
                time.sleep(3600)
        return super().extract(readings, fc_parameters, n_jobs=n_jobs)


@hookimpl
def register_extractors():
    return [FaultyExtractor()]
