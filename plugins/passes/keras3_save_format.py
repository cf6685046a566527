"""keras3-save-format: ``save(..., save_format="tf")`` in a module that runs under Keras 3."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler.passes import Pass, Project, Severity, SourceFile
from compiler.passes.facts import LEGACY_KERAS_VAR, uses_legacy_keras
from compiler.passes.source import string_value

_SAVERS = frozenset({"save", "save_model", "ModelCheckpoint"})


class Keras3SaveFormat(Pass):
    """``model.save(..., save_format="tf")`` where Keras 3 is in charge.

    Keras 3 removed the ``save_format`` argument: ``save_format="tf"`` raises ValueError
    ("The `save_format` argument is deprecated in Keras 3"), so the trainer dies at export,
    after all the training time. Under Keras 3 a SavedModel is written with
    ``model.export(path)`` or ``tf.saved_model.save(model, path)``.

    A module runs under Keras 3 unless it sets ``TF_USE_LEGACY_KERAS=1`` or imports ``tf_keras``
    (legacy-keras-order checks that the set comes first). Calls named ``save``, ``save_model``
    and ``ModelCheckpoint`` with ``save_format="tf"`` are reported.
    """

    name: ClassVar[str] = "keras3-save-format"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = 'save_format="tf" is not accepted by Keras 3'
    HAZARD: ClassVar[str] = 'model.save(..., save_format="tf") under Keras 3'

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"


def export(model, path):
    model.save(path, save_format="tf")  # Keras 2 (tf_keras): fine
''',
        '''\
import tensorflow as tf


def export(model, path):
    tf.saved_model.save(model, path)
    model.save(path + ".keras")
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf


def export(model, path):
    model.save(path, save_format="tf")  # <-
    tf.keras.models.save_model(model, path, save_format="tf")  # <-
''',
    )

    def __init__(self, file: SourceFile | None, project: Project) -> None:
        super().__init__(file, project)
        self._candidates: list[cst.Arg] = []

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else (
            func.value if isinstance(func, cst.Name) else None
        )
        if name not in _SAVERS:
            return
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "save_format":
                if string_value(arg.value) == "tf":
                    self._candidates.append(arg)

    def finish(self) -> None:
        if not self._candidates or self.file is None or uses_legacy_keras(self.file):
            return
        for arg in self._candidates:
            self.report(
                arg,
                'save_format="tf" raises ValueError under Keras 3 (this module does not set '
                f"{LEGACY_KERAS_VAR}=1 or import tf_keras); use model.export(path) or "
                "tf.saved_model.save(model, path)",
            )
