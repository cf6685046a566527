"""The fragment and pass registry, built on pluggy.

Built-in plugins are the modules in ``BUILTIN_PLUGINS``; third-party plugins are installed
distributions with an entry point in the ``recforge`` group. Nothing else is ever imported as a
plugin: no paths from configs, no import side effects.

Loading rules (docs/plugins.md says the same for plugin authors):

* ``RECFORGE_PLUGINS=a,b`` loads only the named plugins (entry-point or distribution names);
  otherwise ``RECFORGE_DISABLE_PLUGIN_AUTOLOAD=1`` loads none, and by default all are loaded.
* A plugin that fails to import, or targets another hook spec version, is refused: a
  ``PluginWarning`` says why, and configs that do not use it compile as before.
* A misspelled hook implementation is an error (``pm.check_pending()``), naming the plugin.
* Two distributions registering one ``(kind, name)`` is an error naming both when a config
  selects that name; ``<distribution>:<name>`` (``recforge-dcn:dcn``) picks one explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler import PROJECT_NAME, __version__
from compiler.errors import ConfigError, PluginError, did_you_mean
from compiler.fragments import hookspecs
from compiler.fragments.base import TRAINER_FILE, TRANSFORM_FILE, Fragment
from compiler.fragments.contract import declaration_problem
from compiler.model import FragmentUse

ENTRY_POINT_GROUP = "recforge"
#: Set to 1 to load no third-party plugin (except those named in ``RECFORGE_PLUGINS``).
ENV_DISABLE_AUTOLOAD = "RECFORGE_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated entry-point or distribution names: load only these third-party plugins.
ENV_ALLOW = "RECFORGE_PLUGINS"
#: What a module declares to say which hook spec version it was written for.
HOOKSPEC_ATTRIBUTE = "RECFORGE_HOOKSPEC_VERSION"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.transform",
    "plugins.features",
    "plugins.history",
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
    "plugins.distribution",
    "plugins.passes",
)

#: Fragment names are config values; ``:`` is reserved for ``<distribution>:<name>``.
FRAGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginWarning(UserWarning):
    """A plugin was refused (import error, hook spec version, malformed fragment)."""


def normalize_distribution(name: str) -> str:
    """PEP 503 normal form, so ``recforge_dcn`` and ``Recforge-DCN`` name one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def qualified(distribution: str, name: str) -> str:
    """The explicit spelling of a fragment name: ``recforge-dcn:dcn``."""
    return f"{normalize_distribution(distribution)}:{name}"


