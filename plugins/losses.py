"""Loss fragments: the ranking loss (``_ranking_loss``) and the retrieval loss
(``_retrieval_loss``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import libcst as cst

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)
from compiler.model import ResolvedConfig, embedding_column, vocabulary_file
from plugins.history import PRODUCT_FREQUENCY_VOCAB, add_frequency_reader

RANKING_LOSS = '''
def _ranking_loss():
    return {loss}
'''

#: model.distribution: each replica's share of the loss (``ReplicaShareLoss``).
RANKING_LOSS_DISTRIBUTED = '''
def _ranking_loss():
    return ReplicaShareLoss({loss})
'''


class _KerasRankingLoss(Fragment):
    kind: ClassVar[str] = "loss"
    provides: ClassVar[tuple[str, ...]] = ("ranking_loss",)
    expression: ClassVar[str]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        from compiler.fragments import expression

        template = RANKING_LOSS_DISTRIBUTED if use.params.get("distribution") else RANKING_LOSS
        out.add(Section.LOSSES, statements(template, loss=expression(self.expression)))


class MSE(_KerasRankingLoss):
    name: ClassVar[str] = "mse"
    description: ClassVar[str] = "mean squared error"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    expression: ClassVar[str] = "tf.keras.losses.MeanSquaredError()"


class MAE(_KerasRankingLoss):
    name: ClassVar[str] = "mae"
    description: ClassVar[str] = "mean absolute error"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.loss=mae"]]
    expression: ClassVar[str] = "tf.keras.losses.MeanAbsoluteError()"


class Huber(_KerasRankingLoss):
    name: ClassVar[str] = "huber"
    description: ClassVar[str] = "Huber loss (MSE near zero, MAE for outliers)"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.loss=huber"]]
    expression: ClassVar[str] = "tf.keras.losses.Huber()"


SOFTMAX_RETRIEVAL_LOSS = '''
def _retrieval_loss():
    """Softmax cross-entropy over in-batch negatives (the TFRS Retrieval default)."""
    return tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.{reduction}
    )
'''

#: model.distribution: each replica's share of the loss (``ReplicaShareLoss``).
SOFTMAX_RETRIEVAL_LOSS_DISTRIBUTED = '''
def _retrieval_loss():
    """Softmax cross-entropy over in-batch negatives (the TFRS Retrieval default), as each
    replica's share of the global batch's loss."""
    return ReplicaShareLoss(
        tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.{reduction}
        )
    )
'''

#: model.retrieval.sparse_labels: the TFRS Retrieval task's default loss, its labels as indices.
SPARSE_LABELS_RETRIEVAL_TASK = '''
class SparseLabelRetrieval(tf.keras.layers.Layer):
    """Softmax cross-entropy over in-batch negatives: the loss of ``tfrs.tasks.Retrieval``
    with its defaults, each buyer's positive being the product on its own line.

    The positive is given as its column index
    (``tf.nn.sparse_softmax_cross_entropy_with_logits``) rather than as the identity matrix of
    labels that TFRS fills on every step and the dense cross-entropy then reads: the same
    loss, without a batch x batch matrix of labels.
    """

    def call(self, buyer_embeddings, product_embeddings, compute_metrics=False):
        # No metrics: Recall@K is computed after training, over deduplicated candidates.
        scores = tf.linalg.matmul(buyer_embeddings, product_embeddings, transpose_b=True)
        positives = tf.range(tf.shape(scores)[0])
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=scores)
        return tf.math.{reduce}(losses)
'''

#: ``InBatchSoftmax``: the loss over a score matrix, for what the TFRS Retrieval task's
#: embeddings-only call cannot take (a history score) or that reads train frequencies (logQ).
#: Assembled from the fixed pieces below, each emitted only when its knob is on; config values
#: enter only through the ``statements`` placeholders.
IN_BATCH_SOFTMAX_HEAD = '''
TEMPERATURE = {temperature}
CANDIDATE_ID_KEY = {candidate_id_key}


class InBatchSoftmax(tf.keras.layers.Layer):
    """In-batch softmax cross-entropy over scores [buyers, candidates] whose diagonal holds
    each buyer's own product: the computation of ``tfrs.tasks.Retrieval.call`` in its order
    (temperature, sampling-bias correction, accidental hits), from scores rather than
    embeddings, so that other scores (purchase history) can join the towers' dot product.
    """

    def __init__(self, tf_transform_output, **kwargs):
        super().__init__(**kwargs)
        self.loss = _retrieval_loss()
'''

IN_BATCH_SOFTMAX_LOGQ_INIT = '''
        frequencies = _vocabulary_frequencies(tf_transform_output, PRODUCT_FREQUENCY_VOCAB)
        # Product ids run up to the vocabulary size (the OOV id); one unseen in train counts 1.
        counts = np.ones(tf_transform_output.vocabulary_size_by_name(CANDIDATE_VOCAB) + 1)
        for product, count in frequencies.items():
            counts[int(product)] = count
        self.sampling_probability = tf.constant(counts / counts.sum(), tf.float32)
'''

IN_BATCH_SOFTMAX_LOGITS = '''
    def logits(self, scores, candidate_ids):
        """What the cross-entropy sees: scores / TEMPERATURE, then the enabled corrections."""
        logits = scores / TEMPERATURE
'''

IN_BATCH_SOFTMAX_LOGQ = '''
        # logQ (Yi et al., "Sampling-bias-corrected neural modeling", RecSys 2019): in-batch
        # negatives are drawn by popularity, so each candidate's logit is lowered by log p.
        logits = tfrs.layers.loss.SamplingProbablityCorrection()(
            logits, tf.gather(self.sampling_probability, candidate_ids)
        )
'''

IN_BATCH_SOFTMAX_HITS = '''
        # A candidate that is the row's own product, bought on another line of the batch, is
        # no negative: tfrs.layers.loss.RemoveAccidentalHits adds the lowest float to its logit.
        logits = tfrs.layers.loss.RemoveAccidentalHits()(
            tf.eye(tf.shape(logits)[0], tf.shape(logits)[1]), logits, candidate_ids
        )
'''

IN_BATCH_SOFTMAX_CALL = '''
        return logits

    def call(self, scores, candidate_ids):
        labels = tf.eye(tf.shape(scores)[0], tf.shape(scores)[1])
        return self.loss(labels, self.logits(scores, tf.reshape(candidate_ids, [-1])))
'''

LOGQ_CONSTANTS = '''
PRODUCT_FREQUENCY_VOCAB = {frequency_vocab}
CANDIDATE_VOCAB = {candidate_vocab}
'''

#: model.retrieval.loss_reduction -> the Keras reduction.
REDUCTIONS = {"sum": "SUM", "mean": "SUM_OVER_BATCH_SIZE"}


def uses_score_loss(params: Mapping[str, Any]) -> bool:
    """Whether the retrieval loss is computed from a score matrix (``InBatchSoftmax``) rather
    than by the TFRS Retrieval task: with a history score, a temperature, logQ or accidental
    hits. Without them the task is TFRS's own, as recforge always emitted it."""
    return bool(params.get("purchase_history") or params.get("logq_correction")
                or params.get("remove_accidental_hits")
                or float(params.get("temperature", 1.0)) != 1.0)


