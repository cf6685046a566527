"""Task fragments: the TFRS model class ``RecommenderModel`` for each model type.

Every model exposes ``buyer_tower`` and ``product_tower``; ranking and multitask models also
``predict_rating(features)``. Evaluators and the export rely on exactly these names.
"""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

RANKING_METRICS = '''
def _ranking_metrics():
    return [
        tf.keras.metrics.RootMeanSquaredError(name="rmse"),
        tf.keras.metrics.MeanAbsoluteError(name="mae"),
    ]
'''

RETRIEVAL_MODEL = '''
MODEL_TYPE = "retrieval"


class RecommenderModel(MeanLossModel):
    """Two towers scored by dot product, trained with the TFRS Retrieval task.

    The task has no metrics: Recall@K is computed after training, over deduplicated
    candidates, never on training batches.
    """

    def __init__(self, tf_transform_output):
        super().__init__()
        self.buyer_tower = _build_buyer_tower(tf_transform_output)
        self.product_tower = _build_product_tower(tf_transform_output)
        self.retrieval_task = tfrs.tasks.Retrieval(loss=_retrieval_loss())

    def compute_loss(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        return self.retrieval_task(
            buyer_embeddings, product_embeddings, compute_metrics=not training
        )
'''

RANKING_MODEL = '''
MODEL_TYPE = "ranking"


class RecommenderModel(MeanLossModel):
    """Towers feed a rating head trained on the transformed target (TFRS Ranking task)."""

    def __init__(self, tf_transform_output):
        super().__init__()
        self.buyer_tower = _build_buyer_tower(tf_transform_output)
        self.product_tower = _build_product_tower(tf_transform_output)
        self.rating_head = _build_rating_head()
        self.ranking_task = tfrs.tasks.Ranking(loss=_ranking_loss(), metrics=_ranking_metrics())

    def predict_rating(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        return self.rating_head(
            tf.concat([buyer_embeddings, product_embeddings], axis=1), training=training
        )

    def compute_loss(self, features, training=False):
        return self.ranking_task(
            labels=tf.reshape(features[TARGET_KEY], [-1, 1]),
            predictions=self.predict_rating(features, training=training),
        )
'''

MULTITASK_MODEL = '''
MODEL_TYPE = "multitask"
RETRIEVAL_WEIGHT = {retrieval_weight}
RANKING_WEIGHT = {ranking_weight}


class RecommenderModel(MeanLossModel):
    """Retrieval and ranking in one model: a weighted sum of the two task losses.

    The retrieval task has no metrics: Recall@K is computed after training, over
    deduplicated candidates, never on training batches.
    """

    def __init__(self, tf_transform_output):
        super().__init__()
        self.buyer_tower = _build_buyer_tower(tf_transform_output)
        self.product_tower = _build_product_tower(tf_transform_output)
        self.rating_head = _build_rating_head()
        self.retrieval_task = tfrs.tasks.Retrieval(loss=_retrieval_loss())
        self.ranking_task = tfrs.tasks.Ranking(loss=_ranking_loss(), metrics=_ranking_metrics())

    def predict_rating(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        return self.rating_head(
            tf.concat([buyer_embeddings, product_embeddings], axis=1), training=training
        )

    def compute_loss(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        ratings = self.rating_head(
            tf.concat([buyer_embeddings, product_embeddings], axis=1), training=training
        )
        retrieval_loss = self.retrieval_task(
            buyer_embeddings, product_embeddings, compute_metrics=not training
        )
        ranking_loss = self.ranking_task(
            labels=tf.reshape(features[TARGET_KEY], [-1, 1]), predictions=ratings
        )
        return RETRIEVAL_WEIGHT * retrieval_loss + RANKING_WEIGHT * ranking_loss
'''

TARGET_KEY = '''
TARGET_KEY = {target_key}
'''


class _Task(Fragment):
    kind: ClassVar[str] = "task"
    template: ClassVar[str]
    ranking: ClassVar[bool]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("tensorflow_recommenders", alias="tfrs")
        if self.ranking:
            target = next(f for f in ctx.plan.transformed_features if f.side == "target")
            out.add(Section.CONSTANTS, statements(TARGET_KEY, target_key=target.name))
            out.add(Section.MODEL, statements(RANKING_METRICS))
        out.add(Section.MODEL, statements(
            self.template,
            retrieval_weight=float(use.params["retrieval_weight"]),
            ranking_weight=float(use.params["ranking_weight"]),
        ))


class Retrieval(_Task):
    name: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "two-tower retrieval (TFRS Retrieval task)"
    EXAMPLES: ClassVar[list[list[str]]] = [["model=retrieval_v1"]]
    provides: ClassVar[tuple[str, ...]] = ("RecommenderModel",)
    requires: ClassVar[tuple[str, ...]] = (
        "MeanLossModel", "buyer_tower", "product_tower", "retrieval_loss",
    )
    template: ClassVar[str] = RETRIEVAL_MODEL
    ranking: ClassVar[bool] = False


class Ranking(_Task):
    name: ClassVar[str] = "ranking"
    description: ClassVar[str] = "rating prediction (TFRS Ranking task)"
    EXAMPLES: ClassVar[list[list[str]]] = [["model=ranking_v1"]]
    provides: ClassVar[tuple[str, ...]] = ("RecommenderModel", "target_key", "predict_rating")
    requires: ClassVar[tuple[str, ...]] = (
        "MeanLossModel", "buyer_tower", "product_tower", "rating_head", "ranking_loss",
    )
    template: ClassVar[str] = RANKING_MODEL
    ranking: ClassVar[bool] = True


class Multitask(_Task):
    name: ClassVar[str] = "multitask"
    description: ClassVar[str] = "retrieval_weight * retrieval + ranking_weight * ranking"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    provides: ClassVar[tuple[str, ...]] = ("RecommenderModel", "target_key", "predict_rating")
    requires: ClassVar[tuple[str, ...]] = (
        "MeanLossModel", "buyer_tower", "product_tower", "rating_head", "ranking_loss",
        "retrieval_loss",
    )
    template: ClassVar[str] = MULTITASK_MODEL
    ranking: ClassVar[bool] = True


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [Retrieval, Ranking, Multitask]