@dataclass(frozen=True)
class Provider:
    """Who provides a registered class: the plugin (module / entry point) and distribution."""

    plugin: str
    distribution: str
    version: str
    #: The hook spec version the plugin declares (``RECFORGE_HOOKSPEC_VERSION``); None: undeclared.
    hookspec: int | None = None

    @property
    def stamp(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass(frozen=True)
class Registered:
    cls: type
    provider: Provider


@dataclass(frozen=True)
class Refused:
    """A plugin (or one fragment of it) that was not loaded, and why."""

    plugin: str
    distribution: str
    version: str
    reason: str
    #: Empty for a whole plugin; ``tower 'x'`` when only one fragment was refused.
    what: str = ""

    def message(self) -> str:
        subject = f"{self.what} of plugin" if self.what else "plugin"
        who = f" ({self.distribution} {self.version})" if self.version else ""
        return f"{subject} '{self.plugin}'{who} was not loaded: {self.reason}"


class FragmentTable(dict):
    """``(kind, name) -> Registered``. Every fragment is also stored under its qualified name
    (``(kind, "recforge-dcn:dcn")``); a qualified lookup accepts any spelling of the
    distribution, so a config may say ``recforge_dcn:dcn``."""

    def __missing__(self, key: tuple[str, str]) -> Registered:
        kind, name = key
        if ":" in name:
            distribution, _, bare = name.partition(":")
            normal = (kind, qualified(distribution, bare))
            if normal != key and dict.__contains__(self, normal):
                return self[normal]
        raise KeyError(key)

    def get(self, key: tuple[str, str], default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class Registry:
    fragments: FragmentTable = field(default_factory=FragmentTable)
    passes: dict[str, Registered] = field(default_factory=dict)
    load_warnings: list[str] = field(default_factory=list)
    #: Bare names that more than one distribution registers: selectable only when qualified.
    clashes: dict[tuple[str, str], list[Registered]] = field(default_factory=dict)
    #: Plugins, or single fragments, that were refused at load time.
    refused: list[Refused] = field(default_factory=list)
    refused_fragments: dict[tuple[str, str], Refused] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        return sorted({kind for kind, _ in self.fragments} | {kind for kind, _ in self.clashes})

    def names(self, kind: str) -> list[str]:
        """The names a config may use for ``kind`` (bare names; clashing ones included)."""
        bare = {name for k, name in self.fragments if k == kind and ":" not in name}
        return sorted(bare | {name for k, name in self.clashes if k == kind})

    def entries(self) -> list[tuple[str, str, Registered]]:
        """Every registered fragment once, as ``(kind, bare name, Registered)``."""
        rows = [(kind, name.partition(":")[2], registered)
                for (kind, name), registered in dict.items(self.fragments) if ":" in name]
        return sorted(rows, key=lambda row: (row[0], row[1], row[2].provider.distribution))

    def fragment(self, kind: str, name: str, *, key: str) -> Registered:
        """The fragment ``name`` of ``kind``, or a ConfigError at ``key`` listing the choices."""
        if ":" in name:
            return self._qualified(kind, name, key)
        clash = self.clashes.get((kind, name))
        if clash is not None:
            who = " and ".join(f"{r.provider.distribution} {r.provider.version} "
                               f"(plugin '{r.provider.plugin}')" for r in clash)
            choices = " or ".join(f"'{qualified(r.provider.distribution, name)}'" for r in clash)
            raise ConfigError(key, f"{kind} '{name}' is registered by more than one plugin "
                                   f"distribution: {who}; name one explicitly: {choices}")
        found = self.fragments.get((kind, name))
        refused = self.refused_fragments.get((kind, name))
        if found is None and refused is not None:
            raise PluginError(refused.message())
        if found is None:
            known = self.names(kind)
            raise ConfigError(
                key,
                f"unknown {kind} '{name}' (registered: {', '.join(known) or 'none'})",
                suggestion=did_you_mean(name, known),
                hint=self._not_loaded_hint(),
            )
        return found

    def _qualified(self, kind: str, name: str, key: str) -> Registered:
        distribution, _, bare = name.partition(":")
        found = self.fragments.get((kind, name))
        if found is not None:
            return found
        providers = sorted({normalize_distribution(r.provider.distribution)
                            for k, n, r in self.entries() if k == kind and n == bare})
        if providers:
            closest = did_you_mean(normalize_distribution(distribution), providers)
            raise ConfigError(
                key,
                f"{kind} '{bare}' is not provided by '{distribution}' (provided by: "
                f"{', '.join(providers)})",
                suggestion=qualified(closest, bare) if closest else None,
            )
        known = self.names(kind)
        raise ConfigError(
            key,
            f"unknown {kind} '{bare}' (registered: {', '.join(known) or 'none'})",
            suggestion=did_you_mean(bare, known),
            hint=self._not_loaded_hint(),
        )

    def _not_loaded_hint(self) -> str | None:
        plugins = [r for r in self.refused if not r.what]
        if not plugins:
            return None
        return "; ".join(r.message() for r in plugins)

    def passes_for(self, uses: Iterable[FragmentUse]) -> dict[str, Registered]:
        """The passes a compile of these fragment uses runs, by name.

        Built-in passes always run. A third-party plugin's passes run on the compiles that use
        one of its fragments, so installing a plugin never changes the output of configs that
        don't use it; a plugin that registers passes but no fragments (a lint plugin) has its
        passes run on every compile.
        """
        used = {self.fragments[(use.kind, use.name)].provider.distribution for use in uses}
        with_fragments = {r.provider.distribution for _, _, r in self.entries()}
        return {
            name: registered for name, registered in sorted(self.passes.items())
            if registered.provider.distribution in used
            or registered.provider.distribution not in with_fragments
        }


def _builtin_provider(module: str) -> Provider:
    return Provider(plugin=module, distribution=PROJECT_NAME, version=__version__,
                    hookspec=hookspecs.HOOKSPEC_VERSION)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(pm: pluggy.PluginManager) -> tuple[dict[str, Provider], list[Refused]]:
    """Register built-ins and installed entry points; returns providers and refused plugins."""
    providers: dict[str, Provider] = {}
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        _register(pm, module, module_name, _builtin_provider(module_name))
        providers[module_name] = _builtin_provider(module_name)

    refused: list[Refused] = []
    for entry_point in selected_entry_points(refused):
        dist = entry_point.dist
        provider = Provider(
            plugin=entry_point.name,
            distribution=dist.name if dist else entry_point.value,
            version=dist.version if dist else "unknown",
        )
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken plugin must not break configs that don't use it
            refused.append(Refused(provider.plugin, provider.distribution, provider.version,
                                   f"it raised at import: {type(error).__name__}: {error}"))
            continue
        declared, problem = _hookspec_problem(plugin)
        if problem:
            refused.append(Refused(provider.plugin, provider.distribution, provider.version,
                                   problem))
            continue
        if pm.is_registered(plugin) or pm.has_plugin(entry_point.name):
            continue
        provider = dataclasses.replace(provider, hookspec=declared)
        _register(pm, plugin, entry_point.name, provider)
        providers[entry_point.name] = provider
    return providers, refused


def selected_entry_points(refused: list[Refused] | None = None) -> list[metadata.EntryPoint]:
    """The ``recforge`` entry points the environment variables allow, sorted by name.

    An allow-list name that matches no installed plugin is reported in ``refused`` (it is
    almost always a typo, and would otherwise silently load nothing).
    """
    found = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                   key=lambda ep: (ep.name, ep.dist.name if ep.dist else ""))
    allowed = [n.strip() for n in os.environ.get(ENV_ALLOW, "").split(",") if n.strip()]
    if not allowed:
        disabled = os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip() not in ("", "0")
        return [] if disabled else found

    def names(ep: metadata.EntryPoint) -> set[str]:
        return {ep.name, normalize_distribution(ep.dist.name)} if ep.dist else {ep.name}

    wanted = {normalize_distribution(n) for n in allowed} | set(allowed)
    chosen = [ep for ep in found if names(ep) & wanted]
    matched = set().union(*(names(ep) for ep in chosen)) if chosen else set()
    for name in allowed:
        if name not in matched and normalize_distribution(name) not in matched and \
                refused is not None:
            installed = sorted({n for ep in found for n in names(ep)})
            refused.append(Refused(name, name, "", f"{ENV_ALLOW} names it, but no installed "
                                   f"plugin has that name (installed: "
                                   f"{', '.join(installed) or 'none'})"))
    return chosen


def _hookspec_problem(plugin: Any) -> tuple[int | None, str | None]:
    """(declared version, why it is refused or None)."""
    declared = getattr(plugin, HOOKSPEC_ATTRIBUTE, None)
    if declared is None:
        return None, None
    try:
        version = int(declared)
    except (TypeError, ValueError):
        return None, f"{HOOKSPEC_ATTRIBUTE} must be an integer, got {declared!r}"
    if version != hookspecs.HOOKSPEC_VERSION:
        return version, (
            f"it targets recforge hook spec version {version}, but recforge {__version__} "
            f"provides version {hookspecs.HOOKSPEC_VERSION}; install a release of the plugin "
            f"built for hook spec {hookspecs.HOOKSPEC_VERSION}"
        )
    return version, None


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, provider: Provider) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as error:  # e.g. a hook with a wrong argument name
        raise PluginError(f"plugin '{provider.plugin}' ({provider.stamp}) has an invalid hook "
                          f"implementation: {error}") from None