def uses_sparse_labels(params: Mapping[str, Any]) -> bool:
    """Whether the retrieval task is ``SparseLabelRetrieval`` (model.retrieval.sparse_labels)
    rather than the TFRS Retrieval task: where that task would be used, on one device."""
    return bool(params.get("sparse_labels") and not uses_score_loss(params)
                and not params.get("distribution"))


#: model.retrieval.loss_reduction -> the reduction of SparseLabelRetrieval's per-buyer losses.
SPARSE_REDUCTIONS = {"sum": "reduce_sum", "mean": "reduce_mean"}


def join_pieces(pieces: list[str]) -> str:
    """One source text from fixed template pieces: a class's methods, or a method's
    statements, each piece only when its knob is on. Pieces join without blank lines between
    them, except where a piece starts a new method (``def``)."""
    text = pieces[0]
    for piece in pieces[1:]:
        body = piece.strip("\n")
        if body:
            text = text.rstrip("\n") + ("\n\n" if body.lstrip().startswith("def ") else "\n")
            text += body + "\n"
    return text


class SoftmaxRetrievalLoss(Fragment):
    kind: ClassVar[str] = "retrieval_loss"
    name: ClassVar[str] = "softmax"
    description: ClassVar[str] = "in-batch softmax cross-entropy"
    EXAMPLES: ClassVar[list[list[str]]] = [
        [], ["model=retrieval_v1"], ["model.retrieval.sparse_labels=false"],
        ["model.retrieval.temperature=0.1", "model.retrieval.logq_correction=true",
         "model.retrieval.remove_accidental_hits=true", "model.retrieval.loss_reduction=mean"],
    ]
    # Either value, by use (declare): the class lists both for the docs and for error messages.
    provides: ClassVar[tuple[str, ...]] = ("retrieval_loss", "sparse_label_retrieval")

    @classmethod
    def declare(cls, use: FragmentUse, config: ResolvedConfig) -> dict[str, tuple[str, ...]]:
        """With sparse labels the loss is the task layer ``SparseLabelRetrieval``, and no
        ``_retrieval_loss`` is emitted."""
        if uses_sparse_labels(use.params):
            return {"provides": ("sparse_label_retrieval",)}
        return {"provides": ("retrieval_loss",)}

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        params = use.params
        if uses_sparse_labels(params):
            out.add(Section.LOSSES, statements(SPARSE_LABELS_RETRIEVAL_TASK, reduce=cst.Name(
                SPARSE_REDUCTIONS[params.get("loss_reduction", "sum")])))
            return
        reduction = REDUCTIONS[params.get("loss_reduction", "sum")]
        template = SOFTMAX_RETRIEVAL_LOSS_DISTRIBUTED if params.get("distribution") \
            else SOFTMAX_RETRIEVAL_LOSS
        code = list(statements(template, reduction=cst.Name(reduction)).body)
        if uses_score_loss(params):
            out.require_import("tensorflow_recommenders", alias="tfrs")
            logq = bool(params.get("logq_correction"))
            if logq:
                out.require_import("numpy", alias="np")
                add_frequency_reader(out)
                code += statements(
                    LOGQ_CONSTANTS, frequency_vocab=PRODUCT_FREQUENCY_VOCAB,
                    candidate_vocab=vocabulary_file(params["product_id"]),
                ).body
            layer = join_pieces([
                IN_BATCH_SOFTMAX_HEAD, IN_BATCH_SOFTMAX_LOGQ_INIT if logq else "",
                IN_BATCH_SOFTMAX_LOGITS, IN_BATCH_SOFTMAX_LOGQ if logq else "",
                IN_BATCH_SOFTMAX_HITS if params.get("remove_accidental_hits") else "",
                IN_BATCH_SOFTMAX_CALL,
            ])
            code += statements(
                layer, temperature=float(params["temperature"]),
                candidate_id_key=embedding_column(params["product_id"]),
            ).body
        out.add(Section.LOSSES, code)


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [MSE, MAE, Huber, SoftmaxRetrievalLoss]
