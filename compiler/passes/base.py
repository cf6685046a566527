"""The ``Pass`` base class a static check subclasses, and its VALID/INVALID examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import libcst as cst

from compiler.passes.findings import Finding, Fix, Location, Severity
from compiler.passes.source import Project, SourceFile

#: A VALID/INVALID example: one module's source (checked as ``trainer_module.py``), or a mapping
#: of file name to source for passes that look at several files of one compile.
Example = str | Mapping[str, str]
#: File name a single-source example is checked under.
EXAMPLE_FILE = "trainer_module.py"
#: An INVALID example marks each line a finding must point at with this comment.
EXPECT_MARKER = "# <-"

_RULE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

# --------------------------------------------------------------------------------------------
# Passes
# --------------------------------------------------------------------------------------------


class Pass:
    """A static check. Subclass it in a module of its own and register it with
    ``@hookimpl def register_passes(): return [MyPass]``.

    Class attributes every concrete pass sets:
      ``name``      kebab-case rule name, used in output and in ``# recforge: ignore[name] why``;
      ``severity``  the default severity of its findings;
      ``MESSAGE``   one line saying what is wrong (the default finding message);
      ``VALID`` / ``INVALID``  code examples (see ``Example``); each INVALID example marks the
                    lines a finding must point at with ``# <-``.
    The class docstring explains the hazard; docs/passes.md is generated from all of it.

    A module pass gets one instance per file. It may define ``visit_<Node>(node)`` and
    ``leave_<Node>(node)`` methods (called from one shared walk of the tree, in source order;
    the file's index and parent map are still partial then, so collect there and decide in
    ``finish()``) and/or ``finish()`` (called after the walk, with the whole index). A pass
    that needs every file of the compile at once sets ``project_wide = True`` and implements
    ``check_project()``; ``self.file`` is then None and ``self.project`` holds all files.
    """

    name: ClassVar[str]
    severity: ClassVar[Severity]
    MESSAGE: ClassVar[str]
    VALID: ClassVar[Sequence[Example]] = ()
    INVALID: ClassVar[Sequence[Example]] = ()
    #: The hazards.md row(s) this pass covers, for the docs.
    HAZARD: ClassVar[str] = ""
    project_wide: ClassVar[bool] = False

    def __init__(self, file: SourceFile | None, project: Project) -> None:
        self.file = file
        self.project = project
        self.findings: list[Finding] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            problems = validate_pass(cls)
            if problems:
                raise TypeError(f"pass {cls.__qualname__}: " + "; ".join(problems))

    def finish(self) -> None:
        """Called once per file after the shared walk (module passes)."""

    def check_project(self) -> None:
        """Called once per run with every file in ``self.project`` (project-wide passes)."""

    def report(
        self,
        node: cst.CSTNode,
        message: str | None = None,
        *,
        file: SourceFile | None = None,
        fix: Fix | None = None,
        related: Iterable[Location] = (),
        severity: Severity | None = None,
    ) -> None:
        """Record a finding at ``node`` (in ``file``, default: the file being checked)."""
        where = file or self.file
        assert where is not None, "project-wide passes must say which file a finding is in"
        line, col = where.pos(node)
        self.report_at(where.path, line, col, message, fix=fix, related=related, severity=severity)

    def report_at(
        self,
        path: str,
        line: int,
        col: int,
        message: str | None = None,
        *,
        fix: Fix | None = None,
        related: Iterable[Location] = (),
        severity: Severity | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                rule=self.name,
                severity=severity or self.severity,
                path=path,
                line=line,
                col=col,
                message=message or self.MESSAGE,
                fix=fix,
                related=tuple(related),
            )
        )


def validate_pass(cls: type) -> list[str]:
    """What is wrong with a pass class (empty when nothing is). The registry may call it too."""
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        problems.append(f"name must be kebab-case, got {name!r}")
    if not isinstance(getattr(cls, "severity", None), Severity):
        problems.append("severity must be a Severity")
    message = getattr(cls, "MESSAGE", None)
    if not isinstance(message, str) or not message.strip():
        problems.append("MESSAGE must be a non-empty string")
    for attr in ("VALID", "INVALID"):
        examples = getattr(cls, attr, ())
        if isinstance(examples, str) or not isinstance(examples, Sequence) or not examples:
            problems.append(f"{attr} must be a non-empty sequence of examples")
            continue
        for example in examples:
            if not isinstance(example, str | Mapping):
                problems.append(f"{attr} examples must be source text or {{file: source}}")
    return problems


def example_files(example: Example) -> dict[str, str]:
    """An example as ``{file name: source}``."""
    if isinstance(example, str):
        return {EXAMPLE_FILE: example}
    return dict(example)


def expected_lines(example: Example) -> set[tuple[str, int]]:
    """The (file, line) pairs an INVALID example marks with ``# <-``."""
    marked: set[tuple[str, int]] = set()
    for path, source in example_files(example).items():
        for number, line in enumerate(source.splitlines(), start=1):
            if EXPECT_MARKER in line:
                marked.add((path, number))
    return marked