def check_hooks(pm: pluggy.PluginManager, providers: dict[str, Provider]) -> None:
    """Every hook implementation must match a hook spec: a misspelled one is an error."""
    known = sorted(name for name, caller in vars(pm.hook).items()
                   if not name.startswith("_") and caller.has_spec())
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            provider = providers.get(impl.plugin_name, _builtin_provider(impl.plugin_name))
            suggestion = did_you_mean(name, known)
            raise PluginError(
                f"plugin '{provider.plugin}' ({provider.stamp}) implements unknown hook "
                f"'{name}' (recforge hooks: {', '.join(known)})"
                + (f"; did you mean '{suggestion}'?" if suggestion else "")
            )
    try:  # pluggy's own check, in case it learns more than the loop above
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"invalid plugin hook: {error}") from None


def build_registry(pm: pluggy.PluginManager, providers: dict[str, Provider]) -> Registry:
    """Call every plugin's ``register_*`` hooks, attributing each class to its plugin."""
    check_hooks(pm, providers)
    registry = Registry()
    for impl in pm.hook.register_fragments.get_hookimpls():
        provider = providers.get(impl.plugin_name, _builtin_provider(impl.plugin_name))
        for cls in _call(impl, provider):
            _add_fragment(registry, cls, provider)
    for impl in pm.hook.register_passes.get_hookimpls():
        provider = providers.get(impl.plugin_name, _builtin_provider(impl.plugin_name))
        for cls in _call(impl, provider):
            _add_pass(registry, cls, provider)
    return registry


def _call(impl: pluggy.HookImpl, provider: Provider) -> list[type]:
    try:
        return list(impl.function() or [])
    except Exception as error:
        raise PluginError(
            f"plugin '{provider.plugin}' ({provider.distribution}) raised in "
            f"{impl.function.__name__}: {type(error).__name__}: {error}"
        ) from None


