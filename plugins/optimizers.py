"""Optimizer fragments: ``_make_optimizer()``."""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    expression,
    statements,
)

OPTIMIZER = '''
LEARNING_RATE = {learning_rate}


def _make_optimizer():
    return {optimizer}
'''


class _KerasOptimizer(Fragment):
    kind: ClassVar[str] = "optimizer"
    provides: ClassVar[tuple[str, ...]] = ("optimizer",)
    keras_class: ClassVar[str]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        optimizer = expression(
            "tf.keras.optimizers." + self.keras_class + "(learning_rate=LEARNING_RATE)"
        )
        out.add(Section.OPTIMIZER, statements(
            OPTIMIZER, learning_rate=float(use.params["learning_rate"]), optimizer=optimizer,
        ))


class Adam(_KerasOptimizer):
    name: ClassVar[str] = "adam"
    description: ClassVar[str] = "Adam"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    keras_class: ClassVar[str] = "Adam"


class Adagrad(_KerasOptimizer):
    name: ClassVar[str] = "adagrad"
    description: ClassVar[str] = "Adagrad (the TFRS tutorials' retrieval default)"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.optimizer=adagrad"]]
    keras_class: ClassVar[str] = "Adagrad"


class SGD(_KerasOptimizer):
    name: ClassVar[str] = "sgd"
    description: ClassVar[str] = "plain stochastic gradient descent"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.optimizer=sgd"]]
    keras_class: ClassVar[str] = "SGD"


class RMSprop(_KerasOptimizer):
    name: ClassVar[str] = "rmsprop"
    description: ClassVar[str] = "RMSprop"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.optimizer=rmsprop"]]
    keras_class: ClassVar[str] = "RMSprop"


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [Adam, Adagrad, SGD, RMSprop]
