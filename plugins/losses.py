"""Loss fragments: the ranking loss (``_ranking_loss``) and the retrieval loss
(``_retrieval_loss``)."""

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

RANKING_LOSS = '''
def _ranking_loss():
    return {loss}
'''


class _KerasRankingLoss(Fragment):
    kind: ClassVar[str] = "loss"
    provides: ClassVar[tuple[str, ...]] = ("ranking_loss",)
    expression: ClassVar[str]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        from compiler.fragments import expression

        out.add(Section.LOSSES, statements(RANKING_LOSS, loss=expression(self.expression)))


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
        from_logits=True, reduction=tf.keras.losses.Reduction.SUM
    )
'''


class SoftmaxRetrievalLoss(Fragment):
    kind: ClassVar[str] = "retrieval_loss"
    name: ClassVar[str] = "softmax"
    description: ClassVar[str] = "in-batch softmax cross-entropy"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["model=retrieval_v1"]]
    provides: ClassVar[tuple[str, ...]] = ("retrieval_loss",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.LOSSES, statements(SOFTMAX_RETRIEVAL_LOSS))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [MSE, MAE, Huber, SoftmaxRetrievalLoss]
