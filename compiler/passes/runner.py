"""Running passes: parse each file once, walk it once, dispatch every pass, then de-duplicate,
apply ``# recforge: ignore[...]`` suppressions and sort the findings.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import libcst as cst

from compiler.passes.base import Pass
from compiler.passes.findings import Finding, Severity
from compiler.passes.source import (
    Project,
    SourceFile,
    _walk_file,
    iter_children,
)
from compiler.passes.suppress import apply_suppressions

# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _dispatch_tables(
    passes: Sequence[Pass],
) -> tuple[dict[type, list[Callable[[Any], Any]]], dict[type, list[Callable[[Any], Any]]]]:
    visits: dict[type, list[Callable[[Any], Any]]] = {}
    leaves: dict[type, list[Callable[[Any], Any]]] = {}
    for instance in passes:
        for attr in dir(type(instance)):
            if attr.startswith("visit_") or attr.startswith("leave_"):
                node_type = getattr(cst, attr[6:], None)
                if isinstance(node_type, type) and issubclass(node_type, cst.CSTNode):
                    table = visits if attr.startswith("visit_") else leaves
                    table.setdefault(node_type, []).append(getattr(instance, attr))
    return visits, leaves


def parse_files(files: Mapping[str, str | cst.Module]) -> Project:
    """Parse every file (raising ``SourceError`` for the first that does not parse)."""
    return Project({path: SourceFile(path, source) for path, source in files.items()})


def run_passes(
    files: Mapping[str, str | cst.Module] | Project, passes: Iterable[type[Pass]]
) -> list[Finding]:
    """Run ``passes`` over ``files`` (file name -> source text, or a libcst Module whose
    ``.code`` is exactly the emitted text) and return the findings.

    Findings are sorted by (path, line, col, rule), de-duplicated per place and rule, and
    ``# recforge: ignore[rule] reason`` comments are honoured. Raises ``SourceError`` when a file
    does not parse.
    """
    with _deep_recursion():
        project = files if isinstance(files, Project) else parse_files(files)
        raw = _run_all(project, list(passes))
    unique: dict[tuple[str, int, int, str], Finding] = {}
    for finding in raw:
        unique.setdefault((finding.path, finding.line, finding.col, finding.rule), finding)
    kept = apply_suppressions(project, list(unique.values()))
    return sorted(kept, key=Finding.sort_key)


@contextlib.contextmanager
def _deep_recursion(limit: int = 20_000) -> Iterator[None]:
    """Trees are walked recursively (libcst, pyflakes and the passes): give machine-written
    code with very long expressions or elif chains room, then restore the limit."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _run_all(project: Project, classes: list[type[Pass]]) -> list[Finding]:
    module_classes = [cls for cls in classes if not cls.project_wide]
    project_classes = [cls for cls in classes if cls.project_wide]
    raw: list[Finding] = []
    for sf in project:
        instances = [cls(sf, project) for cls in module_classes]
        # Every file is indexed once, even with no module passes (project-wide passes use the
        # index too); a Project reused across calls only replays the visit methods.
        if not sf._by_type:
            visits, leaves = _dispatch_tables(instances)
            _walk_file(sf, visits, leaves)
        elif instances:
            _replay(sf, instances)
        for instance in instances:
            _guarded(instance, instance.finish, sf.path)
            raw.extend(instance.findings)
    for cls in project_classes:
        instance = cls(None, project)
        _guarded(instance, instance.check_project, next(iter(project.files), ""))
        raw.extend(instance.findings)
    return raw


def _guarded(instance: Pass, step: Callable[[], None], path: str) -> None:
    """Run one pass; a file too deep even for the raised limit is reported, not a crash."""
    try:
        step()
    except RecursionError:
        instance.findings.append(
            Finding(
                rule=instance.name,
                severity=Severity.WARNING,
                path=path,
                line=1,
                col=1,
                message=f"not checked by {instance.name}: the code nests too deeply to analyse",
            )
        )


def _replay(sf: SourceFile, instances: Sequence[Pass]) -> None:
    """Dispatch visit/leave methods over an already indexed file (a reused Project)."""
    visits, leaves = _dispatch_tables(instances)
    if not visits and not leaves:
        return

    def visit(node: cst.CSTNode) -> None:
        for handler in visits.get(type(node), ()):
            handler(node)
        for child in iter_children(node):
            visit(child)
        for handler in leaves.get(type(node), ()):
            handler(node)

    visit(sf.module)
