"""The dataflow engine's values (``UNKNOWN``, ``Fact``, ``TupleV``, ``FuncV`` …), call records
and frames, and the small helpers the interpreter shares. Plain data.
"""


from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import libcst as cst

from compiler.passes.source import SourceFile

MAX_CONTEXTS = 8
MAX_DEPTH = 12
STEP_BUDGET = 250_000


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Nothing is known about the value.
UNKNOWN: Any = _Sentinel("UNKNOWN")
#: The ``None`` constant; it is the bottom of every join (``x if c else None`` keeps x's facts).
NONE: Any = _Sentinel("NONE")


@dataclasses.dataclass(frozen=True)
class Fact:
    """A pass-defined fact about a value: a kind, where it was established, and a note."""

    kind: str
    origin: cst.CSTNode | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class TupleV:
    """A tuple or list literal (or a function returning one) with known items."""

    items: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class SeqV:
    """A sequence of unknown length whose elements all have value ``elem``."""

    elem: Any


@dataclasses.dataclass(frozen=True)
class ModuleV:
    """An imported module or one of its attributes, or a builtin: ``tensorflow.io.gfile``."""

    qualname: str


@dataclasses.dataclass(frozen=True)
class ClassV:
    node: cst.ClassDef


@dataclasses.dataclass(frozen=True)
class InstanceV:
    """``self`` inside a method of a class defined in the module."""

    cls: cst.ClassDef


@dataclasses.dataclass(eq=False)
class FuncV:
    """A function, method or lambda of the module, with the frame it closes over."""

    node: cst.FunctionDef | cst.Lambda
    closure: Frame
    self_value: Any = None


@dataclasses.dataclass
class ArgV:
    node: cst.Arg
    keyword: str | None
    star: str
    value: Any


@dataclasses.dataclass
class CallInfo:
    """A call the pass is asked to give a value to.

    ``qname`` is set for calls of imported names and builtins (``os.path.exists``,
    ``builtins.open``); ``receiver``/``method`` for method calls on a value (``ds.batch(32)``).
    """

    node: cst.Call
    qname: str | None
    receiver: Any
    method: str | None
    args: list[ArgV]

    def arg(self, index: int | None, keyword: str | None = None) -> ArgV | None:
        """The argument at positional ``index`` or passed as ``keyword``."""
        positional = [a for a in self.args if a.keyword is None and not a.star]
        if index is not None and index < len(positional):
            return positional[index]
        if keyword is not None:
            for a in self.args:
                if a.keyword == keyword:
                    return a
        return None

    def value(self, index: int | None, keyword: str | None = None) -> Any:
        found = self.arg(index, keyword)
        return UNKNOWN if found is None else found.value


class Frame:
    def __init__(
        self, names: dict[str, Any], parent: Frame | None, returns: list[Any] | None = None
    ) -> None:
        self.names = names
        self.parent = parent
        self.returns: list[Any] = returns if returns is not None else []

    def lookup(self, name: str) -> tuple[bool, Any]:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.names:
                return True, frame.names[name]
            frame = frame.parent
        return False, None

    def fork(self) -> Frame:
        return Frame(dict(self.names), self.parent, self.returns)


class _OutOfBudget(Exception):
    pass


_OPS = {
    cst.Add: "+", cst.Subtract: "-", cst.Multiply: "*", cst.Divide: "/", cst.Modulo: "%",
    cst.FloorDivide: "//", cst.Power: "**", cst.MatrixMultiply: "@", cst.BitOr: "|",
    cst.BitAnd: "&", cst.BitXor: "^", cst.LeftShift: "<<", cst.RightShift: ">>",
}
_AUG_OPS = {
    cst.AddAssign: "+", cst.SubtractAssign: "-", cst.MultiplyAssign: "*", cst.DivideAssign: "/",
    cst.ModuloAssign: "%", cst.FloorDivideAssign: "//", cst.PowerAssign: "**",
    cst.BitOrAssign: "|", cst.BitAndAssign: "&", cst.BitXorAssign: "^",
    cst.LeftShiftAssign: "<<", cst.RightShiftAssign: ">>", cst.MatrixMultiplyAssign: "@",
}


def _body(block: cst.BaseSuite) -> Sequence[cst.CSTNode]:
    return block.body  # IndentedBlock.body: statements; SimpleStatementSuite.body: small ones


def _is_generator(fn: cst.FunctionDef, sf: SourceFile) -> bool:
    for node in sf.nodes(cst.Yield):
        for anc in sf.ancestors(node):
            if isinstance(anc, cst.FunctionDef | cst.Lambda):
                if anc is fn:
                    return True
                break
    return False

