"""Task fragments: the TFRS model class ``RecommenderModel`` for each model type.

Every model exposes ``buyer_tower`` and ``product_tower``; ranking and multitask models also
``predict_rating(features)``. Evaluators and the export rely on exactly these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)
from compiler.model import ResolvedConfig
from plugins.losses import (
    SoftmaxRetrievalLoss,
    join_pieces,
    uses_score_loss,
    uses_sparse_labels,
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

#: The retrieval and multitask models when a ``model.retrieval`` knob or purchase history is
#: on, assembled from the fixed pieces below (each only when its knob is on).
TUNED_HEAD = {
    "retrieval": """
MODEL_TYPE = "retrieval"


class RecommenderModel(MeanLossModel):
    \"\"\"Two towers scored by dot product, trained with an in-batch softmax (model.retrieval).

    Recall@K is computed after training, over deduplicated candidates, never on training
    batches.
    \"\"\"
""",
    "multitask": """
MODEL_TYPE = "multitask"
RETRIEVAL_WEIGHT = {retrieval_weight}
RANKING_WEIGHT = {ranking_weight}


class RecommenderModel(MeanLossModel):
    \"\"\"Retrieval and ranking in one model: a weighted sum of the two task losses. The
    retrieval loss is an in-batch softmax, set up by model.retrieval.

    Recall@K is computed after training, over deduplicated candidates, never on training
    batches.
    \"\"\"
""",
}

TUNED_INIT = """
    def __init__(self, tf_transform_output):
        super().__init__()
        self.buyer_tower = _build_buyer_tower(tf_transform_output)
        self.product_tower = _build_product_tower(tf_transform_output)
"""

NORMALIZED_INIT = """
    def __init__(self, tf_transform_output):
        super().__init__()
        self.buyer_tower = UnitNormalized(_build_buyer_tower(tf_transform_output))
        self.product_tower = UnitNormalized(_build_product_tower(tf_transform_output))
"""

HISTORY_INIT = """
        self.purchase_history = PurchaseHistory(tf_transform_output)
"""

#: The buyer tower with the mean vector of the buyer's purchases added (HistoryQuery).
HISTORY_QUERY_INIT = """
        self.buyer_tower = HistoryQuery(self.buyer_tower, self.purchase_history)
"""

SCORE_LOSS_INIT = """
        self.retrieval_task = InBatchSoftmax(tf_transform_output)
"""

TFRS_LOSS_INIT = """
        self.retrieval_task = tfrs.tasks.Retrieval(loss=_retrieval_loss())
