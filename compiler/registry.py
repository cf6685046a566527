"""The fragment and pass registry, built on pluggy.

Built-in plugins are the modules in ``BUILTIN_PLUGINS``; third-party plugins are installed
distributions with an entry point in the ``recforge`` group. Nothing else is ever imported as a
plugin: no paths from configs, no import side effects.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from compiler import PROJECT_NAME, __version__, hookspecs
from compiler.errors import ConfigError, PluginError, did_you_mean

ENTRY_POINT_GROUP = "recforge"
#: Set to 1 to load only the built-in plugins.
ENV_DISABLE_AUTOLOAD = "RECFORGE_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated entry-point names: load only these third-party plugins.
ENV_ALLOW = "RECFORGE_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.transform",
    "plugins.features",
    "plugins.inputs",
    "plugins.encoders",
    "plugins.towers",
    "plugins.heads",
    "plugins.losses",
    "plugins.tasks",
    "plugins.optimizers",
    "plugins.retrieval",
    "plugins.evaluators",
    "plugins.export",
    "plugins.trainer",
    "plugins.passes",
)


@dataclass(frozen=True)
class Provider:
    """Who provides a registered class: the plugin (module / entry point) and distribution."""

    plugin: str
    distribution: str
    version: str


@dataclass(frozen=True)
class Registered:
    cls: type
    provider: Provider


@dataclass
class Registry:
    fragments: dict[tuple[str, str], Registered] = field(default_factory=dict)
    passes: dict[str, Registered] = field(default_factory=dict)
    load_warnings: list[str] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return sorted({kind for kind, _ in self.fragments})

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self.fragments if k == kind)

    def fragment(self, kind: str, name: str, *, key: str) -> Registered:
        """The fragment ``name`` of ``kind``, or a ConfigError at ``key`` listing the choices."""
        found = self.fragments.get((kind, name))
        if found is None:
            known = self.names(kind)
            raise ConfigError(
                key,
                f"unknown {kind} '{name}' (registered: {', '.join(known) or 'none'})",
                suggestion=did_you_mean(name, known),
            )
        return found


def _builtin_provider(module: str) -> Provider:
    return Provider(plugin=module, distribution=PROJECT_NAME, version=__version__)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(pm: pluggy.PluginManager) -> tuple[dict[str, Provider], list[str]]:
    """Register built-ins and installed entry points; returns providers and load warnings."""
    providers: dict[str, Provider] = {}
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        providers[module_name] = _builtin_provider(module_name)

    problems: list[str] = []
    if os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip() not in ("", "0"):
        return providers, problems
    allowed = {n.strip() for n in os.environ.get(ENV_ALLOW, "").split(",") if n.strip()}
    for entry_point in _entry_points():
        if allowed and entry_point.name not in allowed:
            continue
        dist = entry_point.dist
        provider = Provider(
            plugin=entry_point.name,
            distribution=dist.name if dist else entry_point.value,
            version=dist.version if dist else "unknown",
        )
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken plugin must not break configs that don't use it
            problems.append(
                f"plugin '{entry_point.name}' ({provider.distribution} {provider.version}) "
                f"failed to import and was skipped: {type(error).__name__}: {error}"
            )
            continue
        _check_hookspec_version(plugin, provider)
        if pm.is_registered(plugin) or pm.has_plugin(entry_point.name):
            continue
        pm.register(plugin, name=entry_point.name)
        providers[entry_point.name] = provider
    return providers, problems


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _check_hookspec_version(plugin: Any, provider: Provider) -> None:
    wanted = getattr(plugin, "RECFORGE_HOOKSPEC_VERSION", hookspecs.HOOKSPEC_VERSION)
    if int(wanted) != hookspecs.HOOKSPEC_VERSION:
        raise PluginError(
            f"plugin '{provider.plugin}' ({provider.distribution} {provider.version}) targets "
            f"recforge hook spec version {wanted}, but this recforge provides version "
            f"{hookspecs.HOOKSPEC_VERSION}; upgrade the plugin or recforge"
        )


def build_registry(pm: pluggy.PluginManager, providers: dict[str, Provider]) -> Registry:
    """Call every plugin's ``register_*`` hooks, attributing each class to its plugin."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"invalid plugin hook: {error}") from None
    registry = Registry()
    for impl in pm.hook.register_fragments.get_hookimpls():
        provider = providers.get(impl.plugin_name, _builtin_provider(impl.plugin_name))
        for cls in _call(impl, provider):
            _add(registry.fragments, (cls.kind, cls.name), cls, provider, f"{cls.kind} fragment")
    for impl in pm.hook.register_passes.get_hookimpls():
        provider = providers.get(impl.plugin_name, _builtin_provider(impl.plugin_name))
        for cls in _call(impl, provider):
            _add(registry.passes, cls.name, cls, provider, "pass")
    return registry


def _call(impl: pluggy.HookImpl, provider: Provider) -> list[type]:
    try:
        return list(impl.function() or [])
    except Exception as error:
        raise PluginError(
            f"plugin '{provider.plugin}' ({provider.distribution}) raised in "
            f"{impl.function.__name__}: {type(error).__name__}: {error}"
        ) from None


def _add(table: dict, key: Any, cls: type, provider: Provider, what: str) -> None:
    existing = table.get(key)
    if existing is not None and existing.cls is not cls:
        label = key[1] if isinstance(key, tuple) else key
        raise PluginError(
            f"{what} '{label}' is registered twice: by {existing.provider.distribution} "
            f"({existing.provider.plugin}) and by {provider.distribution} ({provider.plugin})"
        )
    table[key] = Registered(cls, provider)


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (plugins load once; tests call ``get_registry.cache_clear()``)."""
    pm = make_plugin_manager()
    providers, problems = load_plugins(pm)
    registry = build_registry(pm, providers)
    registry.load_warnings.extend(problems)
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    return registry


def plugin_modules(pm: pluggy.PluginManager) -> list[ModuleType]:
    return [p for p in pm.get_plugins() if isinstance(p, ModuleType)]
