"""Third-party plugins: discovery, listing, compatibility, config, clashes, bad input, and the
example package (examples/recforge-dcn) end to end.

The example package is pip-installed (editable) into the test environment; the broken test
plugins in tests/plugin_fixtures are only put on sys.path, one test at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pandas as pd
import pytest

from compiler.core.pipeline import compile_overrides
from compiler.errors import ConfigError, PassFailure, PluginError
from compiler.fragments.registry import ENV_ALLOW, ENV_DISABLE_AUTOLOAD, PluginWarning, get_registry
from tests.compile_helpers import ROOT
from tests.plugin_fixtures import FIXTURES, forget_fixture_modules, install_example_package
from tests.tiny_data import tiny_transactions

DCN = "recforge-dcn"


@pytest.fixture(scope="module", autouse=True)
def example_package() -> None:
    install_example_package()
    get_registry.cache_clear()


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A fresh registry for this test (sites/env set through the monkeypatch), and after it."""
    for name in (ENV_ALLOW, ENV_DISABLE_AUTOLOAD):
        monkeypatch.delenv(name, raising=False)
    get_registry.cache_clear()
    yield monkeypatch
    get_registry.cache_clear()
    forget_fixture_modules()


def with_sites(monkeypatch: pytest.MonkeyPatch, *sites: str) -> None:
    for site in sites:
        monkeypatch.syspath_prepend(str(FIXTURES / site))


def compile_sources(*overrides: str, features: str = "cherng_v3") -> dict[str, str]:
    result = compile_overrides([*overrides, f"features={features}"], write=False)
    return result.sources


