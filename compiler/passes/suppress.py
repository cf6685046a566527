"""Inline suppression: ``# recforge: ignore[rule-name, other-rule] why it is fine here``.

A trailing comment suppresses findings of the named rules on its own line; a comment alone on
a line suppresses them on the next line that has code. The reason is mandatory: a suppression
without one suppresses nothing and is itself reported (rule ``invalid-suppression``), so every
silenced finding carries a justification a reviewer can read.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable

from compiler.passes.findings import Finding, Severity
from compiler.passes.source import Project, SourceFile

INVALID_SUPPRESSION = "invalid-suppression"
_PATTERN = re.compile(r"#\s*recforge:\s*ignore\[([^\]]*)\](.*)$")


def suppressions(sf: SourceFile) -> tuple[dict[int, set[str]], list[Finding]]:
    """Line -> suppressed rule names, and findings for malformed suppressions."""
    if "recforge:" not in sf.source:  # the common case costs one substring search
        return {}, []
    by_line: dict[int, set[str]] = {}
    problems: list[Finding] = []
    pending: list[tuple[set[str], int]] = []  # own-line comments waiting for their code line
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(sf.source).readline))
    except (tokenize.TokenError, SyntaxError):
        return {}, []
    code_lines: set[int] = set()
    comments: list[tuple[int, int, str, bool]] = []
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            own_line = sf.lines[tok.start[0] - 1][: tok.start[1]].strip() == ""
            comments.append((tok.start[0], tok.start[1] + 1, tok.string, own_line))
        elif tok.type not in (
            tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER
        ):
            for line in range(tok.start[0], tok.end[0] + 1):
                code_lines.add(line)
    for line, col, text, own_line in comments:
        match = _PATTERN.search(text)
        if match is None:
            continue
        rules = {r.strip() for r in match.group(1).split(",") if r.strip()}
        reason = match.group(2).strip()
        if not rules or not reason:
            what = "a rule name" if not rules else "a reason"
            problems.append(
                Finding(
                    rule=INVALID_SUPPRESSION,
                    severity=Severity.WARNING,
                    path=sf.path,
                    line=line,
                    col=col,
                    message=(
                        f"suppression needs {what}: `# recforge: ignore[rule-name] why`; "
                        "it suppresses nothing as written"
                    ),
                )
            )
            continue
        if own_line:
            pending.append((rules, line))
        else:
            by_line.setdefault(line, set()).update(rules)
    sorted_code = sorted(code_lines)
    for rules, line in pending:
        target = next((c for c in sorted_code if c > line), None)
        if target is not None:
            by_line.setdefault(target, set()).update(rules)
    return by_line, problems


def apply_suppressions(project: Project, findings: Iterable[Finding]) -> list[Finding]:
    """Drop suppressed findings; add findings for malformed suppression comments."""
    tables: dict[str, dict[int, set[str]]] = {}
    kept: list[Finding] = []
    for sf in project:
        table, problems = suppressions(sf)
        tables[sf.path] = table
        kept.extend(problems)
    for finding in findings:
        if finding.rule in tables.get(finding.path, {}).get(finding.line, ()):
            continue
        kept.append(finding)
    return kept
