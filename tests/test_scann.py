"""``retrieval_algorithm=scann`` for real: params from config, train, index, Recall@K through
the ScaNN index beside the exact (brute-force) Recall@K, export, reload, serve.

scann's TensorFlow ops load only with the TensorFlow it was built for (scann 1.3.2 with
TensorFlow 2.16), so the end-to-end test runs in the job environment (``RECFORGE_JOB_PYTHON``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.core.pipeline import compile_overrides
from compiler.errors import ConfigError
from tests.job_env_helpers import serve_in_job_env, train_in_job_env, transform_in_job_env

SCANN_OVERRIDES = [
    "model=retrieval_v1",
    "model.retrieval_algorithm=scann",
    "+model.retrieval_index_params.num_leaves=20",
    "+model.retrieval_index_params.num_leaves_to_search=8",
    "+model.retrieval_index_params.num_reordering_candidates=300",
]


@pytest.mark.slow
def test_scann_params_from_config_enter_the_trainer_as_literals(tmp_path: Path) -> None:
    compile_overrides(SCANN_OVERRIDES, output_dir=tmp_path)
    source = (tmp_path / "trainer_module.py").read_text()
    for line in ("SCANN_NUM_LEAVES = 20", "SCANN_LEAVES_TO_SEARCH = 8",
                 "SCANN_REORDERING_CANDIDATES = 300", "SCANN_DIMENSIONS_PER_BLOCK = 2",
                 'namespace_whitelist=["Scann"]', "_index_recall(index, test_dataset"):
        assert line in source, line
    compile_overrides(["model=retrieval_v1", "model.retrieval_algorithm=scann"],
                      output_dir=tmp_path / "defaults")
    defaults = (tmp_path / "defaults" / "trainer_module.py").read_text()
    assert "SCANN_NUM_LEAVES = 100" in defaults
    assert "SCANN_REORDERING_CANDIDATES = None" in defaults


@pytest.mark.parametrize(("overrides", "key", "problem"), [
    (["+model.retrieval_index_params.num_leaves_to_search=300"],
     "model.retrieval_index_params.num_leaves_to_search", "expected at most num_leaves (100)"),
    (["+model.retrieval_index_params.num_leaves=0"],
     "model.retrieval_index_params.num_leaves", "expected a positive integer, got 0"),
    (["+model.retrieval_index_params.num_leafs=3"],
     "model.retrieval_index_params.num_leafs", "did you mean 'num_leaves'?"),
])
def test_bad_scann_params_are_refused_before_anything_is_written(
        tmp_path: Path, overrides: list[str], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_overrides(["model=retrieval_v1", "model.retrieval_algorithm=scann", *overrides],
                          output_dir=tmp_path / "out")
    assert caught.value.key == key
    assert problem in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_brute_force_takes_no_index_params(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takes no parameters") as caught:
        compile_overrides(["model=retrieval_v1", "+model.retrieval_index_params.num_leaves=3"],
                          output_dir=tmp_path / "out")
    assert caught.value.key == "model.retrieval_index_params.num_leaves"


@pytest.mark.slow
def test_scann_trains_exports_reloads_and_keeps_recall(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    compile_overrides(SCANN_OVERRIDES, output_dir=modules)
    # Enough products that Recall@100 is not trivially 1 (100 of ~600 candidates).
    transform_in_job_env(modules / "transform_module.py", tmp_path / "transform",
                         rows=6000, products=600)
    output = tmp_path / "job"
    metrics = train_in_job_env(modules / "trainer_module.py", tmp_path / "transform", output,
                               {"epochs": 3, "batch_size": 256})

    final = metrics["final"]
    candidates = metrics["candidates"]["unique_products"]
    assert candidates > 400, candidates
    exact, through_index = final["recall_at_100"], final["index_recall_at_100"]
    # The model learned something (random ranking: 100 / candidates), so the ratio means
    # something, and ScaNN (8 of 20 leaves searched, 300 rescored) keeps 90% of it.
    assert exact > 1.5 * 100 / candidates, final
    assert through_index >= 0.9 * exact, final
    print(f"Recall@100 exact {exact:.3f}, through ScaNN {through_index:.3f}")
    index_recalls = [final[f"index_recall_at_{k}"] for k in (5, 10, 50, 100)]
    assert index_recalls == sorted(index_recalls) and index_recalls[0] >= 0

    saved = (output / "serving_model" / "saved_model.pb").read_bytes()
    assert b"Scann" in saved  # the ScaNN ops are in the graph, not a brute-force fallback
    answers = serve_in_job_env(output / "serving_model", preload=("scann",))
    assert set(answers) == {"serving_default"}
    top = answers["serving_default"]
    assert len(top["product_ids"]) == 100
    assert len(set(top["product_ids"])) == 100
    assert all(p.startswith("P") for p in top["product_ids"])
    assert top["scores"] == sorted(top["scores"], reverse=True)
