"""scann-save-namespace: a ScaNN index saved without namespace_whitelist=["Scann"]."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler.passes import Pass, Severity
from compiler.passes.source import dotted_name, string_value, walk

# Callables that write a SavedModel, and the positional index of their `options` argument.
_SAVE_FUNCTIONS = {
    "tensorflow.saved_model.save": 3,
    "tensorflow.keras.models.save_model": 6,
    "tf_keras.models.save_model": 6,
}
_NOT_SAVEDMODEL_RECEIVERS = ("checkpoint", "ckpt", "manager", "saver")


class ScannSaveNamespace(Pass):
    """A module that builds a ScaNN index saves a SavedModel without
    ``tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])``.

    ScaNN's ops live in the ``Scann`` op namespace; without whitelisting it,
    ``tf.saved_model.save`` / ``model.save`` fail ("Op type not registered ... Scann>...") or write
    a model that serving cannot load (tensorflow/recommenders#182, #297).

    When the module constructs ``tfrs.layers.factorized_top_k.ScaNN`` anywhere, every
    ``tf.saved_model.save(...)``, ``save_model(...)`` and ``<obj>.save(path, ...)`` in it must pass
    ``options=`` whose ``namespace_whitelist`` contains ``"Scann"`` (inline, through a variable, or
    on either branch of a conditional). Options the pass cannot see (a parameter) are trusted.
    """

    name: ClassVar[str] = "scann-save-namespace"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = 'ScaNN index saved without namespace_whitelist=["Scann"]'
    HAZARD: ClassVar[str] = "ScaNN index saved without SaveOptions(namespace_whitelist=...)"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf
import tensorflow_recommenders as tfrs


def export(model, candidates, path, use_scann):
    if use_scann:
        index = tfrs.layers.factorized_top_k.ScaNN(model.query)
    else:
        index = tfrs.layers.factorized_top_k.BruteForce(model.query)
    index.index_from_dataset(candidates)
    options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
    tf.saved_model.save(index, path, options=options)
''',
        '''\
import tensorflow as tf
import tensorflow_recommenders as tfrs


def export(model, candidates, path):
    index = tfrs.layers.factorized_top_k.BruteForce(model.query)
    index.index_from_dataset(candidates)
    tf.saved_model.save(index, path)  # no ScaNN: no namespace needed
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf
import tensorflow_recommenders as tfrs


def export(model, candidates, path):
    index = tfrs.layers.factorized_top_k.ScaNN(model.query, k=100)
    index.index_from_dataset(candidates)
    tf.saved_model.save(index, path)  # <-
    index.save(path, options=tf.saved_model.SaveOptions())  # <-
''',
    )

    def finish(self) -> None:
        sf = self.file
        assert sf is not None
        if "ScaNN" not in sf.source:
            return
        scann = [c for c in sf.nodes(cst.Call) if self._is_scann(c)]
        if not scann:
            return
        for call in sf.nodes(cst.Call):
            options_index = self._save_options_index(call)
            if options_index is None:
                continue
            options = self._options_arg(call, options_index)
            if options is not None and self._whitelists_scann(options, call, 0):
                continue
            self.report(
                call,
                "SavedModel written without tf.saved_model.SaveOptions("
                'namespace_whitelist=["Scann"]) in a module that builds a ScaNN index '
                f"(line {sf.pos(scann[0])[0]}): saving or serving the index fails on the "
                "unregistered Scann ops",
                related=[sf.location(scann[0], "ScaNN index built here")],
            )

    def _is_scann(self, call: cst.Call) -> bool:
        assert self.file is not None
        qual = self.file.qualname(call.func) or dotted_name(call.func) or ""
        return qual.rsplit(".", 1)[-1] == "ScaNN" and (
            "tensorflow_recommenders" in qual or "factorized_top_k" in qual or qual == "ScaNN"
        )

    def _save_options_index(self, call: cst.Call) -> int | None:
        """The positional index of ``options`` if ``call`` writes a SavedModel, else None."""
        sf = self.file
        assert sf is not None
        qual = sf.qualname(call.func)
        if qual in _SAVE_FUNCTIONS:
            return _SAVE_FUNCTIONS[qual]
        func = call.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "save" and call.args):
            return None
        if sf.qualname(func.value) is not None:
            return None  # np.save, pickle...: a module function, not a model
        receiver = (dotted_name(func.value) or "").lower()
        if any(word in receiver for word in _NOT_SAVEDMODEL_RECEIVERS):
            return None  # tf.train.Checkpoint(Manager).save writes checkpoints
        return 5  # Model.save(filepath, overwrite, include_optimizer, save_format, signatures,
        #                      options)

    @staticmethod
    def _options_arg(call: cst.Call, index: int) -> cst.BaseExpression | None:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "options":
                return arg.value
        positional = [a for a in call.args if a.keyword is None and not a.star]
        return positional[index].value if index < len(positional) else None

    def _whitelists_scann(self, expr: cst.BaseExpression, at: cst.CSTNode, depth: int) -> bool:
        sf = self.file
        assert sf is not None
        if depth > 4:
            return True
        if isinstance(expr, cst.IfExp):
            return self._whitelists_scann(expr.body, at, depth + 1) or self._whitelists_scann(
                expr.orelse, at, depth + 1
            )
        if isinstance(expr, cst.Name):
            if expr.value == "None":
                return False
            assigned = self._assignments(expr.value, at)
            if not assigned:
                return True  # a parameter or something imported: cannot tell, trust it
            return any(self._whitelists_scann(v, at, depth + 1) for v in assigned)
        if isinstance(expr, cst.Call):
            qual = sf.qualname(expr.func) or dotted_name(expr.func) or ""
            if not qual.endswith("SaveOptions"):
                return True
            for arg in expr.args:
                if arg.keyword is not None and arg.keyword.value == "namespace_whitelist":
                    return self._names_scann(arg.value, at, depth + 1)
            return False
        return True

    def _names_scann(self, expr: cst.BaseExpression, at: cst.CSTNode, depth: int) -> bool:
        if isinstance(expr, cst.List | cst.Tuple | cst.Set):
            return any(string_value(e.value) == "Scann" for e in expr.elements) or any(
                not isinstance(e.value, cst.SimpleString) for e in expr.elements
            )
        if isinstance(expr, cst.Name) and depth <= 4:
            assigned = self._assignments(expr.value, at)
            return not assigned or any(self._names_scann(v, at, depth + 1) for v in assigned)
        return True

    def _assignments(self, name: str, at: cst.CSTNode) -> list[cst.BaseExpression]:
        """Values assigned to ``name`` in the function containing ``at``, or at module level."""
        sf = self.file
        assert sf is not None
        scope = sf.enclosing_function(at)
        values: list[cst.BaseExpression] = []
        for node in walk(scope.body) if scope is not None else ():
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    if isinstance(target.target, cst.Name) and target.target.value == name:
                        values.append(node.value)
        if not values:
            for stmt in sf.module.body:
                if isinstance(stmt, cst.SimpleStatementLine):
                    for small in stmt.body:
                        if isinstance(small, cst.Assign) and any(
                            isinstance(t.target, cst.Name) and t.target.value == name
                            for t in small.targets
                        ):
                            values.append(small.value)
        return values
