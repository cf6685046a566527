"""The conformance kit (compiler.testing.check_plugin) over the built-in fragments, the example
package, and a deliberately broken plugin.

The checks that import the emitted modules start one Python process with TensorFlow each
(~10 s); the compile-only runs are fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from compiler.fragments.registry import PluginWarning, get_registry
from compiler.testing import ConformanceError, check_plugin
from tests.plugin_fixtures import FIXTURES, forget_fixture_modules, install_example_package


@pytest.fixture(scope="module", autouse=True)
def example_package() -> None:
    install_example_package()
    get_registry.cache_clear()


@pytest.fixture
def broken_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(FIXTURES / "broken"))
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()
    forget_fixture_modules()


@pytest.mark.slow
def test_builtin_fragments_compile_and_pass_without_importing() -> None:
    report = check_plugin("recforge", import_modules=False)
    builtins = {f"{kind}/{name}" for kind, name, registered in get_registry().entries()
                if registered.provider.distribution == "recforge"}
    assert set(report.fragments) == builtins and len(builtins) >= 25
    assert "pyflakes" in report.passes
    assert report.compiles >= 10 and report.warnings == []


@pytest.mark.slow
def test_every_builtin_fragment_conforms() -> None:
    report = check_plugin("recforge")
    assert report.ok and report.imported == report.compiles


EXAMPLE_FRAGMENTS = ["callback/epoch_time", "evaluator/ndcg_at_k",
                     "retrieval_loss/sampled_softmax", "tower/dcn"]


@pytest.mark.slow
def test_the_example_package_compiles_and_keeps_its_contract_without_importing() -> None:
    # Each example also checks the fragment's provides / requires against its code.
    report = check_plugin("recforge-dcn", import_modules=False)
    assert report.fragments == EXAMPLE_FRAGMENTS and report.compiles == 7


@pytest.mark.slow
def test_the_example_package_conforms() -> None:
    report = check_plugin("recforge-dcn")
    assert report.fragments == EXAMPLE_FRAGMENTS
    assert report.passes == ["dcn-cross-stack-x0"]
    assert report.ok and report.imported == report.compiles == 7


@pytest.mark.slow
def test_a_broken_plugin_fails_with_one_useful_line_per_problem(broken_plugin) -> None:
    with pytest.warns(PluginWarning), pytest.raises(ConformanceError) as raised:
        check_plugin("recforge_broken")
    report = raised.value.report
    lines = str(raised.value).splitlines()
    assert lines[0].endswith("5 problem(s)")
    by_subject = {p.subject: p.message for p in report.problems if p.subject != "plugin "
                  "recforge_broken"}
    assert "fails static passes" in by_subject["tower/leaky"]
    assert "pyflakes undefined name 'HIDDEN_WIDTH'" in by_subject["tower/leaky"]
    assert "(in the block of tower/leaky (buyer) · recforge-broken 0.1.0)" in \
        by_subject["tower/leaky"]
    assert "trainer_module.py does not import: AttributeError" in by_subject["tower/crash"]
    assert "NoSuchLayer" in by_subject["tower/crash"]
    assert "no EXAMPLES" in by_subject["loss/ghost"] and "model.loss=ghost" in \
        by_subject["loss/ghost"]
    plugin_level = [p.message for p in report.problems if p.subject.startswith("plugin ")]
    assert any("Params is not a valid config schema" in m for m in plugin_level)
    assert any("RECFORGE_HOOKSPEC_VERSION" in m for m in plugin_level)


def test_an_unknown_plugin_name_says_what_is_loaded() -> None:
    with pytest.raises(ConformanceError, match=r"no loaded plugin is called 'recforge-dnc' "
                                               r"\(loaded distributions: recforge, "
                                               r"recforge-dcn\)"):
        check_plugin("recforge-dnc", import_modules=False)
