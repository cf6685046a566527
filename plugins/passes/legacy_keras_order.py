"""legacy-keras-order: TensorFlow/TFRS imported before TF_USE_LEGACY_KERAS=1 is set."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler.passes import Pass, Severity
from compiler.passes.facts import (
    LEGACY_KERAS_VAR,
    imported_modules,
    is_tf_package,
    legacy_keras_sets,
)


class LegacyKerasOrder(Pass):
    """TensorFlow or TensorFlow Recommenders is imported before ``TF_USE_LEGACY_KERAS=1`` is set.

    TFRS needs Keras 2 (``tf_keras``): under Keras 3 its ``__init__`` raises ImportError
    (tensorflow/recommenders#712, #717). TensorFlow decides which Keras ``tf.keras`` is when
    ``tensorflow`` is first imported, so the variable must be in ``os.environ`` before the first
    import of ``tensorflow`` or of anything that imports it (``tensorflow_*``, ``tfx*``).

    The pass applies to modules that set the variable or import ``tensorflow_recommenders``.
    An import counts as after the set when: it is at module level below a module-level set; or
    it is inside a function and the module sets the variable at module level, or the function
    sets it on an earlier line, or every call of the function in the module comes after a set
    (the generated trainers import TensorFlow lazily inside ``run_fn`` and its helpers).
    ``os.putenv`` does not count: TensorFlow reads ``os.environ``.
    """

    name: ClassVar[str] = "legacy-keras-order"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = "TensorFlow/TFRS imported before TF_USE_LEGACY_KERAS=1 is set"
    HAZARD: ClassVar[str] = "tensorflow/tensorflow_recommenders imported before the variable is set"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402
''',
        '''\
import os


def _model():
    import tensorflow_recommenders as tfrs

    return tfrs.tasks.Retrieval()


def run_fn(fn_args):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    print(tf.__version__, _model())
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import os

import tensorflow as tf  # <-

os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow_recommenders as tfrs
''',
        '''\
import os


def _model():
    import tensorflow_recommenders as tfrs  # <-

    return tfrs.tasks.Retrieval()


def run_fn(fn_args):
    model = _model()
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    return model
''',
        '''\
import tensorflow_recommenders as tfrs  # <-

task = tfrs.tasks.Retrieval()
''',
    )

    def finish(self) -> None:
        sf = self.file
        assert sf is not None
        imports: list[tuple[cst.Import | cst.ImportFrom, str]] = []
        for node in (*sf.nodes(cst.Import), *sf.nodes(cst.ImportFrom)):
            for module in imported_modules(node):
                if is_tf_package(module):
                    imports.append((node, module))
                    break
        if not imports:
            return
        sets = legacy_keras_sets(sf)
        if not sets and not any(
            m.split(".", 1)[0] == "tensorflow_recommenders" for _, m in imports
        ):
            return  # no TFRS and no legacy set-up: the module is not written for Keras 2
        # Positions are compared as pre-order numbers (same order as lines, and free).
        self.sets_by_scope: dict[cst.FunctionDef | None, list[int]] = {}
        for node in sets:
            scope = sf.enclosing_function(node)
            self.sets_by_scope.setdefault(scope, []).append(sf.order[node])
        self.calls: dict[str, list[cst.Call]] = {}
        for call in sf.nodes(cst.Call):
            if isinstance(call.func, cst.Name):
                self.calls.setdefault(call.func.value, []).append(call)
        self.memo: dict[cst.FunctionDef, bool] = {}
        # Only the first uncovered import in each scope matters: that is where TensorFlow gets
        # loaded (and Keras picked); later ones in the same scope just repeat the finding.
        reported: set[cst.FunctionDef | None] = set()
        for node, module in sorted(imports, key=lambda item: sf.order[item[0]]):
            scope = sf.enclosing_function(node)
            if scope in reported or self._covered(scope, sf.order[node]):
                continue
            reported.add(scope)
            if not sets:
                self.report(
                    node,
                    f"`{module}` is imported but the module never sets "
                    f'os.environ["{LEGACY_KERAS_VAR}"] = "1" (and it imports TFRS): TensorFlow '
                    "picks Keras 3 and TFRS raises ImportError",
                )
            else:
                set_node = min(sets, key=sf.order.__getitem__)
                self.report(
                    node,
                    f"`{module}` is imported before {LEGACY_KERAS_VAR}=1 is set (line "
                    f"{sf.pos(set_node)[0]}): TensorFlow has already picked Keras 3, and TFRS "
                    "raises ImportError",
                    related=[sf.location(set_node, f"{LEGACY_KERAS_VAR} set here")],
                )

    def _covered(self, scope: cst.FunctionDef | None, at: int) -> bool:
        """Whether code at pre-order number ``at`` in ``scope`` only runs after the set."""
        module_sets = self.sets_by_scope.get(None, [])
        if scope is None:
            return any(s < at for s in module_sets)
        if module_sets:
            return True  # module-level code runs before any function is called
        if any(s < at for s in self.sets_by_scope.get(scope, [])):
            return True
        return self._function_covered(scope)

    def _function_covered(self, fn: cst.FunctionDef) -> bool:
        if fn in self.memo:
            return self.memo[fn]
        self.memo[fn] = False  # recursion: assume not covered until shown
        sf = self.file
        assert sf is not None
        sites = self.calls.get(fn.name.value, [])
        covered = bool(sites) and all(
            self._covered(sf.enclosing_function(call), sf.order[call]) for call in sites
        )
        self.memo[fn] = covered
        return covered
