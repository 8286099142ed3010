"""pipeline.yaml: its schema, defaults and validation, with errors that name file and key path.

The schema is assembled from the options models of each stage (``source.config``,
``classify.config``, ``extract.config``, ``run.config``); each sink's options are validated by
the model its plugin declares (``SinkPlugin.options_model``) once plugins are loaded.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .classify.config import ClassifyConfig
from .errors import StreamfxError
from .extract.config import ExtractConfig
from .options import Section
from .run.config import ExecutorConfig
from .source.config import SourceConfig


class StagesConfig(Section):
    classify: ClassifyConfig = ClassifyConfig()
    extract: ExtractConfig = ExtractConfig()


class SinksConfig(Section):
    """Sink name -> its options; each name is a registered sink type (parquet and postgres are
    built in), checked with its options model when the file is loaded."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _present_means_enabled(cls, data: Any) -> Any:
        """``postgres:`` with nothing under it enables the sink with its defaults."""
        if isinstance(data, dict):
            return {key: {} if value is None else value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _some(self) -> SinksConfig:
        for name, options in self.options().items():
            if not isinstance(options, dict):
                raise ValueError(f"sink {name!r}: expected a mapping of options")
        if not self.options():
            raise ValueError("configure at least one sink: parquet, postgres or a plugin's")
        return self

    def options(self) -> dict[str, dict[str, Any]]:
        """Each configured sink's options as written: name -> mapping."""
        return dict(self.model_extra or {})


class PipelineConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    plugins: list[Path] = Field(default_factory=list)  # module files, relative to this file
    source: SourceConfig
    stages: StagesConfig = StagesConfig()
    sinks: SinksConfig
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("plugins")
    @classmethod
    def _python_files(cls, paths: list[Path]) -> list[Path]:
        for path in paths:
            if path.suffix != ".py":
                raise ValueError(f"{path} is not a Python module file (.py)")
        return paths


#: Pipeline files are a page or two; anything this big is a mistake (or an attack).
MAX_FILE_BYTES = 1_000_000
#: Nodes a file may hold once its aliases are expanded: "billion laughs" is a 1 KB file of
#: aliases of aliases that expands to gigabytes when validated.
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """YAML as pipeline files need it: a repeated key is an error (the last would win
    silently, and a whole sink could vanish), and dates stay strings, so that the option that
    reads them names the key when one is impossible (2024-02-30)."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}  # key -> its line
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *base, which keys may override
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key]}): the last would win",
                    key_node.start_mark,
                )
            seen.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes ``node`` stands for with every alias expanded (an alias is the node it names)."""
    if id(node) not in sizes:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def _read_yaml(path: Path, text: str) -> Any:
    """Parse ``text`` with :class:`_Loader`, refusing a file too big, too deep or expanding to
    more than :data:`MAX_NODES` nodes."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise StreamfxError(f"{path}: the file is larger than {MAX_FILE_BYTES:,} bytes")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_NODES:
            raise StreamfxError(
                f"{path}: the file expands to {size:,} YAML nodes once its aliases (*name) are"
                f" resolved; at most {MAX_NODES:,}"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StreamfxError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise StreamfxError(f"{path}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _describe(
    error: dict[str, Any], model: type[BaseModel] = PipelineConfig, at: tuple[str, ...] = ()
) -> str:
    """One line for a validation error of ``model``, whose keys sit at ``at`` in the file."""
    relative = [str(part) for part in error["loc"]]
    loc = [*at, *relative]
    if error["type"] == "extra_forbidden":
        parent = loc[:-1]
        known = list(_fields_at(model, relative[:-1]))
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
    data = _read_yaml(path, text)
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
        raise _invalid(path, exc) from None
    from .plugins.manager import load_local_plugins

    try:
        load_local_plugins(config.plugins)
    except StreamfxError as exc:  # the plugins this file names: say which file
        raise StreamfxError(f"{path}: {exc}") from None
    sink_options(config, path)
    return config


def with_feature_set(config: PipelineConfig, flag: str | None) -> PipelineConfig:
    """``config`` with every sensor's feature set from ``--features`` (``flag``), else from
    STREAMFX_FEATURE_SET, else as the file says (``stages.classify.feature_set``)."""
    classify = config.stages.classify.with_feature_set(flag)
    if classify is config.stages.classify:
        return config
    stages = config.stages.model_copy(update={"classify": classify})
    return config.model_copy(update={"stages": stages})


def _invalid(
    path: Path, exc: ValidationError, model: type[BaseModel] = PipelineConfig, at=()
) -> StreamfxError:
    # Unknown keys first: a misspelt key also makes the intended one look missing.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return StreamfxError(f"{path}: {_describe(errors[0], model, at)}{more}")


def sink_options(config: PipelineConfig, path: str | Path = "pipeline") -> dict[str, Any]:
    """Each configured sink's options, checked by its plugin's options model (in the order the
    sink types are registered); an unknown sink or a bad option names the file and key."""
    from .plugins.manager import sink_plugins

    plugins = sink_plugins()
    configured = config.sinks.options()
    unknown = set(configured) - set(plugins)
    if unknown:
        name = sorted(unknown)[0]
        builtin = [n for n in ("parquet", "postgres") if n in plugins]
        known = [*builtin, *sorted(set(plugins) - set(builtin))]
        hint = difflib.get_close_matches(name, known, n=1)
        raise StreamfxError(
            f"{path}: sinks: unknown sink {name!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else f" (available: {', '.join(known)})")
        )
    options: dict[str, Any] = {}
    for name, plugin in plugins.items():
        if name not in configured:
            continue
        model = plugin.options_model
        if model is None:
            options[name] = dict(configured[name])
            continue
        try:
            options[name] = model.model_validate(configured[name])
        except ValidationError as exc:
            raise _invalid(Path(path), exc, model, ("sinks", name)) from None
    return options
