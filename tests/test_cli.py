"""The command line: one clear line and exit 2 for bad input, Hydra's flags as users expect."""

from __future__ import annotations

import pytest

from tests.compile_helpers import run_cli

BAD_INPUTS = [
    (["model.buyer_tower.layer=[1]"], "model.buyer_tower.layer", "did you mean 'layers'"),
    (["model.batch_size=big"], "model.batch_size", "expected integer"),
    (["model.buyer_tower.layers=[128,0,32]"], "model.buyer_tower.layers[1]", "positive integer"),
    (["model.loss=mse2"], "model.loss", "did you mean 'mse'"),
    (["features.crosses.product.0.features=[category,subcategory]"],
     "features.crosses.product[0].features[1]", "did you mean 'sub_category'"),
    (["model.output_embedding_dim=64"], "model.output_embedding_dim", "last"),
    (["features.product.1.name=Category"], "features.product[1].name", "safe feature name"),
]


@pytest.mark.parametrize(("overrides", "key", "text"), BAD_INPUTS)
@pytest.mark.slow
def test_bad_input_exits_2_with_one_clear_message(overrides, key, text, tmp_path) -> None:
    out = tmp_path / "out"
    result = run_cli(*overrides, f"output_dir={out}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {key}: ")
    assert text in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("model", ["hybrid_v1", "retrieval_v1", "ranking_v1"])
@pytest.mark.slow
def test_main_command_emits_and_reports(model: str, tmp_path) -> None:
    result = run_cli(f"model={model}", "features=cherng_v3", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "passes:" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} == {
        "trainer_module.py", "transform_module.py", "manifest.json"}


@pytest.mark.slow
def test_hydra_help_and_cfg_work() -> None:
    help_result = run_cli("--help")
    assert help_result.returncode == 0
    assert "hybrid_v1" in help_result.stdout and "ranking_v1" in help_result.stdout
    cfg = run_cli("model=ranking_v1", "--cfg", "job")
    assert cfg.returncode == 0
    assert "model_type: ranking" in cfg.stdout


@pytest.mark.slow
def test_a_bad_hydra_flag_is_one_line(tmp_path) -> None:
    from tests.preflight_helpers import assert_rejected

    line = assert_rejected(["--cfg", "nosuch", f"output_dir={tmp_path / 'out'}"],
                           tmp_path=tmp_path)
    assert line.startswith("error: command line: argument --cfg/-c: invalid choice: 'nosuch'")


@pytest.mark.slow
def test_config_path_and_verbose(tmp_path) -> None:
    """``-cp DIR`` (relative to the current directory) composes from another conf/;
    ``--verbose`` is recforge's flag and never reaches Hydra."""
    import shutil

    from compiler.core.compose import CONF_DIR

    shutil.copytree(CONF_DIR, tmp_path / "myconf")
    (tmp_path / "myconf" / "model" / "small.yaml").write_text(
        (CONF_DIR / "model" / "retrieval_v1.yaml").read_text().replace(
            "name: retrieval_v1", "name: small"))
    result = run_cli("--verbose", "-cp", "myconf", "model=small", "output_dir=out",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert '"model": "small"' in manifest
