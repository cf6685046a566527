"""Findings: what a pass reports (rule, severity, place, message, optional fix).

Plain data shared by the passes, the runner, suppression, fixes and the CLI output formats.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import libcst as cst


class Severity(str, enum.Enum):
    """How bad a finding is. Only ``error`` findings fail a compile or ``compiler.check``."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class Location:
    """A 1-based (line, col) place in a file, with a note saying what is there."""

    path: str
    line: int
    col: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class TextEdit:
    """Replace the text from (line, col) up to, not including, (end_line, end_col); 1-based."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclasses.dataclass(frozen=True, eq=False)
class NodeChange:
    """Replace ``old``, a node of the checked file's tree, with the libcst node ``new``."""

    old: cst.CSTNode
    new: cst.CSTNode


@dataclasses.dataclass(frozen=True, eq=False)
class AddImport:
    """``import module as alias`` at the top of ``scope`` (a function of the checked tree, for
    a lazy import, or None for the module), after its docstring, imports and environment set-up.
    """

    module: str
    alias: str | None = None
    scope: cst.FunctionDef | None = None


@dataclasses.dataclass(frozen=True)
class Fix:
    """A mechanical rewrite of the finding's file that resolves it.

    A pass gives either text ``edits``, or libcst ``changes`` and ``imports`` (made with
    ``compiler.passes.fixes.cst_fix``, which also fills ``edits`` with the same rewrite as text,
    for the JSON, SARIF and manifest output). ``fix_files`` applies CST fixes to the tree.
    """

    description: str
    edits: tuple[TextEdit, ...]
    changes: tuple[NodeChange, ...] = ()
    imports: tuple[AddImport, ...] = ()


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem a pass found. ``line``/``col`` are 1-based, as in the emitted file."""

    rule: str
    severity: Severity
    path: str
    line: int
    col: int
    message: str
    fix: Fix | None = None
    #: Other places that explain the finding (e.g. where a dataset was first batched).
    related: tuple[Location, ...] = ()

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.col, self.rule, self.message)

    def to_dict(self, *, detail: bool = False) -> dict[str, Any]:
        """The JSON shape: path, line, col, rule, severity, message.

        ``detail=True`` adds ``related`` and ``fix`` (for the compile manifest) when present.
        """
        out: dict[str, Any] = {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
        }
        if detail and self.related:
            out["related"] = [dataclasses.asdict(loc) for loc in self.related]
        if detail and self.fix is not None:
            out["fix"] = {
                "description": self.fix.description,
                "edits": [dataclasses.asdict(e) for e in self.fix.edits],
            }
        return out


class SourceError(ValueError):
    """A file that cannot be parsed as Python."""

    def __init__(self, path: str, line: int, col: int, reason: str) -> None:
        super().__init__(f"{path}:{line}:{col}: cannot parse: {reason}")
        self.path, self.line, self.col, self.reason = path, line, col, reason

