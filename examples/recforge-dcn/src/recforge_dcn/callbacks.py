"""The ``epoch_time`` training callback (kind ``callback``), selected by config alone::

    model.callbacks: [tensorboard, epoch_time]

It adds each epoch's wall-clock seconds to the Keras logs as ``epoch_seconds``, so every row of
``history`` in ``training_metrics.json`` carries it (Keras' History callback runs after the
callbacks a model is given, and records what they put in the logs).
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

EPOCH_TIMER = '''
class EpochTimer(tf.keras.callbacks.Callback):
    """Records each epoch's wall-clock seconds in the logs as epoch_seconds."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started
'''

EPOCH_TIMER_STEP = '''
callbacks.append(EpochTimer())
'''


class EpochTimeCallback(Fragment):
    kind: ClassVar[str] = "callback"
    name: ClassVar[str] = "epoch_time"
    description: ClassVar[str] = "each epoch's wall-clock seconds, as epoch_seconds in history"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.callbacks=[tensorboard,epoch_time]"]]
    fills: ClassVar[tuple[str, ...]] = ("callbacks",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("time")
        out.add(Section.HELPERS, statements(EPOCH_TIMER))
        # The callbacks slot is the body of the trainer's _training_callbacks(fn_args).
        out.add_to_function("_training_callbacks", statements(EPOCH_TIMER_STEP))
