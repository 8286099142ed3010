"""What every options model shares: the strict base section, durations, times and retry policies.

Each stage and sink declares its own options model beside its code; ``config.py`` assembles
them into the pipeline file's schema. They all derive from :class:`Section`, so a misspelt key
is an error wherever it is, never a silent default.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d|w)\s*$")
_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, allow_zero: bool = False) -> dt.timedelta:
    """``30min``, ``6h``, ``1d``, ``2w`` -> timedelta; must be positive (or zero if allowed)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30s, 30min, 6h, 1d or 1w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration {text!r} must be positive")
    try:
        duration = dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long (at most 999999999d)") from None
    if seconds > 0 and not duration:  # rounded to 0 microseconds: windows that never advance
        raise ValueError(f"duration {text!r} is shorter than a microsecond")
    return duration


def utc(value: Any) -> Any:
    """Accept dates, naive and aware datetimes (and their ISO strings); naive means UTC.

    Anything else (``2024``, a list) is refused: pydantic would read a number as seconds
    since 1970."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO date or datetime: {exc}") from None
    if not isinstance(value, dt.date):
        raise ValueError("expected an ISO date or datetime such as 2024-06-01 or 2024-06-01T06:00")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def check_identifier(name: str) -> str:
    """PostgreSQL cannot hold a NUL in a name, and cuts names at 63 bytes: refuse both here,
    where the key can be named, rather than in a query."""
    if not name:
        raise ValueError("a name cannot be empty")
    if "\x00" in name:
        raise ValueError("a name cannot hold a NUL byte")
    if len(name.encode()) > 63:
        raise ValueError(f"{name!r} is longer than PostgreSQL's 63 bytes")
    return name


#: A table, schema or column name from pipeline.yaml (always quoted in SQL).
Identifier = Annotated[str, AfterValidator(check_identifier)]


class Section(BaseModel):
    """Every section rejects unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryConfig(Section):
    """How often to try again, and how long to wait in between (doubling each time)."""

    attempts: int = Field(ge=1)  # tries in all, the first one included
    backoff: dt.timedelta  # wait before the second try; doubled before each next one
    max_backoff: dt.timedelta = dt.timedelta(seconds=60)

    @field_validator("backoff", "max_backoff", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}s"
        return parse_duration(value, allow_zero=True) if isinstance(value, str) else value

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed try (1 -> backoff, 2 -> 2x, ...)."""
        seconds = self.backoff.total_seconds() * 2 ** max(failures - 1, 0)
        return min(seconds, self.max_backoff.total_seconds())
