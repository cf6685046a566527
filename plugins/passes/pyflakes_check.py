"""pyflakes: undefined names, unused imports, redefinitions (and the rest of pyflakes)."""

from __future__ import annotations

import re
from typing import ClassVar

import pyflakes.messages as pm
from pyflakes.checker import Checker

from compiler.passes import Pass, Severity

# Messages that are bugs in generated code; every other pyflakes message is a warning.
_ERRORS: tuple[type[pm.Message], ...] = (
    pm.UndefinedName, pm.UndefinedLocal, pm.UndefinedExport, pm.UnusedImport,
    pm.RedefinedWhileUnused, pm.ImportShadowedByLoopVar, pm.DuplicateArgument,
    pm.ImportStarUsed, pm.ImportStarUsage, pm.ReturnOutsideFunction, pm.YieldOutsideFunction,
    pm.ContinueOutsideLoop, pm.BreakOutsideLoop, pm.LateFutureImport,
    pm.FutureFeatureNotDefined, pm.TwoStarredExpressions,
    pm.TooManyExpressionsInStarredAssignment, pm.DefaultExceptNotLast,
)
# flake8's codes, so an existing `# noqa: F401` keeps meaning what its author meant.
_CODES: dict[str, str] = {
    "UnusedImport": "F401", "ImportShadowedByLoopVar": "F402", "ImportStarUsed": "F403",
    "LateFutureImport": "F404", "ImportStarUsage": "F405", "ImportStarNotPermitted": "F406",
    "FutureFeatureNotDefined": "F407", "FStringMissingPlaceholders": "F541",
    "MultiValueRepeatedKeyLiteral": "F601", "MultiValueRepeatedKeyVariable": "F602",
    "IsLiteral": "F632", "RedefinedWhileUnused": "F811", "UndefinedName": "F821",
    "UndefinedExport": "F822", "UndefinedLocal": "F823", "DuplicateArgument": "F831",
    "UnusedVariable": "F841", "UnusedAnnotation": "F842", "RaiseNotImplemented": "F901",
}
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z][0-9]+(?:[,\s]+[A-Z][0-9]+)*))?", re.I)


class Pyflakes(Pass):
    """What pyflakes finds: undefined names, unused imports, redefinitions, and more.

    Generated code has no human reading it before it runs on a cluster; an undefined name
    there is a NameError an hour into a pipeline. This pass runs the pyflakes library on the
    file. Undefined names, unused and star imports, redefinitions, duplicate arguments and
    misplaced ``return``/``yield``/``break`` are errors; everything else pyflakes says (unused
    local variables, f-strings without placeholders, ``is`` with a literal ...) is a warning.
    A flake8-style ``# noqa`` / ``# noqa: F401`` on the line is honoured as well as
    ``# recforge: ignore[pyflakes] reason``.
    """

    name: ClassVar[str] = "pyflakes"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = "pyflakes: undefined name, unused import or redefinition"
    HAZARD: ClassVar[str] = "Undefined names, unused imports, redefinitions"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import os


def run_fn(fn_args):
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(fn_args.model_run_dir, "x"))
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import json  # <-
import os


def run_fn(fn_args):
    return os.path.join(fn_args.model_run_dir, metrics_name)  # <-


def run_fn(fn_args):  # <-
    return None
''',
    )

    def finish(self) -> None:
        sf = self.file
        assert sf is not None
        try:
            tree = sf.ast
        except SyntaxError as exc:  # libcst accepted what CPython rejects
            self.report_at(sf.path, exc.lineno or 1, (exc.offset or 0) + 1, f"syntax: {exc.msg}")
            return
        checker = Checker(tree, filename=sf.path, withDoctest=False)
        for message in sorted(checker.messages, key=lambda m: (m.lineno, m.col)):
            kind = type(message).__name__
            line_text = sf.lines[message.lineno - 1] if message.lineno <= len(sf.lines) else ""
            noqa = _NOQA.search(line_text)
            if noqa is not None:
                codes = noqa.group("codes")
                if codes is None or _CODES.get(kind, "F") in re.split(r"[,\s]+", codes.upper()):
                    continue
            self.report_at(
                sf.path,
                message.lineno,
                message.col + 1,
                message.message % message.message_args,
                severity=Severity.ERROR if isinstance(message, _ERRORS) else Severity.WARNING,
            )
