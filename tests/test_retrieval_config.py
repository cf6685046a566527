"""model.retrieval and model.purchase_history: composing, validating and what they emit.

Fast: no TensorFlow. The techniques' effects on tiny examples are in
``tests/test_retrieval_techniques.py`` (slow).
"""

from __future__ import annotations

import pytest

from compiler.core.compose import compose
from compiler.core.pipeline import compile_config
from compiler.core.validate import validate
from compiler.errors import ConfigError
from tests.preflight_helpers import assert_rejected


def trainer(overrides: list[str]) -> str:
    return compile_config(compose(overrides), write=False).sources["trainer_module.py"]


def transform(overrides: list[str]) -> str:
    return compile_config(compose(overrides), write=False).sources["transform_module.py"]


def test_an_override_under_a_null_group_turns_it_on_with_its_defaults() -> None:
    cfg = compose(["model=hybrid_v1", "model.purchase_history.recency_half_life_days=7"])
    assert cfg.model.purchase_history.recency_half_life_days == 7
    assert cfg.model.purchase_history.date == "date"  # the schema's default
    assert compose(["model=hybrid_v1", "+model.purchase_history={}"]).model.purchase_history \
        .scorer_layers == [16]
    assert compose(["model=hybrid_v2", "model.purchase_history=null"]).model.purchase_history \
        is None


def test_the_defaults_emit_the_tfrs_retrieval_loss_with_sparse_labels() -> None:
    code = trainer(["model=hybrid_v1"])
    assert "self.retrieval_task = SparseLabelRetrieval()" in code
    assert "tf.math.reduce_sum(losses)" in code
    for absent in ("tfrs.tasks.Retrieval(", "_retrieval_loss", "InBatchSoftmax",
                   "PurchaseHistory", "UnitNormalized", "logQ"):
        assert absent not in code


def test_sparse_labels_off_emits_the_tfrs_retrieval_task_unchanged() -> None:
    code = trainer(["model=hybrid_v1", "model.retrieval.sparse_labels=false"])
    assert "tfrs.tasks.Retrieval(loss=_retrieval_loss())" in code
    assert "Reduction.SUM\n" in code
    for absent in ("SparseLabelRetrieval", "InBatchSoftmax", "PurchaseHistory"):
        assert absent not in code


@pytest.mark.parametrize("override", [
    "model.retrieval.temperature=0.5", "model.retrieval.remove_accidental_hits=true",
])
def test_sparse_labels_give_way_to_the_score_loss(override: str) -> None:
    code = trainer(["model=hybrid_v1", override])
    assert "InBatchSoftmax(tf_transform_output)" in code
    assert "SparseLabelRetrieval" not in code


@pytest.mark.parametrize(("override", "present", "absent"), [
    ("model.retrieval.temperature=0.2", ["TEMPERATURE = 0.2", "InBatchSoftmax"],
     ["SamplingProbablityCorrection", "RemoveAccidentalHits"]),
    ("model.retrieval.logq_correction=true", ["SamplingProbablityCorrection",
                                              "PRODUCT_FREQUENCY_VOCAB"], ["RemoveAccidentalHits"]),
    ("model.retrieval.remove_accidental_hits=true", ["RemoveAccidentalHits"],
     ["SamplingProbablityCorrection"]),
    ("model.retrieval.normalize_embeddings=true", ["UnitNormalized(_build_buyer_tower"],
     ["InBatchSoftmax"]),
    ("model.retrieval.loss_reduction=mean", ["tf.math.reduce_mean(losses)"],
     ["InBatchSoftmax", "reduce_sum(losses)"]),
])
def test_each_retrieval_knob_emits_only_its_own_code(override: str, present: list[str],
                                                     absent: list[str]) -> None:
    code = trainer(["model=retrieval_v1", override])
    for text in present:
        assert text in code, text
    for text in absent:
        assert text not in code, text


def test_purchase_history_reaches_the_transform_the_loss_and_the_index() -> None:
    selection = ["model=hybrid_v1", "+model.purchase_history={}"]
    preprocessing = transform(selection)
    assert 'vocab_filename="purchase_count", store_frequency=True' in preprocessing
    assert 'outputs["purchase_recency_weight"]' in preprocessing
    code = trainer(selection)
    assert "self.purchase_history = PurchaseHistory(tf_transform_output)" in code
    assert "leave_out_own=training" in code
    assert "HistoryAwareBruteForce" in code  # serving ranks with the history score too
    assert "model.purchase_history(batch, candidates[\"product_ids\"])" in code
    without_query = trainer([*selection, "model.purchase_history.bought_products_in_query=false"])
    assert "HistoryQuery" in code and "HistoryQuery" not in without_query


def test_the_product_counts_are_in_the_transform_only_with_logq() -> None:
    assert "product_frequency" not in transform(["model=hybrid_v1"])
    assert 'vocab_filename="product_frequency"' in transform(
        ["model=hybrid_v1", "model.retrieval.logq_correction=true"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.retrieval.temperature=0"],
     "model.retrieval.temperature: expected a positive number, got 0.0"),
    (["+model.purchase_history={}", "model.retrieval_algorithm=scann"],
     "model.retrieval_algorithm: expected brute_force with purchase_history"),
    (["model.purchase_history.date=dat"],
     "model.purchase_history.date: expected a timestamp buyer feature (date), got 'dat'; "
     "did you mean 'date'?"),
    (["model.purchase_history.recency_half_life_days=0"],
     "model.purchase_history.recency_half_life_days: expected a positive number of days"),
    (["model.purchase_history.scorer_layers=[16,0]"],
     "model.purchase_history.scorer_layers[1]: expected a positive width, got 0"),
    (["+model.purchase_history={}", "features.buyer_id=customer"],
     "features.buyer_id: expected a buyer feature with an embedding"),
])
def test_bad_settings_are_rejected_with_their_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate(compose(["model=hybrid_v1", *overrides]))
    assert str(raised.value).startswith(message), str(raised.value)


def test_history_on_a_ranking_model_is_rejected() -> None:
    with pytest.raises(ConfigError, match="model.purchase_history: expected a retrieval or "
                                          "multitask model"):
        validate(compose(["model=ranking_v1", "+model.purchase_history={}"]))


def test_the_cli_rejects_a_bad_history_setting_before_writing(tmp_path, capsys) -> None:
    assert_rejected(["model=hybrid_v2", "model.purchase_history.recency_half_life_days=-1",
                     f"output_dir={tmp_path}/out"], tmp_path=tmp_path,
                    key="model.purchase_history.recency_half_life_days", in_process=True,
                    capsys=capsys)