def fragment_problem(cls: Any) -> str | None:
    """What makes ``cls`` unusable as a fragment, or None."""
    if not isinstance(cls, type) or not issubclass(cls, Fragment):
        return f"{cls!r} is not a compiler.fragments.Fragment subclass"
    kind, name = getattr(cls, "kind", None), getattr(cls, "name", None)
    if not isinstance(kind, str) or not FRAGMENT_NAME.match(kind):
        return f"{cls.__qualname__}.kind must be a lower-case identifier, got {kind!r}"
    if not isinstance(name, str) or not FRAGMENT_NAME.match(name):
        return f"{cls.__qualname__}.name must be a lower-case identifier, got {name!r}"
    if cls.contribute is Fragment.contribute:
        return f"{cls.__qualname__} does not implement contribute()"
    if cls.target not in (TRAINER_FILE, TRANSFORM_FILE):
        return f"{cls.__qualname__}.target must be {TRAINER_FILE} or {TRANSFORM_FILE}"
    declared = declaration_problem(cls)  # provides / requires / slots / fills
    if declared is not None:
        return declared
    params = getattr(cls, "Params", None)
    if params is not None:
        if not dataclasses.is_dataclass(params) or not isinstance(params, type):
            return f"{cls.__qualname__}.Params must be a dataclass"

        try:
            OmegaConf.structured(params)
        except OmegaConfBaseException as error:
            first = str(error).strip().splitlines()[0]
            return f"{cls.__qualname__}.Params is not a valid config schema: {first}"
    return None


def _add_fragment(registry: Registry, cls: type, provider: Provider) -> None:
    problem = fragment_problem(cls)
    if problem is not None:
        kind, name = getattr(cls, "kind", None), getattr(cls, "name", None)
        what = f"{kind} '{name}'" if isinstance(kind, str) and isinstance(name, str) \
            else "a fragment"
        refused = Refused(provider.plugin, provider.distribution, provider.version, problem,
                          what=what)
        registry.refused.append(refused)
        if isinstance(kind, str) and isinstance(name, str):
            registry.refused_fragments[(kind, name)] = refused
        return
    kind, name = cls.kind, cls.name  # type: ignore[attr-defined]
    entry = Registered(cls, provider)
    full = (kind, qualified(provider.distribution, name))
    existing = dict.get(registry.fragments, full)
    if existing is not None:
        if existing.cls is cls:
            return
        raise PluginError(  # one distribution cannot be told apart from itself
            f"{kind} fragment '{name}' is registered twice by {provider.distribution}: by "
            f"plugin '{existing.provider.plugin}' and by plugin '{provider.plugin}'"
        )
    registry.fragments[full] = entry
    bare = (kind, name)
    if bare in registry.clashes:
        registry.clashes[bare].append(entry)
    elif bare in registry.fragments:
        if registry.fragments[bare].cls is not cls:  # the same class twice is no conflict
            registry.clashes[bare] = [registry.fragments.pop(bare), entry]
    else:
        registry.fragments[bare] = entry


def _add_pass(registry: Registry, cls: type, provider: Provider) -> None:
    existing = registry.passes.get(cls.name)  # type: ignore[attr-defined]
    if existing is not None and existing.cls is not cls:
        raise PluginError(  # passes are not chosen by config, so a clash cannot be resolved
            f"pass '{cls.name}' is registered twice: by {existing.provider.distribution} "  # type: ignore[attr-defined]
            f"({existing.provider.plugin}) and by {provider.distribution} ({provider.plugin})"
        )
    registry.passes[cls.name] = Registered(cls, provider)  # type: ignore[attr-defined]


def builtin_registry() -> Registry:
    """A registry of recforge's own plugins only, whatever else is installed (for the docs)."""
    pm = make_plugin_manager()
    providers = {}
    for module_name in BUILTIN_PLUGINS:
        _register(pm, importlib.import_module(module_name), module_name,
                  _builtin_provider(module_name))
        providers[module_name] = _builtin_provider(module_name)
    return build_registry(pm, providers)


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (plugins load once; tests call ``get_registry.cache_clear()``)."""
    pm = make_plugin_manager()
    providers, refused = load_plugins(pm)
    registry = build_registry(pm, providers)
    registry.refused[:0] = refused
    for problem in registry.refused:
        registry.load_warnings.append(problem.message())
        warnings.warn(problem.message(), PluginWarning, stacklevel=2)
    return registry


def plugin_modules(pm: pluggy.PluginManager) -> list[ModuleType]:
    return [p for p in pm.get_plugins() if isinstance(p, ModuleType)]
