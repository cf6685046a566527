"""Stage 3 — plan: which fragments, with which parameters."""

from __future__ import annotations

from compiler.core.plan import plan
from compiler.core.validate import validate
from tests.compile_helpers import compose_config


def plan_for(*overrides: str):
    return plan(validate(compose_config(list(overrides))))


def test_multitask_plan_uses_every_kind() -> None:
    the_plan = plan_for("model=hybrid_v1")
    kinds = {use.kind for use in the_plan.uses}
    assert {"tower", "head", "loss", "task", "optimizer", "retrieval_index", "evaluator",
            "input", "export", "feature_transform", "trainer", "transform"} <= kinds
    towers = the_plan.uses_of("tower")
    assert [(t.role, t.params["layers"], t.params["l2"]) for t in towers] == [
        ("buyer", [128, 64, 32], 0.0001), ("product", [128, 64, 32], 0.0001)]


def test_single_task_plans_leave_out_what_they_do_not_need() -> None:
    retrieval = {u.kind for u in plan_for("model=retrieval_v1").uses}
    ranking = {u.kind for u in plan_for("model=ranking_v1").uses}
    assert "head" not in retrieval and "loss" not in retrieval
    assert "retrieval_index" not in ranking and "candidates" not in ranking


def test_transformed_features_follow_the_feature_config() -> None:
    features = plan_for().required_features()
    assert features["customer_id_id"] == "int64"
    assert features["date_weekly_sin"] == "float32"
    assert features["date_monthly_cos"] == "float32"
    assert features["cust_value_bucket"] == "int64"
    assert features["customer_id_x_cust_value"] == "int64"
    assert features["category_x_sub_category"] == "int64"
    assert features["sales_target"] == "float32"
    assert "date_yearly_sin" not in features


def test_scann_parameters_get_their_defaults() -> None:
    use = plan_for("model.retrieval_algorithm=scann").uses_of("retrieval_index")[0]
    assert use.name == "scann"
