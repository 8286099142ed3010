"""pipeline.yaml: its schema, defaults and validation, with errors that name file and key path."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import StreamfxError
from .profiles import FEATURE_SET_NAMES, Lane

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
    return dt.timedelta(seconds=seconds)


def _utc(value: Any) -> Any:
    """Accept dates, naive and aware datetimes (and their ISO strings); naive means UTC."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO date or datetime") from exc
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


class Section(BaseModel):
    """Every section rejects unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class EmbeddedConfig(Section):
    data_dir: Path = Path(".streamfx/pg")
    seed_demo: bool = True


class ReadingsConfig(Section):
    table: str
    layout: Literal["long", "wide"] = "long"
    time_column: str = "time"
    partition_column: str | None = None
    sensor_column: str = "sensor"
    value_column: str = "value"
    sensors: list[str] | None = None


class ErasConfig(Section):
    table: str | None = None
    id_column: str = "era_id"
    start_column: str = "start_time"
    end_column: str = "end_time"
    partition_column: str | None = None
    every: dt.timedelta | None = None
    from_: dt.datetime | None = Field(None, alias="from")
    to: dt.datetime | None = None

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _utc(value)

    @model_validator(mode="after")
    def _one_kind(self) -> ErasConfig:
        if (self.table is None) == (self.every is None):
            raise ValueError("set exactly one of 'table' (an era table) or 'every' (fixed windows)")
        if self.from_ and self.to and self.from_ >= self.to:
            raise ValueError("'from' must be before 'to'")
        return self


class SourceConfig(Section):
    dsn: str = "embedded"
    embedded: EmbeddedConfig = EmbeddedConfig()
    schema_: str = Field("public", alias="schema")
    readings: ReadingsConfig
    eras: ErasConfig


class SensorRuleConfig(Section):
    lane: Lane | None = None
    features: str | None = None
    calculators: dict[str, list[dict[str, Any]] | None] = {}

    @field_validator("calculators", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """A list of names means each with its default parameters."""
        return dict.fromkeys(value) if isinstance(value, list) else value

    @field_validator("features")
    @classmethod
    def _features(cls, value: str | None) -> str | None:
        if value is not None and value not in FEATURE_SET_NAMES:
            raise ValueError(
                f"unknown feature set {value!r}; use one of {', '.join(FEATURE_SET_NAMES)}"
            )
        return value


class RoutingConfig(Section):
    """Which lane an era goes to. Defaults are the reference coordinator's thresholds."""

    policy: Literal["smart", "size"] = "smart"
    cpu_below_readings: int = Field(10_000, ge=0)
    gpu_above_readings: int = Field(500_000, ge=0)
    gpu_ratio_above: float = Field(0.6, ge=0, le=1)
    complexity_above: float = Field(0.5, ge=0, le=1)
    size_threshold: int = Field(100_000, ge=0)


class ClassifyConfig(Section):
    profile: str | None = "reference"
    default_features: Literal["minimal", "efficient", "comprehensive"] = "minimal"
    sensors: dict[str, SensorRuleConfig] = {}
    routing: RoutingConfig = RoutingConfig()


class SelectionConfig(Section):
    variance_threshold: float = Field(0.0, ge=0)


