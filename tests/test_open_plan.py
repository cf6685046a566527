"""The open plan: fragments declare what they provide and require, the build checks it before
any code is built, and the evaluator / callback / export lists come from config."""

from __future__ import annotations

import importlib
import types
from pathlib import Path
from typing import ClassVar

import pytest

from compiler import hookimpl
from compiler.core.compose import compose
from compiler.core.pipeline import compile_config, compile_overrides
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.errors import ConfigError, PluginError
from compiler.fragments import Fragment, Section, statements
from compiler.fragments.contract import declaration_problem
from compiler.fragments.registry import (
    BUILTIN_PLUGINS,
    Provider,
    Registry,
    build_registry,
    get_registry,
    make_plugin_manager,
)
from compiler.model import VALUES
from compiler.preflight import check_objective, objective_metrics
from compiler.testing import check_plugin
from tests.plugin_fixtures import install_example_package

STEP = """
if test_dataset is not None:
    metrics["final"]["needy"] = 1.0
"""


class NeedyEvaluator(Fragment):
    """Requires a value no fragment provides."""

    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "needy"
    description: ClassVar[str] = "needs a buyer history nobody provides"
    requires: ClassVar[tuple[str, ...]] = ("buyer_history", "datasets", "metrics")
    fills: ClassVar[tuple[str, ...]] = ("evaluate",)

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        out.add_to_function("run_fn", statements(STEP))


class SecondIndex(Fragment):
    """Provides 'index', which the selected retrieval_index provides too."""

    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "second_index"
    description: ClassVar[str] = "a second index"
    provides: ClassVar[tuple[str, ...]] = ("index",)

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        out.add(Section.EVALUATION, statements("SECOND = 1\n"))


class UndeclaredReader(Fragment):
    """Reads TARGET_KEY (the task's ``target_key``) without declaring it."""

    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "undeclared"
    description: ClassVar[str] = "reads TARGET_KEY without saying so"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.evaluators=[recall_at_k,undeclared]"]]
    requires: ClassVar[tuple[str, ...]] = ("datasets", "metrics")
    fills: ClassVar[tuple[str, ...]] = ("evaluate",)

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        out.add_to_function("run_fn", statements('metrics["final"]["key"] = TARGET_KEY\n'))


class EmptyPromise(Fragment):
    """Declares that it provides 'top_k' but defines no TOP_K."""

    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "empty_promise"
    description: ClassVar[str] = "promises TOP_K"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.evaluators=[regression,empty_promise]"]]
    provides: ClassVar[tuple[str, ...]] = ("top_k",)

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        out.add(Section.EVALUATION, statements("TOP_CAY = (5,)\n"))


class SilentFiller(Fragment):
    """Adds code to run_fn without declaring a slot."""

    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "silent"
    description: ClassVar[str] = "fills run_fn without saying so"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.evaluators=[recall_at_k,silent]"]]
    requires: ClassVar[tuple[str, ...]] = ("metrics",)

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        out.add_to_function("run_fn", statements('metrics["final"]["silent"] = 0.0\n'))


class UnknownSlot(Fragment):
    kind: ClassVar[str] = "callback"
    name: ClassVar[str] = "misplaced"
    fills: ClassVar[tuple[str, ...]] = ("after_training",)

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        pass


def registry_with(*classes: type[Fragment], distribution: str = "recforge-test") -> Registry:
    """The built-ins plus one third-party plugin registering ``classes``."""
    pm = make_plugin_manager()
    providers = {}
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        providers[module_name] = Provider(module_name, "recforge", "0.1.0", 1)
    module = types.ModuleType("recforge_test")
    module.register_fragments = hookimpl(lambda: list(classes))  # type: ignore[attr-defined]
    pm.register(module, name="test")
    providers["test"] = Provider("test", distribution, "0.1.0", 1)
    return build_registry(pm, providers)


# -- the declaration check ------------------------------------------------------------------


def test_an_unmet_requires_fails_the_compile_naming_the_fragment_and_writes_nothing(
        tmp_path: Path) -> None:
    registry = registry_with(NeedyEvaluator)
    overrides = ["model=hybrid_v1", "features=cherng_v3",
                 "model.evaluators=[recall_at_k,regression,needy]"]
    output = tmp_path / "out"
    with pytest.raises(PluginError) as raised:
        compile_config(compose(overrides), output_dir=output, registry=registry)
    message = str(raised.value)
    assert message.startswith("evaluator 'needy' (recforge-test 0.1.0, model.evaluators[2]) "
                              "requires 'buyer_history', which no selected fragment provides")
    assert "\n" not in message
    assert not output.exists()


def test_a_provider_that_is_registered_but_not_selected_is_named() -> None:
    with pytest.raises(PluginError) as raised:
        compile_overrides(["model=retrieval_v1", "features=cherng_v3", "model.evaluators=[]"],
                          write=False)
    assert str(raised.value) == (
        "retrieval_index 'brute_force' (recforge 0.1.0, model.retrieval_algorithm) requires "
        "'top_k', which no selected fragment provides; evaluator 'recall_at_k' (recforge) "
        "provides it but is not selected")


def test_two_providers_of_one_value_are_an_error_naming_both() -> None:
    registry = registry_with(SecondIndex)
    with pytest.raises(PluginError) as raised:
        compile_config(compose(["model=retrieval_v1", "features=cherng_v3",
                                "model.evaluators=[recall_at_k,second_index]"]),
                       write=False, registry=registry)
    assert "'index' is provided by two selected fragments: retrieval_index 'brute_force'" \
        in str(raised.value)
    assert "evaluator 'second_index' (recforge-test 0.1.0" in str(raised.value)


