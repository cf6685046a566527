"""The fragment registry: built-ins, clashes, misspelled hooks, unknown names."""

from __future__ import annotations

import types
from typing import ClassVar

import pytest

from compiler import hookimpl
from compiler.errors import ConfigError, PluginError
from compiler.fragments import Fragment
from compiler.fragments.registry import (
    BUILTIN_PLUGINS,
    Provider,
    build_registry,
    get_registry,
    make_plugin_manager,
)


def plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


class Twin(Fragment):
    kind: ClassVar[str] = "optimizer"
    name: ClassVar[str] = "adam"

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001 - never built here
        pass


def test_builtins_register_every_kind_the_plan_uses() -> None:
    registry = get_registry()
    assert {"tower", "head", "loss", "retrieval_loss", "task", "optimizer", "retrieval_index",
            "evaluator", "input", "encoder", "export", "trainer", "transform",
            "feature_transform", "candidates"} <= set(registry.kinds())
    assert registry.names("task") == ["multitask", "ranking", "retrieval"]
    assert all(r.provider.distribution == "recforge" for r in registry.fragments.values()
               if r.provider.plugin in BUILTIN_PLUGINS)
    assert {"double-batching", "gcs-local-io", "pyflakes"} <= set(registry.passes)
    assert len(BUILTIN_PLUGINS) == len(set(BUILTIN_PLUGINS))


def test_two_plugins_registering_one_name_is_an_error_naming_both() -> None:
    pm = make_plugin_manager()
    pm.register(plugin("first_pkg.towers", register_fragments=lambda: [Twin]), name="first")

    class OtherTwin(Twin):
        pass

    pm.register(plugin("second_pkg.towers", register_fragments=lambda: [OtherTwin]),
                name="second")
    providers = {"first": Provider("first", "first-pkg", "1.0"),
                 "second": Provider("second", "second-pkg", "2.0")}
    registry = build_registry(pm, providers)  # a clash only matters to configs that use it
    with pytest.raises(ConfigError) as raised:
        registry.fragment("optimizer", "adam", key="model.optimizer")
    assert "optimizer 'adam'" in str(raised.value)
    assert "first-pkg" in str(raised.value) and "second-pkg" in str(raised.value)
    assert registry.fragment("optimizer", "second_pkg:adam", key="model.optimizer").cls \
        is OtherTwin


def test_a_misspelled_hook_fails_loudly() -> None:
    pm = make_plugin_manager()
    pm.register(plugin("typo_pkg", register_fragment=lambda: [Twin]), name="typo")
    with pytest.raises(PluginError) as raised:
        build_registry(pm, {})
    assert "register_fragment" in str(raised.value)


def test_a_plugin_hook_that_raises_names_the_plugin() -> None:
    def broken() -> list:
        raise RuntimeError("boom")

    pm = make_plugin_manager()
    pm.register(plugin("broken_pkg", register_fragments=broken), name="broken")
    with pytest.raises(PluginError) as raised:
        build_registry(pm, {"broken": Provider("broken", "broken-pkg", "0.1")})
    assert "broken-pkg" in str(raised.value) and "boom" in str(raised.value)


def test_unknown_name_lists_registered_names() -> None:
    with pytest.raises(ConfigError) as raised:
        get_registry().fragment("retrieval_index", "annoy", key="model.retrieval_algorithm")
    assert raised.value.key == "model.retrieval_algorithm"
    assert "brute_force" in raised.value.problem and "scann" in raised.value.problem