class ExtractConfig(Section):
    extractor: str = "native"
    n_jobs: int = Field(4, ge=0)
    selection: SelectionConfig | None = None
    rolling_windows: list[str] = ["1h", "5h", "24h"]  # GPU-suitable sensors; [] turns it off
    on_calculator_error: Literal["nan", "fail"] = "nan"  # a plugin calculator raising

    @field_validator("rolling_windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for window in value:
            parse_duration(window)
        return value


class StagesConfig(Section):
    classify: ClassifyConfig = ClassifyConfig()
    extract: ExtractConfig = ExtractConfig()


class ParquetSinkConfig(Section):
    #: A local folder, or a URI pyarrow.fs understands (file://, s3://, gs://, hdfs://, abfs://).
    path: Path | str

    @field_validator("path", mode="before")
    @classmethod
    def _local_or_uri(cls, value: Any) -> Any:
        return Path(value) if isinstance(value, str) and "://" not in value else value


class PostgresSinkConfig(Section):
    dsn: str | None = None  # default: the source's database
    schema_: str = Field("public", alias="schema")
    table: str = "streamfx_features"


class SinksConfig(Section):
    """parquet and postgres are built in; other keys name plugin sinks (checked on load)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)
    parquet: ParquetSinkConfig | None = None
    postgres: PostgresSinkConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _present_means_enabled(cls, data: Any) -> Any:
        """``postgres:`` with nothing under it enables the sink with its defaults."""
        if isinstance(data, dict):
            return {key: {} if value is None else value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _some(self) -> SinksConfig:
        for name, options in self.plugin_sinks().items():
            if not isinstance(options, dict):
                raise ValueError(f"sink {name!r}: expected a mapping of options")
        if self.parquet is None and self.postgres is None and not self.plugin_sinks():
            raise ValueError("configure at least one sink: parquet, postgres or a plugin's")
        return self

    def plugin_sinks(self) -> dict[str, dict[str, Any]]:
        """Sinks provided by plugins: name -> options."""
        return dict(self.model_extra or {})


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
    batch_eras: int = Field(8, ge=1)
    # An era that raised, or whose worker process died, is tried again after a pause.
    retry: RetryConfig = RetryConfig(attempts=3, backoff=dt.timedelta(seconds=2))
    # A lost database connection (source or sink) is reopened, waiting longer each time.
    reconnect: RetryConfig = RetryConfig(attempts=8, backoff=dt.timedelta(seconds=1))
    era_timeout: dt.timedelta | None = None  # e.g. 30min: a longer era is stopped and fails

    @field_validator("era_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class PipelineConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    plugins: list[Path] = []  # plugin module files, relative to the pipeline file
    source: SourceConfig
    stages: StagesConfig = StagesConfig()
    sinks: SinksConfig
    executor: ExecutorConfig = ExecutorConfig()


def _describe(error: dict[str, Any], data: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        parent = loc[:-1]
        known = list(_fields_at(PipelineConfig, parent))
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        where = ".".join(parent) or "top level"
        msg = f"unknown key {loc[-1]!r} in {where}"
        return msg + (
            f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(known)})"
        )
    if error["type"] == "missing":
        return f"{'.'.join(loc)}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
        message += f" (got {error.get('input')!r})"
    return f"{'.'.join(loc) or 'top level'}: {message}"


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """Key names allowed at ``path`` (aliases as users write them)."""
    for part in path:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        annotation = getattr(field, "annotation", None)
        candidates = [
            a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)
        ]
        nested = [a for a in candidates if issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return [f.alias or n for n, f in model.model_fields.items()]


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline file; any problem raises StreamfxError naming file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StreamfxError(f"{path}: no such pipeline file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamfxError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StreamfxError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        raise StreamfxError(f"{path}: the file is empty; expected keys name, source and sinks")
    if not isinstance(data, dict):
        raise StreamfxError(f"{path}: expected a mapping with keys name, source and sinks")
    if isinstance(data.get("plugins"), list):  # relative to the pipeline file, not the cwd
        data["plugins"] = [
            str((path.parent / p).resolve()) if isinstance(p, str) else p for p in data["plugins"]
        ]
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        # Unknown keys first: a misspelt key also makes the intended one look missing.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise StreamfxError(f"{path}: {_describe(errors[0], data)}{more}") from None
    from .plugins import load_local_plugins, sink_plugins

    load_local_plugins(config.plugins)
    unknown = set(config.sinks.plugin_sinks()) - set(sink_plugins())
    if unknown:
        name = sorted(unknown)[0]
        known = ["parquet", "postgres", *sorted(sink_plugins())]
        hint = difflib.get_close_matches(name, known, n=1)
        raise StreamfxError(
            f"{path}: sinks: unknown sink {name!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else f" (available: {', '.join(known)})")
        )
    return config
