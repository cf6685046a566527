"""Running passes: parse each file once, walk it once, dispatch every pass, then de-duplicate,
apply ``# recforge: ignore[...]`` suppressions and sort the findings.

A compile passes a ``PassCache``: the findings of the module passes are kept per file text,
those of the project-wide passes per set of file texts, and the final findings per set of file
texts, each keyed by the sha256 of the texts and the pass classes themselves (a class object
stands for its code in this process). A sweep's points share the files that do not change
(the Transform module), and a process that compiles the same config again skips the passes.
Module passes see one file (``Pass``: a pass that reads other files is ``project_wide``), so a
file's findings depend only on its text and the passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections import OrderedDict
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


class PassCache:
    """Findings of earlier runs, by text digest and pass classes (least recently used out).

    Findings are immutable, so a hit hands back the very objects a fresh run made; their
    ``fix`` may point into the tree of that earlier parse, so a cache serves reports (a
    compile's manifest and summary), not ``fix_files``, which runs without one.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], tuple[Finding, ...]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple[Any, ...]) -> tuple[Finding, ...] | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def has(self, files: Mapping[str, str], passes: Sequence[type[Pass]]) -> bool:
        """Whether the findings of ``passes`` over these texts are here."""
        return _result_key(files, passes) in self._entries

    def put(self, key: tuple[Any, ...], findings: Iterable[Finding]) -> None:
        self._entries[key] = tuple(findings)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_passes(
    files: Mapping[str, str | cst.Module] | Project, passes: Iterable[type[Pass]],
    cache: PassCache | None = None,
) -> list[Finding]:
    """Run ``passes`` over ``files`` (file name -> source text, or a libcst Module whose
    ``.code`` is exactly the emitted text) and return the findings.

    Findings are sorted by (path, line, col, rule), de-duplicated per place and rule, and
    ``# recforge: ignore[rule] reason`` comments are honoured. Raises ``SourceError`` when a file
    does not parse. With a ``cache``, results of the same texts and passes are reused.
    """
    classes = list(passes)
    if cache is None:
        with _deep_recursion():
            project = files if isinstance(files, Project) else parse_files(files)
            return _finish(project, _run_all(project, classes))
    texts = {path: source.source if isinstance(source, SourceFile) else
             source.code if isinstance(source, cst.Module) else source
             for path, source in (files.files if isinstance(files, Project) else files).items()}
    key = _result_key(texts, classes)
    digests = key[1]
    found = cache.get(key)
    if found is None:
        with _deep_recursion():
            project = files if isinstance(files, Project) else parse_files(files)
            found = tuple(_finish(project, _run_all(project, classes, cache, dict(digests))))
        cache.put(key, found)
    return list(found)


def _result_key(texts: Mapping[str, str], classes: Sequence[type[Pass]]) -> tuple[Any, ...]:
    return ("result", tuple((path, text_digest(text)) for path, text in texts.items()),
            tuple(classes))


def _finish(project: Project, raw: list[Finding]) -> list[Finding]:
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


def _run_all(project: Project, classes: list[type[Pass]], cache: PassCache | None = None,
             digests: Mapping[str, str] | None = None) -> list[Finding]:
    module_classes = [cls for cls in classes if not cls.project_wide]
    project_classes = [cls for cls in classes if cls.project_wide]
    raw: list[Finding] = []
    for sf in project:
        file_key = ("file", sf.path, (digests or {}).get(sf.path), tuple(module_classes))
        cached = cache.get(file_key) if cache is not None else None
        instances = [cls(sf, project) for cls in module_classes] if cached is None else []
        # Every file is indexed once, even with no module passes (project-wide passes use the
        # index too); a Project reused across calls only replays the visit methods.
        if not sf._by_type:
            visits, leaves = _dispatch_tables(instances)
            _walk_file(sf, visits, leaves)
        elif instances:
            _replay(sf, instances)
        if cached is not None:
            raw.extend(cached)
            continue
        found: list[Finding] = []
        for instance in instances:
            _guarded(instance, instance.finish, sf.path)
            found.extend(instance.findings)
        if cache is not None:
            cache.put(file_key, found)
        raw.extend(found)
    project_key = ("project", tuple(sorted((digests or {}).items())), tuple(project_classes))
    cached = cache.get(project_key) if cache is not None and project_classes else None
    if cached is not None:
        return raw + list(cached)
    found = []
    for cls in project_classes:
        instance = cls(None, project)
        _guarded(instance, instance.check_project, next(iter(project.files), ""))
        found.extend(instance.findings)
    if cache is not None and project_classes:
        cache.put(project_key, found)
    return raw + found


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
