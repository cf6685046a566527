"""Each performance switch that is on by default leaves the trained model's metrics alone.

The emitted hybrid_v1 trainer runs on tiny data with its defaults, then with each default-on
switch of ``model.performance`` turned off (``steps_per_execution`` 32 -> 1; ``cache`` on ->
off, which needs steps_per_execution 1). The final metrics must agree within the tolerance of
``benchmarks/training_speed.py``: the spread that a change of seed alone gives, which here is
``4 * sd * sqrt(2)`` for one run against one run, ``sd`` the standard deviation of the metric
over seeds 1..8 of this very setup (``model.seed``, 3 epochs, batch 128,
``tiny_transactions()``), measured once and written below.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from compiler.core.pipeline import compile_overrides
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

pytestmark = pytest.mark.slow

#: Seed-to-seed standard deviation of each final metric in this setup (8 seeds).
SEED_SD = {
    "loss": 1.050, "val_rmse": 0.0670, "val_mae": 0.0582, "test_rmse": 0.0545,
    "test_mae": 0.0325, "recall_at_5": 0.0203, "recall_at_10": 0.0327, "recall_at_50": 0.0369,
    "recall_at_100": 0.0,  # 90 products: every test product is always in the top 100
}
TOLERANCE = {key: 4 * sd * math.sqrt(2) for key, sd in SEED_SD.items()}
CUSTOM_CONFIG = {"epochs": 3, "batch_size": 128}
SWITCHES_OFF = {
    "steps_per_execution": ["model.performance.steps_per_execution=1"],
    "cache": ["model.performance.cache=false", "model.performance.steps_per_execution=1"],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("switches")
    compile_overrides(["model=hybrid_v1"], output_dir=root / "defaults")
    run_transform(split(tiny_transactions()), RAW_SCHEMA,
                  root / "defaults" / "transform_module.py", str(root / "transform"))
    return root


def _train(workdir: Path, name: str) -> dict[str, float]:
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer

    fn_args = fn_args_from_transform(str(workdir / "transform"), str(workdir / "runs" / name),
                                     CUSTOM_CONFIG)
    return run_trainer(workdir / name / "trainer_module.py", fn_args)["final"]


@pytest.fixture(scope="module")
def defaults(workdir: Path) -> dict[str, float]:
    return _train(workdir, "defaults")


def test_the_defaults_are_on() -> None:
    from compiler.schema import PerformanceConfig

    performance = PerformanceConfig()
    assert performance.cache and performance.steps_per_execution > 1
    assert not performance.jit_compile  # off by default: it needs no test here


@pytest.mark.parametrize("switch", list(SWITCHES_OFF))
def test_turning_a_switch_off_keeps_the_metrics(switch: str, workdir: Path,
                                                defaults: dict[str, float]) -> None:
    result = compile_overrides(["model=hybrid_v1", *SWITCHES_OFF[switch]],
                               output_dir=workdir / switch)
    assert result.config.config_hash != compile_overrides(
        ["model=hybrid_v1"], write=False).config.config_hash  # the switch reached the code
    off = _train(workdir, switch)
    for key, tolerance in TOLERANCE.items():
        assert abs(off[key] - defaults[key]) <= tolerance, (
            f"{switch} off: {key} {off[key]:.4f} vs {defaults[key]:.4f} with it on "
            f"(tolerance {tolerance:.4f})")
