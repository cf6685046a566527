"""The ``sampled_softmax`` retrieval loss (kind ``retrieval_loss``; the built-in is ``softmax``).

The TFRS Retrieval task scores every buyer in a batch against every product in it and hands the
loss a [buyers, products] score matrix whose diagonal holds the positives. The built-in loss
takes the softmax over the whole row; this one over the positive and a random sample of the
row's negatives: the sampled softmax of Jean et al. (2015) / Covington et al. (2016), with the
batch as the candidate pool.
"""

from __future__ import annotations

from typing import ClassVar

from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

#: Negatives per buyer. Fixed: retrieval losses take no parameters from the model config yet.
NEGATIVES = 32

SAMPLED_SOFTMAX = '''
SAMPLED_NEGATIVES = {negatives}


class SampledSoftmaxLoss(tf.keras.losses.Loss):
    """Softmax cross-entropy over each row's positive and SAMPLED_NEGATIVES random negatives."""

    def __init__(self, negatives):
        super().__init__(reduction=tf.keras.losses.Reduction.SUM, name="sampled_softmax")
        self.negatives = negatives

    def call(self, y_true, y_pred):
        # A random key per score; positives get a key above every random one, so the top
        # negatives + 1 keys of a row are its positive and a uniform sample of its negatives.
        keys = tf.where(y_true > 0, 2.0, tf.random.uniform(tf.shape(y_pred)))
        keep = tf.minimum(self.negatives + 1, tf.shape(y_pred)[1])
        threshold = tf.math.top_k(keys, k=keep).values[:, -1:]
        logits = tf.where(keys >= threshold, y_pred, -1e9)
        return tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=logits)


def _retrieval_loss():
    return SampledSoftmaxLoss(SAMPLED_NEGATIVES)
'''


class SampledSoftmaxLoss(Fragment):
    kind: ClassVar[str] = "retrieval_loss"
    name: ClassVar[str] = "sampled_softmax"
    description: ClassVar[str] = (
        f"softmax over the positive and {NEGATIVES} random in-batch negatives"
    )
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.retrieval_loss=sampled_softmax"],
        ["model=retrieval_v1", "model.retrieval_loss=recforge-dcn:sampled_softmax"],
    ]
    provides: ClassVar[tuple[str, ...]] = ("retrieval_loss",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.LOSSES, statements(SAMPLED_SOFTMAX, negatives=NEGATIVES))
