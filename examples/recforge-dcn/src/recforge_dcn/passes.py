"""dcn-cross-stack-x0: a stacked ``tfrs.layers.dcn.Cross`` layer called without ``x0``."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler.passes import Pass, Severity
from compiler.passes.source import dotted_name, walk

CROSS = "tensorflow_recommenders.layers.dcn.Cross"
SEQUENTIAL = frozenset({
    "tensorflow.keras.Sequential", "tensorflow.keras.models.Sequential", "tf_keras.Sequential",
    "tf_keras.models.Sequential", "keras.Sequential", "keras.models.Sequential",
})


class CrossStackX0(Pass):
    """A stacked ``tfrs.layers.dcn.Cross`` layer is called without the original input ``x0``.

    DCN-V2 crosses every layer with the tower's input: ``x = cross(x0, x)`` computes
    ``x0 * (W x + b) + x``, so ``l`` layers learn feature crosses up to degree ``l + 1``.
    Called with one argument, ``Cross`` takes that argument as ``x0`` too: ``x = cross(x)``
    computes ``x * (W x + b) + x``, the degree doubles with every layer, and the stack is no
    longer the DCN the config asked for (and its activations grow quickly). Stacking Cross
    layers in a ``tf.keras.Sequential`` does the same, since Sequential passes one input.

    Reported: in a ``for`` loop over a list of Cross layers (a name or ``self`` attribute
    assigned a list or comprehension of ``tfrs.layers.dcn.Cross(...)``), a call of the loop
    variable with one argument; and ``Sequential`` over more than one Cross layer.
    """

    name: ClassVar[str] = "dcn-cross-stack-x0"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = "stacked Cross layer is called without the original input x0"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf
import tensorflow_recommenders as tfrs


class CrossNetwork(tf.keras.Model):
    def __init__(self, depth):
        super().__init__()
        self.crosses = [tfrs.layers.dcn.Cross() for _ in range(depth)]
        self.single = tfrs.layers.dcn.Cross()

    def call(self, x0):
        x = x0
        for cross in self.crosses:
            x = cross(x0, x)
        return self.single(x)  # one layer on its own: x0 = x is the intended input
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf
import tensorflow_recommenders as tfrs


class CrossNetwork(tf.keras.Model):
    def __init__(self, depth):
        super().__init__()
        self.crosses = [tfrs.layers.dcn.Cross() for _ in range(depth)]
        self.stack = tf.keras.Sequential([tfrs.layers.dcn.Cross(), tfrs.layers.dcn.Cross()])  # <-

    def call(self, x):
        for cross in self.crosses:
            x = cross(x)  # <-
        return self.stack(x)
''',
    )

    def finish(self) -> None:
        sf = self.file
        if sf is None or "Cross" not in sf.source:
            return
        stacks = self._cross_stacks()
        for loop in sf.nodes(cst.For):
            if not isinstance(loop.target, cst.Name) or _target(loop.iter) not in stacks:
                continue
            variable = loop.target.value
            for node in walk(loop.body):
                if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) \
                        and node.func.value == variable and _single_input(node):
                    self.report(node, f"Cross layer '{variable}' of the stack "
                                      f"'{_target(loop.iter)}' is called with one input, so "
                                      "each layer crosses its own input instead of x0; call "
                                      f"it as {variable}(x0, x)")
        for call in sf.nodes(cst.Call):
            if sf.qualname(call.func) in SEQUENTIAL and call.args \
                    and self._is_stack(call.args[0].value):
                self.report(call, "Sequential passes one input to each Cross layer, so they "
                                  "cross their own inputs instead of x0; loop over the layers "
                                  "calling cross(x0, x)")

    def _is_cross(self, node: cst.CSTNode) -> bool:
        assert self.file is not None
        return isinstance(node, cst.Call) and self.file.qualname(node.func) == CROSS

    def _is_stack(self, value: cst.BaseExpression) -> bool:
        """A list or comprehension of Cross layers (a list of one is no stack)."""
        if isinstance(value, cst.ListComp | cst.GeneratorExp):
            return self._is_cross(value.elt)
        if isinstance(value, cst.List | cst.Tuple):
            return sum(self._is_cross(e.value) for e in value.elements) > 1
        return False

    def _cross_stacks(self) -> set[str]:
        """Names and ``self.<attr>`` targets assigned a list of Cross layers."""
        assert self.file is not None
        found: set[str] = set()
        for assign in self.file.nodes(cst.Assign):
            if self._is_stack(assign.value):
                found.update(t for t in (_target(a.target) for a in assign.targets) if t)
        return found


def _target(node: cst.BaseExpression) -> str | None:
    name = dotted_name(node)
    return name if name and (name.count(".") == 0 or name.startswith("self.")) else None


def _single_input(call: cst.Call) -> bool:
    """Called with x0 only: one positional argument and no ``x=`` keyword."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    keywords = {a.keyword.value for a in call.args if a.keyword is not None}
    return len(positional) == 1 and "x" not in keywords and not any(a.star for a in call.args)
