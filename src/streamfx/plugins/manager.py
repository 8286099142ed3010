"""The one plugin manager: built-in plugins, entry points of group ``streamfx``, local modules.

Built-in plugins (``DEFAULT_PLUGINS``) always load. Third-party plugins load from the
``streamfx`` entry-point group, and from module files named under ``plugins:`` in
pipeline.yaml. ``STREAMFX_PLUGINS=a,b`` restricts third-party plugins to those names (an empty
value loads none). Every failure names the plugin and the hook.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pluggy

from ..classify.profiles import SensorProfile
from ..errors import StreamfxError
from ..extract.extractor import Extractor, FeatureCalculator
from ..sinks import SinkPlugin
from ..version import __version__
from . import hookspecs

#: Built-in plugins: registered through the same hooks as third-party ones. A new built-in
#: profile, extractor or sink is one module with a hookimpl, and one line here.
DEFAULT_PLUGINS = (
    "streamfx.classify.default_profiles",
    "streamfx.extract.extractors.tsfresh",
    "streamfx.extract.extractors.native",
    "streamfx.extract.extractors.gpu",
    "streamfx.sinks.parquet",
    "streamfx.sinks.postgres",
)
ENTRY_POINT_GROUP = "streamfx"
#: What a plugin's import or hook may raise that is its failure, not ours: SystemExit too (a
#: module calling sys.exit at import would otherwise end the run, exit 0, nothing done).
PLUGIN_ERRORS = (Exception, SystemExit)


def _allowed(name: str) -> bool:
    """STREAMFX_PLUGINS, when set, names the third-party plugins that may load."""
    wanted = os.environ.get("STREAMFX_PLUGINS")
    if wanted is None:
        return True
    return name in {n.strip() for n in wanted.split(",") if n.strip()}


@cache
def plugin_manager() -> pluggy.PluginManager:
    """Create the plugin manager once: default plugins first, then installed entry points."""
    pm = pluggy.PluginManager("streamfx")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if not _allowed(entry_point.name) or pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except PLUGIN_ERRORS as exc:  # a broken third-party package must not look like our bug
            raise StreamfxError(
                f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _register(pm, plugin, entry_point.name, entry_point.dist)
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, dist: Any = None) -> None:
    try:
        pm.register(plugin, name=name)
        pm.check_pending()  # a hookimpl whose name no hookspec has (a misspelt hook)
    except Exception as exc:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        message = " ".join(str(exc).split())
        raise StreamfxError(f"plugin {name!r} cannot be registered: {message}") from exc
    if dist is not None:
        _DISTRIBUTIONS[name] = dist


_DISTRIBUTIONS: dict[str, Any] = {}


def load_local_plugins(paths: Iterable[Path]) -> None:
    """Register plugin modules given by file path (``plugins:`` in pipeline.yaml)."""
    pm = plugin_manager()
    for path in paths:
        name = path.stem
        if pm.get_plugin(name) is not None or not _allowed(name):
            continue
        if not path.is_file():
            raise StreamfxError(f"plugins: no such plugin file {path}")
        spec = importlib.util.spec_from_file_location(f"streamfx_local_{name}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            sys.modules[spec.name] = module  # type: ignore[union-attr]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except PLUGIN_ERRORS as exc:
            raise StreamfxError(
                f"plugins: plugin {name!r} ({path}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        _register(pm, module, name)
        _cached_hooks.cache_clear()


def _call(hook_name: str) -> list[tuple[str, object]]:
    """Call a hook on each plugin separately, so a failure names the plugin that raised."""
    return list(_cached_hooks(hook_name))


@cache
def _cached_hooks(hook_name: str) -> tuple[tuple[str, object], ...]:
    pm = plugin_manager()
    results: list[tuple[str, object]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():  # registration order
        try:
            items = impl.function()
        except PLUGIN_ERRORS as exc:
            raise StreamfxError(
                f"plugin {impl.plugin_name!r} failed in hook {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        if items is None:
            continue
        if not isinstance(items, list | tuple):
            raise StreamfxError(
                f"plugin {impl.plugin_name!r} returned {type(items).__name__} from hook "
                f"{hook_name}: expected a list"
            )
        results.extend((impl.plugin_name, item) for item in items)
    return tuple(results)


def _collect(hook_name: str, kind: type | Any, what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for plugin, item in _call(hook_name):
        if not isinstance(item, kind):
            raise StreamfxError(
                f"plugin {plugin!r} returned {type(item).__name__} from hook {hook_name}: "
                f"expected {what}"
            )
        found.setdefault(item.name, item)
    return found


def extractors() -> dict[str, Extractor]:
    """Every registered extractor by name."""
    return _collect(
        "register_extractors",
        Extractor,
        "an object with name, description, device, array_namespace() and extract()",
    )


def sensor_profiles() -> dict[str, SensorProfile]:
    """Every registered sensor profile by name."""
    return _collect(
        "register_sensor_profiles", SensorProfile, "streamfx.classify.profiles.SensorProfile"
    )


def feature_calculators() -> dict[str, FeatureCalculator]:
    """Every plugin feature calculator by name."""
    return _collect(
        "register_feature_calculators", FeatureCalculator, "streamfx.extract.FeatureCalculator"
    )


def sink_plugins() -> dict[str, SinkPlugin]:
    """Every plugin sink type by name."""
    return _collect("register_sinks", SinkPlugin, "streamfx.sinks.SinkPlugin")


def get_extractor(name: str, where: str = "stages.extract.extractor") -> Extractor:
    available = extractors()
    if name not in available:
        raise StreamfxError(
            f"{where}: unknown extractor {name!r} (available: {', '.join(sorted(available))})"
        )
    return available[name]


@dataclass(frozen=True)
class PluginInfo:
    """What ``streamfx plugins`` shows for one plugin."""

    name: str
    version: str
    hooks: tuple[str, ...]
    contributes: tuple[str, ...]


def plugin_infos() -> list[PluginInfo]:
    pm = plugin_manager()
    contributions: dict[str, list[str]] = {}
    for hook, label in (
        ("register_extractors", "extractor"),
        ("register_sensor_profiles", "profile"),
        ("register_feature_calculators", "calculator"),
        ("register_sinks", "sink"),
    ):
        for plugin, item in _call(hook):
            contributions.setdefault(plugin, []).append(f"{label} {item.name}")
    infos = []
    order = {name: i for i, name in enumerate(DEFAULT_PLUGINS)}
    plugins = sorted(
        pm.get_plugins(), key=lambda p: (order.get(pm.get_name(p), 99), pm.get_name(p))
    )
    for plugin in plugins:
        name = pm.get_name(plugin) or repr(plugin)
        dist = _DISTRIBUTIONS.get(name)
        if dist is not None:
            version = dist.version
        elif name in DEFAULT_PLUGINS:
            version = f"{__version__} (built-in)"
        else:
            version = "local module"
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        infos.append(PluginInfo(name, version, hooks, tuple(contributions.get(name, []))))
    return infos
