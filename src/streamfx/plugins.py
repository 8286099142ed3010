"""The one plugin manager: built-in plugins, entry points of group ``streamfx``, and lookups."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

import pluggy

from . import hookspecs
from .errors import StreamfxError
from .extract import Extractor
from .profiles import SensorProfile

#: Built-in plugins: registered through the same hooks as third-party ones.
DEFAULT_PLUGINS = (
    "streamfx.profiles",
    "streamfx.extractors.tsfresh",
    "streamfx.extractors.native",
    "streamfx.extractors.gpu",
)


@cache
def plugin_manager() -> pluggy.PluginManager:
    """Create the plugin manager once: default plugins first, then installed entry points."""
    pm = pluggy.PluginManager("streamfx")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    try:
        pm.load_setuptools_entrypoints("streamfx")
    except Exception as exc:  # a broken third-party package must not look like our bug
        raise StreamfxError(f"plugin failed to load: {type(exc).__name__}: {exc}") from exc
    return pm


def _call(hook_name: str) -> list[tuple[str, object]]:
    """Call a hook on each plugin separately, so a failure names the plugin that raised."""
    pm = plugin_manager()
    results: list[tuple[str, object]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            items = impl.function()
        except Exception as exc:
            raise StreamfxError(
                f"plugin {impl.plugin_name!r} failed in hook {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        results.extend((impl.plugin_name, item) for item in items or [])
    return results


def extractors() -> dict[str, Extractor]:
    """Every registered extractor by name."""
    found: dict[str, Extractor] = {}
    for plugin, item in _call("register_extractors"):
        if not isinstance(item, Extractor):
            raise StreamfxError(
                f"plugin {plugin!r} returned {type(item).__name__} from register_extractors: "
                "expected an object with name, description and extract()"
            )
        found.setdefault(item.name, item)
    return found


def sensor_profiles() -> dict[str, SensorProfile]:
    """Every registered sensor profile by name."""
    found: dict[str, SensorProfile] = {}
    for plugin, item in _call("register_sensor_profiles"):
        if not isinstance(item, SensorProfile):
            raise StreamfxError(
                f"plugin {plugin!r} returned {type(item).__name__} from "
                "register_sensor_profiles: expected streamfx.profiles.SensorProfile"
            )
        found.setdefault(item.name, item)
    return found


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


def plugin_infos() -> list[PluginInfo]:
    pm = plugin_manager()
    versions = {pm.get_name(p): dist.version for p, dist in pm.list_plugin_distinfo()}
    from . import __version__

    infos = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        infos.append(PluginInfo(name, versions.get(name, f"{__version__} (built-in)"), hooks))
    return infos