"""

RANKING_INIT = """
        self.rating_head = _build_rating_head()
        self.ranking_task = tfrs.tasks.Ranking(loss=_ranking_loss(), metrics=_ranking_metrics())

    def predict_rating(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        return self.rating_head(
            tf.concat([buyer_embeddings, product_embeddings], axis=1), training=training
        )
"""

IN_BATCH_SCORES = """
    def in_batch_scores(self, features, buyer_embeddings, product_embeddings, training=False):
        \"\"\"Each buyer's score for every product of the batch, [batch, batch].\"\"\"
        scores = tf.linalg.matmul(buyer_embeddings, product_embeddings, transpose_b=True)
"""

IN_BATCH_HISTORY = """
        # Train batches are lines of the train split that the history counts: leave-one-out.
        scores += self.purchase_history(
            features, features[CANDIDATE_ID_KEY], leave_out_own=training
        )
"""

IN_BATCH_RETURN = """
        return scores
"""

TUNED_LOSS = {
    ("retrieval", True): """
    def compute_loss(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        scores = self.in_batch_scores(features, buyer_embeddings, product_embeddings, training)
        return self.retrieval_task(scores, features[CANDIDATE_ID_KEY])
""",
    ("multitask", True): """
    def compute_loss(self, features, training=False):
        buyer_embeddings = self.buyer_tower(features, training=training)
        product_embeddings = self.product_tower(features, training=training)
        ratings = self.rating_head(
            tf.concat([buyer_embeddings, product_embeddings], axis=1), training=training
        )
        scores = self.in_batch_scores(features, buyer_embeddings, product_embeddings, training)
        retrieval_loss = self.retrieval_task(scores, features[CANDIDATE_ID_KEY])
        ranking_loss = self.ranking_task(
            labels=tf.reshape(features[TARGET_KEY], [-1, 1]), predictions=ratings
        )
        return RETRIEVAL_WEIGHT * retrieval_loss + RANKING_WEIGHT * ranking_loss
""",
    # The TFRS Retrieval task's loss (normalised towers only): the default models' own.
    ("retrieval", False): RETRIEVAL_MODEL[RETRIEVAL_MODEL.index("    def compute_loss"):],
    ("multitask", False): MULTITASK_MODEL[MULTITASK_MODEL.index("    def compute_loss"):],
}

UNIT_NORMALIZED = """
class UnitNormalized(tf.keras.Model):
    \"\"\"A tower whose embeddings are L2-normalised: dot products become cosine similarities
    (model.retrieval.normalize_embeddings; e.g. Yi et al., RecSys 2019, section 4).\"\"\"

    def __init__(self, tower, **kwargs):
        super().__init__(**kwargs)
        self.tower = tower

    def call(self, features, training=False):
        return tf.math.l2_normalize(self.tower(features, training=training), axis=1)
"""


def tuned_model_source(model_type: str, params: Mapping[str, Any]) -> str | None:
    """The model class's source for a retrieval or multitask model with a ``model.retrieval``
    knob or purchase history on; None when the TFRS Retrieval task's defaults apply."""
    normalize = bool(params.get("normalize_embeddings"))
    score_loss = uses_score_loss(params)
    if model_type not in TUNED_HEAD or not (normalize or score_loss):
        return None
    pieces = [TUNED_HEAD[model_type], NORMALIZED_INIT if normalize else TUNED_INIT]
    if params.get("purchase_history"):
        pieces.append(HISTORY_INIT)
        if params.get("bought_products_in_query"):
            pieces.append(HISTORY_QUERY_INIT)
    pieces.append(SCORE_LOSS_INIT if score_loss else TFRS_LOSS_INIT)
    if model_type == "multitask":
        pieces.append(RANKING_INIT)
    if score_loss:
        pieces.append(IN_BATCH_SCORES)
        if params.get("purchase_history"):
            pieces.append(IN_BATCH_HISTORY)
        pieces.append(IN_BATCH_RETURN)
    pieces.append(TUNED_LOSS[(model_type, score_loss)])
    return join_pieces(pieces)



#: The TFRS Retrieval task as the default models create it.
TFRS_RETRIEVAL_TASK = "tfrs.tasks.Retrieval(loss=_retrieval_loss())"

#: model.distribution: the TFRS Retrieval task scores each replica's buyers against the
#: products of every replica's share of the batch (``_all_replica_rows``), as on one device.
LOCAL_CANDIDATES = "buyer_embeddings, product_embeddings, compute_metrics=not training"
GLOBAL_CANDIDATES = (
    "buyer_embeddings, _all_replica_rows(product_embeddings), compute_metrics=not training"
)


def _sparse_label_task(config: ResolvedConfig, params: Mapping[str, Any]) -> bool:
    """Whether the softmax loss fragment emits SparseLabelRetrieval as the retrieval task."""
    return config.model.retrieval_loss == SoftmaxRetrievalLoss.name and uses_sparse_labels(params)


class _Task(Fragment):
    kind: ClassVar[str] = "task"
    template: ClassVar[str]
    ranking: ClassVar[bool]

    @classmethod
    def declare(cls, use: FragmentUse, config: ResolvedConfig) -> dict[str, tuple[str, ...]]:
        """With sparse labels the retrieval task is the loss fragment's SparseLabelRetrieval."""
        requires = cls.requires
        if _sparse_label_task(config, use.params):
            requires = tuple("sparse_label_retrieval" if value == "retrieval_loss" else value
                             for value in requires)
        return {"provides": cls.provides, "requires": requires}

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("tensorflow_recommenders", alias="tfrs")
        if self.ranking:
            target = next(f for f in ctx.plan.transformed_features if f.side == "target")
            out.add(Section.CONSTANTS, statements(TARGET_KEY, target_key=target.name))
            out.add(Section.MODEL, statements(RANKING_METRICS))
        tuned = tuned_model_source(self.name, use.params)
        if use.params.get("normalize_embeddings"):
            out.add(Section.TOWERS, statements(UNIT_NORMALIZED))
        source = tuned or self.template
        # model.retrieval.sparse_labels: the softmax loss fragment emits SparseLabelRetrieval.
        if _sparse_label_task(ctx.config, use.params):
            source = source.replace(TFRS_RETRIEVAL_TASK, "SparseLabelRetrieval()")
        if use.params.get("distribution"):  # negatives from the whole global batch
            source = source.replace(LOCAL_CANDIDATES, GLOBAL_CANDIDATES)
        out.add(Section.MODEL, statements(
            source,
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
