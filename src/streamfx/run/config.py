"""The executor's options (``executor:`` in pipeline.yaml): where workers run, how many,
how eras are grouped, and how failures are retried."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from ..options import RetryConfig, Section, parse_duration

#: Local worker processes allowed per core: more only thrash (and a typo such as 10000000
#: would start millions of processes and write a report of gigabytes).
WORKERS_PER_CORE = 4
#: Ray tasks allowed per lane: the cluster is not known when the file is read, so a bound
#: that fits the largest clusters and stops a typo.
MAX_RAY_WORKERS = 10_000


def cores() -> int:
    """The cores this process may use (its affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ExecutorConfig(Section):
    kind: Literal["local", "ray"] = "local"  # ray: Ray tasks on a cluster (the ray extra)
    # ray only: "auto" (this machine's cluster, else a local instance), ray://host:port, host:port
    address: str = "auto"
    ray_num_cpus: int | None = Field(None, ge=1)  # CPUs of a local Ray instance; None: all
    cpu_workers: int | None = Field(None, ge=1)  # default: one per core
    gpu_workers: int | None = Field(None, ge=1)  # default: one per GPU
    gpu: Literal["auto", "required", "off"] = "auto"
    gpu_memory_limit_gb: float = Field(30.0, gt=0)  # capped at the device's memory
    eras_per_pass: int = Field(8, ge=1)  # eras a worker extracts in one call / one transfer
    batch_eras: int = Field(64, ge=1)
    # An era that raised, or whose worker process died, is tried again after a pause.
    retry: RetryConfig = RetryConfig(attempts=3, backoff=dt.timedelta(seconds=2))
    # A lost database connection (source or sink) is reopened, waiting longer each time.
    reconnect: RetryConfig = RetryConfig(attempts=8, backoff=dt.timedelta(seconds=1))
    era_timeout: dt.timedelta | None = None  # e.g. 30min: a longer era is stopped and fails

    @field_validator("era_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("cpu_workers", "gpu_workers")
    @classmethod
    def _workers_fit(cls, count: int | None, info: ValidationInfo) -> int | None:
        """Local workers are processes on this machine: at most WORKERS_PER_CORE per core;
        Ray workers are tasks of a cluster: at most MAX_RAY_WORKERS."""
        if count is None:
            return count
        limit = WORKERS_PER_CORE * cores()
        if info.data.get("kind") == "local" and count > limit:
            raise ValueError(
                f"{count:,} worker processes on a machine with {cores()} cores;"
                f" at most {limit} ({WORKERS_PER_CORE} per core) run locally"
            )
        if info.data.get("kind") == "ray" and count > MAX_RAY_WORKERS:
            raise ValueError(f"{count:,} Ray tasks; at most {MAX_RAY_WORKERS:,} per lane")
        return count