def run_module(module: str, *args: str, extra_path: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    for name in (ENV_ALLOW, ENV_DISABLE_AUTOLOAD):
        if name not in (env or {}):
            environment.pop(name, None)
    if extra_path:
        environment["PYTHONPATH"] = os.pathsep.join(
            [extra_path, *filter(None, [environment.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


# -- discovery and listing -------------------------------------------------------------------


def test_installed_plugin_is_discovered_with_its_distribution(plugins) -> None:
    registry = get_registry()
    tower = registry.fragment("tower", "dcn", key="model.buyer_tower.type")
    assert (tower.provider.distribution, tower.provider.version) == (DCN, "0.1.0")
    assert tower.provider.plugin == "dcn" and tower.provider.hookspec == 1
    assert registry.fragment("retrieval_loss", "sampled_softmax", key="k").provider \
        .distribution == DCN
    assert registry.passes["dcn-cross-stack-x0"].provider.distribution == DCN


@pytest.mark.slow
def test_plugins_cli_lists_every_fragment_and_pass_with_versions() -> None:
    done = run_module("compiler.plugins", "--format", "json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    rows = {(e["kind"], e["name"]): e for e in listing["entries"]}
    assert listing["hookspec"] == 1
    assert rows[("tower", "dcn")] | {"description": ""} == {
        "kind": "tower", "name": "dcn", "select_as": "dcn", "distribution": DCN,
        "version": "0.1.0", "hookspec": 1, "plugin": "dcn", "description": "",
        "params": ["cross_layers", "projection_dim"],
    }
    assert rows[("retrieval_loss", "sampled_softmax")]["distribution"] == DCN
    assert rows[("pass", "dcn-cross-stack-x0")]["version"] == "0.1.0"
    assert rows[("tower", "mlp")]["distribution"] == "recforge"
    assert rows[("pass", "pyflakes")]["hookspec"] == 1
    table = run_module("compiler.plugins").stdout
    assert any(line.split()[:4] == ["tower", "dcn", DCN, "0.1.0"] for line in table.splitlines())


def test_autoload_can_be_turned_off_and_restricted(plugins) -> None:
    plugins.setenv(ENV_DISABLE_AUTOLOAD, "1")
    assert "dcn" not in get_registry().names("tower")
    for allowed in ("dcn", "recforge_dcn"):  # entry-point or (any spelling of) distribution
        plugins.setenv(ENV_ALLOW, allowed)
        get_registry.cache_clear()
        assert "dcn" in get_registry().names("tower")
    plugins.delenv(ENV_DISABLE_AUTOLOAD)
    plugins.setenv(ENV_ALLOW, "dnc")
    get_registry.cache_clear()
    with pytest.warns(PluginWarning, match=r"RECFORGE_PLUGINS names it.*installed: .*dcn"):
        registry = get_registry()
    assert "dcn" not in registry.names("tower")


def test_hybrid_dcn_without_the_plugin_is_one_clear_error(plugins) -> None:
    plugins.setenv(ENV_DISABLE_AUTOLOAD, "1")
    with pytest.raises(ConfigError) as raised:
        compile_sources("model=hybrid_dcn")
    assert str(raised.value) == "model.buyer_tower.type: unknown tower 'dcn' (registered: mlp)"


# -- compile with the plugin: provenance, passes, determinism ---------------------------------


def test_hybrid_dcn_compiles_with_provenance_and_the_plugin_pass(tmp_path) -> None:
    result = compile_overrides(["model=hybrid_dcn", "features=cherng_v3"],
                               output_dir=tmp_path)
    trainer = (tmp_path / "trainer_module.py").read_text()
    transform = (tmp_path / "transform_module.py").read_text()
    assert "# plugins: recforge 0.1.0, recforge-dcn 0.1.0" in trainer.splitlines()[:3]
    assert "# plugins: recforge 0.1.0" in transform.splitlines()[:3]  # DCN adds no transform
    assert "# [tower/dcn (buyer) · recforge-dcn 0.1.0]" in trainer
    assert "# [retrieval_loss/sampled_softmax · recforge-dcn 0.1.0]" in trainer
    assert "tfrs.layers.dcn.Cross(" in trainer and "x = cross(x0, x)" in trainer
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    towers = [f for f in manifest["fragments"] if f["kind"] == "tower"]
    assert {(f["distribution"], f["version"], f["params"]["cross_layers"]) for f in towers} \
        == {(DCN, "0.1.0", 2)}
    assert manifest["passes"]["run"]["dcn-cross-stack-x0"] == {"distribution": DCN,
                                                                "version": "0.1.0"}
    assert result.errors == []


def test_an_installed_plugin_does_not_change_configs_that_do_not_use_it(plugins) -> None:
    with_plugin = compile_overrides(["model=hybrid_v1"], write=False)
    assert "dcn-cross-stack-x0" not in with_plugin.manifest["passes"]["run"]
    plugins.setenv(ENV_DISABLE_AUTOLOAD, "1")
    get_registry.cache_clear()
    without = compile_overrides(["model=hybrid_v1"], write=False)
    assert with_plugin.sources == without.sources
    assert with_plugin.manifest == without.manifest


@pytest.mark.slow
def test_the_plugin_pass_stops_a_compile_that_breaks_its_rule() -> None:
    from recforge_dcn.passes import CrossStackX0

    from compiler.passes import run_passes

    sources = compile_sources("model=hybrid_dcn")
    broken = sources["trainer_module.py"].replace("x = cross(x0, x)", "x = cross(x)")
    findings = run_passes({"trainer_module.py": broken}, [CrossStackX0])
    assert [f.rule for f in findings] == ["dcn-cross-stack-x0"]
    assert "called with one input" in findings[0].message


# -- a plugin's config ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ("model.buyer_tower.params.cross_layers=0", "model.buyer_tower.params.cross_layers",
         "expected a positive integer, got 0"),
        ("model.product_tower.params.projection_dim=abc",
         "model.product_tower.params.projection_dim", "expected integer, got 'abc'"),
        ("+model.buyer_tower.params.cross_layer=3", "model.buyer_tower.params.cross_layer",
         "unknown key 'cross_layer'"),
    ],
    ids=["value-rule", "type", "unknown-key"],
)
def test_plugin_params_are_validated_like_builtins(override, key, problem) -> None:
    with pytest.raises(ConfigError) as raised:
        compile_sources("model=hybrid_dcn", override)
    assert raised.value.key == key
    assert problem in raised.value.problem
    assert "(parameters of tower 'dcn' from recforge-dcn 0.1.0)" in str(raised.value)
    if "unknown key" in problem:
        assert raised.value.suggestion == "cross_layers"


def test_builtin_param_errors_read_as_before() -> None:
    with pytest.raises(ConfigError) as raised:
        compile_sources("model=hybrid_v1", "+model.buyer_tower.params.depth=3")
    assert str(raised.value) == \
        "model.buyer_tower.params.depth: tower 'mlp' takes no parameters"


# -- clashes and explicit names ---------------------------------------------------------------


@pytest.mark.slow
def test_a_name_clash_names_both_distributions_and_a_qualified_name_resolves_it(plugins
                                                                                  ) -> None:
    with_sites(plugins, "clashing_dcn")
    with pytest.raises(ConfigError) as raised:
        compile_sources("model=hybrid_dcn")
    message = str(raised.value)
    assert raised.value.key == "model.buyer_tower.type"
    assert "recforge-dcn 0.1.0" in message and "recforge-otherdcn 0.3.0" in message
    assert "'recforge-dcn:dcn' or 'recforge-otherdcn:dcn'" in message
    sources = compile_sources("model=hybrid_dcn", "model.buyer_tower.type=recforge_dcn:dcn",
                              "model.product_tower.type=recforge-dcn:dcn")
    assert "# [tower/dcn (product) · recforge-dcn 0.1.0]" in sources["trainer_module.py"]
    compile_sources("model=hybrid_v1")  # configs that don't use the name are unaffected


# -- bad plugins: each one clear message naming the plugin -------------------------------------


def test_a_plugin_that_raises_at_import_is_skipped_with_a_warning(plugins) -> None:
    with_sites(plugins, "raises_at_import")
    with pytest.warns(PluginWarning, match=r"'raises' \(recforge-raises 0\.1\.0\) was not "
                                           r"loaded: it raised at import: RuntimeError"):
        sources = compile_sources("model=hybrid_v1")
    assert "recforge-raises" not in sources["trainer_module.py"]
    with pytest.raises(ConfigError) as raised:
        compile_sources("model=hybrid_v1", "model.buyer_tower.type=raises")
    assert "recforge-raises 0.1.0" in str(raised.value)


@pytest.mark.slow
def test_a_plugin_that_raises_at_import_does_not_break_the_cli(tmp_path) -> None:
    done = run_module("compiler", "model=hybrid_v1", f"output_dir={tmp_path}",
                      extra_path=str(FIXTURES / "raises_at_import"))
    assert done.returncode == 0, done.stderr
    assert "recforge-raises 0.1.0" in done.stderr and "RuntimeError" in done.stderr
    assert (tmp_path / "trainer_module.py").exists()


def test_a_plugin_for_another_hookspec_version_is_refused(plugins) -> None:
    with_sites(plugins, "future_hookspec")
    with pytest.warns(PluginWarning, match="hook spec version 2, but recforge 0.1.0 provides "
                                           "version 1"):
        registry = get_registry()
    assert "future" not in registry.names("tower")
    listing = run_module("compiler.plugins", extra_path=str(FIXTURES / "future_hookspec"))
    assert "Not loaded:" in listing.stdout and "recforge-future 2.0.0" in listing.stdout


def test_a_misspelled_hook_is_an_error_naming_the_plugin(plugins) -> None:
    with_sites(plugins, "misspelled_hook")
    with pytest.raises(PluginError) as raised:
        get_registry()
    assert str(raised.value) == (
        "plugin 'typo' (recforge-typo 0.1.0) implements unknown hook 'register_fragment' "
        "(recforge hooks: register_fragments, register_passes); did you mean "
        "'register_fragments'?"
    )


@pytest.mark.slow
def test_a_fragment_failing_a_pass_names_its_plugin(plugins, tmp_path) -> None:
    with_sites(plugins, "broken")
    with pytest.warns(PluginWarning, match="badparams"), pytest.raises(PassFailure) as raised:
        compile_overrides(["model=hybrid_v1", "model.buyer_tower.type=leaky"],
                          output_dir=tmp_path / "out")
    assert "in code from tower/leaky (buyer) · recforge-broken 0.1.0" in str(raised.value)
    assert [f.rule for f in raised.value.findings] == ["pyflakes"]
    assert not (tmp_path / "out").exists()


def test_a_fragment_with_a_bad_params_schema_is_refused_naming_the_plugin(plugins) -> None:
    with_sites(plugins, "broken")
    with pytest.warns(PluginWarning, match=r"tower 'badparams' of plugin 'broken' "
                                           r"\(recforge-broken 0\.1\.0\) was not loaded"):
        get_registry()
    with pytest.raises(PluginError, match="Params is not a valid config schema"):
        compile_sources("model=hybrid_v1", "model.buyer_tower.type=badparams")


# -- the done-when: emit and run locally with the DCN tower -----------------------------------


@pytest.mark.slow
def test_hybrid_dcn_runs_locally_on_tiny_data(tmp_path, capsys) -> None:
    from compiler.__main__ import main

    frame = tiny_transactions(rows=1200, seed=11)
    frame["date"] = pd.to_datetime(frame["date"], unit="s").dt.strftime("%Y-%m-%d")
    frame.to_csv(tmp_path / "transactions.csv", index=False)
    code = main([
        "model=hybrid_dcn", "features=cherng_v3", "run=local", "run.epochs=1",
        "model.batch_size=256", f"output_dir={tmp_path / 'emitted'}",
        f"data.source={tmp_path / 'transactions.csv'}", f"run.runs_root={tmp_path / 'runs'}",
        f"run.cache_dir={tmp_path / 'cache'}", "run.name=dcn",
        f"ledger=sqlite:///{tmp_path / 'ledger.db'}",
    ])
    assert code == 0, capsys.readouterr().err
    run_dir = tmp_path / "runs" / "dcn"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    metrics = json.loads((run_dir / "model_run" / "training_metrics.json").read_text())
    assert {"recall_at_100", "test_rmse"} <= set(metrics["final"])
    # hybrid_dcn's config selects the plugin's evaluator and callback beside the built-ins:
    # NDCG@K on the test and eval splits, and each epoch's seconds in the history.
    ndcg = {key: metrics["final"].get(key) for key in ("ndcg_at_5", "ndcg_at_100",
                                                       "val_ndcg_at_100")}
    assert all(isinstance(value, float) and 0.0 <= value <= 1.0 for value in ndcg.values()), ndcg
    assert ndcg["ndcg_at_5"] <= ndcg["ndcg_at_100"]  # a larger K can only add gain
    assert all(row["epoch_seconds"] > 0 for row in metrics["history"])
    assert (run_dir / "serving_model" / "saved_model.pb").exists()
    trainer = (run_dir / "modules" / "trainer_module.py").read_text()
    assert "CrossTower" in trainer and "_evaluate_ndcg" in trainer


# -- docs -----------------------------------------------------------------------------------


def test_docs_plugins_md_is_in_sync_with_the_hook_specs() -> None:
    from compiler.fragments import docs as plugin_docs
    from compiler.fragments import hookspecs

    text = plugin_docs.DEFAULT_PATH.read_text(encoding="utf-8")
    assert plugin_docs.update(text) == text, "run: python -m compiler.fragments.docs"
    for hook in ("register_fragments", "register_passes"):
        assert f"#### `{hook}() -> " in text
        assert " ".join(getattr(hookspecs, hook).__doc__.split()[:6]) in " ".join(text.split())