def test_a_fragment_filling_an_unknown_slot_is_refused_at_load() -> None:
    assert declaration_problem(UnknownSlot) == (
        "UnknownSlot.fills: expected run_fn slots (callbacks, after_fit, evaluate, export), "
        "got 'after_training'")
    registry = registry_with(UnknownSlot)
    assert ("callback", "misplaced") in registry.refused_fragments
    with pytest.raises(PluginError, match="after_training"):
        registry.fragment("callback", "misplaced", key="model.callbacks[0]")


def test_every_builtin_value_is_declared_by_some_builtin_fragment() -> None:
    provided = {value.replace("{role}", side)
                for _, _, registered in get_registry().entries()
                if registered.provider.distribution == "recforge"
                for value in registered.cls.provides for side in ("buyer", "product")}
    assert set(VALUES) <= provided


# -- the config lists ------------------------------------------------------------------------


def kinds_and_names(overrides: list[str], kind: str) -> list[str]:
    the_plan = plan(validate(compose(overrides)))
    return [use.name for use in the_plan.uses if use.kind == kind]


@pytest.mark.parametrize(("model", "evaluators"), [
    ("hybrid_v1", ["recall_at_k", "regression"]),
    ("retrieval_v1", ["recall_at_k"]),
    ("ranking_v1", ["regression"]),
])
def test_the_default_lists_are_the_trainers_of_before(model: str, evaluators: list[str]) -> None:
    overrides = [f"model={model}", "features=cherng_v3"]
    assert kinds_and_names(overrides, "evaluator") == evaluators
    assert kinds_and_names(overrides, "callback") == ["tensorboard"]
    assert kinds_and_names(overrides, "export") == ["serving"]
    # Naming the defaults explicitly emits the same trainer (the config hash line aside).
    default = compile_overrides(overrides, write=False).sources["trainer_module.py"]
    explicit = compile_overrides(
        [*overrides, f"model.evaluators=[{','.join(evaluators)}]"], write=False,
    ).sources["trainer_module.py"]
    strip = lambda text: [line for line in text.splitlines() if "config-hash" not in line]  # noqa: E731
    assert strip(default) == strip(explicit)


@pytest.mark.parametrize(("override", "key", "problem"), [
    ("model.evaluators=[recall_at_k,recal_at_k]", "model.evaluators[1]",
     "unknown evaluator 'recal_at_k'"),
    ("model.evaluators=[regression,regression]", "model.evaluators[1]",
     "expected each evaluator once, got 'regression' twice"),
    ("model.callbacks=[tensorbord]", "model.callbacks[0]", "unknown callback 'tensorbord'"),
    ("model.exports=[]", "model.exports", "expected at least one export"),
])
def test_the_lists_are_checked_in_validate(override: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate(compose(["model=hybrid_v1", "features=cherng_v3", override]))
    assert raised.value.key == key
    assert problem in raised.value.problem


def test_an_evaluator_needing_ranking_on_a_retrieval_model_fails_in_validate() -> None:
    with pytest.raises(ConfigError) as raised:
        validate(compose(["model=retrieval_v1", "features=cherng_v3",
                          "model.evaluators=[recall_at_k,regression]"]))
    assert str(raised.value) == (
        "model.evaluators[1]: expected evaluators that a retrieval model supports, got "
        "'regression', which requires 'target_key' (provided by model_type multitask, ranking)")


def test_unknown_list_names_suggest_the_closest() -> None:
    with pytest.raises(ConfigError) as raised:
        validate(compose(["model=hybrid_v1", "features=cherng_v3",
                          "model.evaluators=[recall_at_k,regresion]"]))
    assert raised.value.suggestion == "regression"


# -- the conformance kit ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_conformance_kit_checks_declarations_against_the_code() -> None:
    registry = registry_with(UndeclaredReader, EmptyPromise, SilentFiller)
    report = check_plugin("recforge-test", registry=registry, import_modules=False,
                          raise_on_failure=False)
    problems = [str(problem) for problem in report.problems]
    assert any(p.startswith("evaluator/undeclared") and "reads TARGET_KEY (value 'target_key')"
               " but does not declare it" in p for p in problems), problems
    assert any(p.startswith("evaluator/empty_promise") and "provides 'top_k', but its code "
               "does not define TOP_K" in p for p in problems), problems
    assert any(p.startswith("evaluator/silent") and "adds code to run_fn but declares no slot"
               in p for p in problems), problems
    # The missing TOP_K also fails pyflakes, after the build; nothing else is reported.
    assert any("pyflakes undefined name 'TOP_K'" in p for p in problems)
    assert len(problems) == 4, problems


# -- the metrics a plugin's evaluator writes are objectives ------------------------------------


def test_a_plugin_evaluators_declared_metrics_are_valid_sweep_objectives() -> None:
    install_example_package()
    get_registry.cache_clear()
    config = validate(compose(["model=hybrid_dcn", "features=cherng_v3", "model.top_k=[5,10]"]))
    written = objective_metrics(config)
    assert {"loss", "recall_at_10", "test_rmse", "ndcg_at_5", "val_ndcg_at_10"} <= set(written)
    assert check_objective("ndcg_at_10", written) == "ndcg_at_10"
    # Without the evaluator in model.evaluators, NDCG is not written, so not an objective.
    plain = objective_metrics(validate(compose(["model=hybrid_v1", "features=cherng_v3"])))
    with pytest.raises(ConfigError, match="expected a metric the run writes"):
        check_objective("ndcg_at_10", plain)
