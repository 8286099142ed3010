"""The executor's options (``executor:`` in pipeline.yaml): where workers run, how many,
how eras are grouped, and how failures are retried."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator

from ..options import RetryConfig, Section, parse_duration


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
