"""The extract stage's options (``stages.extract``): the extractor and what it computes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..options import Section, parse_duration


class ExtractConfig(Section):
    extractor: str = "native"
    # tsfresh's processes in each CPU worker, as written (0 or 1: in the worker's own process)
    n_jobs: int = Field(0, ge=0)
    # gaps of a sensor on its era's time grid (the era's timestamps), filled before extraction
    fill: Literal["none", "ffill", "ffill_bfill"] = "none"
    # tsfresh's impute where the whole feature matrix is known (features.parquet); the
    # PostgreSQL sink and the parts keep raw values
    impute: Literal["none", "tsfresh"] = "none"
    # rolling mean/std windows of GPU-suitable sensors; [] turns them off
    rolling_windows: list[str] = Field(default_factory=lambda: ["1h", "5h", "24h"])
    on_calculator_error: Literal["nan", "fail"] = "nan"  # a plugin calculator raising

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "selection" in data:
            raise ValueError(
                "'selection' moved to sinks.parquet.selection: it selects the columns of "
                "features.parquet"
            )
        return data

    @field_validator("rolling_windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for window in value:
            parse_duration(window)
        return value
