"""Optimizer fragments: ``_make_optimizer()``, or with ``model.lr_schedule``
``_make_optimizer(steps_per_epoch, epochs)`` over a warm-up + cosine schedule."""

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

#: ``model.lr_schedule`` (kind ``warmup_cosine``): the optimizer's rate follows a schedule
#: over the run's steps, which run_fn counts from the cached training split.
SCHEDULED_OPTIMIZER = '''
LEARNING_RATE = {learning_rate}  # the peak, reached at the end of the warm-up
WARMUP_EPOCHS = {warmup_epochs}
FINAL_LEARNING_RATE_RATIO = {final_ratio}


def _learning_rate_schedule(steps_per_epoch, epochs):
    """Linear warm-up from 0 to LEARNING_RATE over WARMUP_EPOCHS (Goyal et al. 2017, "Accurate,
    Large Minibatch SGD"), then cosine decay (Loshchilov & Hutter 2017, "SGDR") to
    FINAL_LEARNING_RATE_RATIO * LEARNING_RATE at the run's last step:
    ``tf.keras.optimizers.schedules.CosineDecay`` with warmup_steps and warmup_target.
    """
    total_steps = max(int(steps_per_epoch) * int(epochs), 1)
    warmup_steps = min(int(round(WARMUP_EPOCHS * steps_per_epoch)), total_steps - 1)
    return tf.keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        # The last update is step total_steps - 1: it gets the final rate.
        decay_steps=max(total_steps - 1 - warmup_steps, 1),
        alpha=FINAL_LEARNING_RATE_RATIO,
        warmup_target=LEARNING_RATE,
        warmup_steps=warmup_steps,
    )


def _make_optimizer(steps_per_epoch, epochs):
    return {optimizer}
'''


class _KerasOptimizer(Fragment):
    kind: ClassVar[str] = "optimizer"
    provides: ClassVar[tuple[str, ...]] = ("optimizer",)
    keras_class: ClassVar[str]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        schedule = use.params.get("lr_schedule")
        rate = "_learning_rate_schedule(steps_per_epoch, epochs)" if schedule else "LEARNING_RATE"
        optimizer = expression(
            "tf.keras.optimizers." + self.keras_class + "(learning_rate=" + rate + ")"
        )
        if schedule is None:
            out.add(Section.OPTIMIZER, statements(
                OPTIMIZER, learning_rate=float(use.params["learning_rate"]), optimizer=optimizer,
            ))
            return
        out.add(Section.OPTIMIZER, statements(
            SCHEDULED_OPTIMIZER, learning_rate=float(use.params["learning_rate"]),
            optimizer=optimizer, warmup_epochs=float(schedule["warmup_epochs"]),
            final_ratio=float(schedule["final_learning_rate_ratio"]),
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
