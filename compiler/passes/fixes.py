"""Applying ``Fix`` edits to source text, and re-checking until nothing fixable is left."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

from compiler.passes.base import Pass
from compiler.passes.cst_fixes import apply_cst_fixes, is_cst_fix
from compiler.passes.findings import Finding, Fix, SourceError, TextEdit
from compiler.passes.runner import parse_files, run_passes
from compiler.passes.source import SourceFile


def _offsets(source: str) -> list[int]:
    starts = [0]
    for index, char in enumerate(source):
        if char == "\n":
            starts.append(index + 1)
    return starts


def _clash(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    """Whether two edits (start, end, text) cannot both be applied."""
    (lo, hi, _), (other_lo, other_hi, _) = a, b
    if lo == hi and other_lo == other_hi:
        return lo == other_lo  # two insertions at one point: their order would be arbitrary
    if lo == hi:
        return other_lo < lo < other_hi
    if other_lo == other_hi:
        return lo < other_lo < hi
    return lo < other_hi and other_lo < hi


def apply_fixes(source: str, fixes: Iterable[Fix]) -> tuple[str, int]:
    """Apply as many fixes as do not overlap each other; returns (new source, fixes applied).

    A fix is all-or-nothing: if any of its edits overlaps an edit already taken, the whole fix
    waits for the next round (``fix_files`` re-checks and tries again). Identical edits from
    different fixes (e.g. the same added import) are applied once.
    """
    starts = _offsets(source)

    def offset(line: int, col: int) -> int:
        return starts[line - 1] + col - 1 if line - 1 < len(starts) else len(source)

    taken: list[tuple[int, int, str]] = []
    seen: set[TextEdit] = set()
    applied = 0
    for fix in fixes:
        spans = [
            (offset(e.line, e.col), offset(e.end_line, e.end_col), e.text)
            for e in fix.edits
            if e not in seen
        ]
        if any(_clash(span, other) for span in spans for other in taken):
            continue
        taken.extend(spans)
        seen.update(fix.edits)
        applied += 1
    for lo, hi, text in sorted(taken, key=lambda s: (s[0], s[1]), reverse=True):
        source = source[:lo] + text + source[hi:]
    return source, applied


def fix_files(
    files: Mapping[str, str], passes: Iterable[type[Pass]], *, rounds: int = 5
) -> tuple[dict[str, str], int, list[Finding]]:
    """Fix, re-check, repeat: returns (new sources, fixes applied, findings that remain)."""
    classes = list(passes)
    current = dict(files)
    total = 0
    project = parse_files(current)
    findings = run_passes(project, classes)
    for _ in range(rounds):
        by_path: dict[str, list[Fix]] = {}
        for finding in findings:
            if finding.fix is not None:
                by_path.setdefault(finding.path, []).append(finding.fix)
        if not by_path:
            break
        progress = 0
        for path, fixes in by_path.items():
            tree_fixes = [fix for fix in fixes if is_cst_fix(fix)]
            if tree_fixes:  # on the tree the findings came from; text fixes wait a round
                tree, applied = apply_cst_fixes(project.files[path].module, tree_fixes)
                fixed = tree.code
            else:
                fixed, applied = apply_fixes(current[path], fixes)
            fixed = prune_orphaned_imports(current[path], fixed)
            try:
                SourceFile(path, fixed)
            except SourceError:
                continue  # a fix must never break the file; leave it for a human
            current[path] = fixed
            progress += applied
        total += progress
        project = parse_files(current)
        findings = run_passes(project, classes)
        if not progress:
            break
    return current, total, findings


def _used_names(tree: ast.AST) -> set[str]:
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            root: ast.AST = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name):
                used.add(root.id)
    return used


def prune_orphaned_imports(before: str, after: str) -> str:
    """Remove imports that a fix left unused (``import glob`` once no ``glob.glob`` remains).

    Only imports that *were* used before the fix and are not after it are removed, and only
    one-name import statements on lines of their own, so nothing a human wrote unused, and no
    shared line, is touched.
    """
    try:
        old_tree, new_tree = ast.parse(before), ast.parse(after)
    except SyntaxError:
        return after
    old_used, new_used = _used_names(old_tree), _used_names(new_tree)
    lines = after.splitlines(keepends=True)
    doomed: list[tuple[int, int]] = []
    for node in ast.walk(new_tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or len(node.names) != 1:
            continue
        alias = node.names[0]
        if alias.name == "*":
            continue
        bound = alias.asname or alias.name.split(".")[0]
        if bound in new_used or bound not in old_used:
            continue
        first, last = node.lineno, node.end_lineno or node.lineno
        head = lines[first - 1][: node.col_offset]
        tail = lines[last - 1][node.end_col_offset or 0 :]
        if head.strip() or tail.strip():
            continue  # shares its line with other code
        doomed.append((first, last))
    for first, last in sorted(doomed, reverse=True):
        del lines[first - 1 : last]
    pruned = "".join(lines)
    try:
        ast.parse(pruned)
    except SyntaxError:  # e.g. the import was a block's only statement
        return after
    return pruned
