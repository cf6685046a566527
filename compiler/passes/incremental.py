"""Parsing a file again after a small edit: only the changed top-level statements are parsed.

A sweep's points, and a compile after editing one value, give trainer modules that differ from
the previous one in a statement or two (``LEARNING_RATE = 0.002``), and a full libcst parse is
about 40% of the passes' time. ``reparse(path, text)`` keeps the last tree parsed for each file
name with the text of each of its top-level statements; for a new text it keeps the statements
whose text is unchanged (libcst trees are immutable, so the nodes are shared) and parses only
the text of the changed ones. It answers None, and the caller parses the whole text, when that
is not known to give the tree a full parse gives: changed text must be whole top-level
statements whose leading lines are blank or comments at column 0 (as a full parse attaches them
to the statement after), after the first statement, parsing alone with the file's indentation
and newline and nothing left over after its last statement; and the pieces must add up to the
new text. Header comments (the config hash) may change too.
``tests/test_compile_cache.py`` compares the trees with full parses (``deep_equals``).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst


@dataclass
class _Parsed:
    text: str
    module: cst.Module
    #: The header's text, then each top-level statement's (None until first needed).
    pieces: list[str] | None = None


_LAST: dict[str, _Parsed] = {}
#: Past this share of the text changed (between the common start and end), parse it whole.
MAX_CHANGED_SHARE = 0.9
#: How many old statements after a change are looked for to resume matching.
RESYNC = 4


def remember(path: str, text: str, module: cst.Module) -> None:
    """``module`` is the tree of ``text`` (parsed whole or by ``reparse``)."""
    _LAST[path] = _Parsed(text, module)


def reparse(path: str, text: str) -> cst.Module | None:
    """The tree of ``text`` built from the last tree of ``path``, or None (parse it whole)."""
    last = _LAST.get(path)
    if last is None or last.module.footer or not last.module.has_trailing_newline:
        return None
    old = last.module
    if _changed_share(_after_lines(last.text, len(old.header)),
                      _after_lines(text, len(old.header))) > MAX_CHANGED_SHARE:
        return None  # most of the file changed: a full parse costs less than matching
    if last.pieces is None:
        last.pieces = [_header_text(old), *(old.code_for_node(s) for s in old.body)]
        if "".join(last.pieces) != last.text:
            return None
    old_header, statements = last.pieces[0], last.pieces[1:]
    # The header comments (the config hash) change with the config: the same number of
    # comment lines, parsed alone, are the new header.
    header = "".join(text.splitlines(keepends=True)[:old_header.count("\n")])
    if not all(line.startswith("#") or not line.strip() for line in header.splitlines()):
        return None
    if header != old_header:
        try:
            new_header = cst.parse_module(header)
        except Exception:  # noqa: BLE001 - the full parse reports it
            return None
        if new_header.body or new_header.footer or len(new_header.header) != len(old.header):
            return None
        old = old.with_changes(header=new_header.header)
    body: list[cst.BaseStatement] = []
    pieces = [header]
    start, index = len(header), 0
    while index < len(statements) or start < len(text):
        if index < len(statements) and text.startswith(statements[index], start):
            body.append(old.body[index])
            pieces.append(statements[index])
            start += len(statements[index])
            index += 1
            continue
        if start == len(text):  # the file's last statements were removed
            break
        # Changed: the text up to where one of the next old statements comes again (or to
        # the end) is new statements, parsed alone (none: statements were removed).
        end, resume = len(text), len(statements)
        for after in range(index + 1, min(index + RESYNC, len(statements)) + 1):
            if after == len(statements):
                break
            found = text.find(statements[after], start)
            if found != -1 and _whole_statements(statements[after]):
                end, resume = found, after
                break
        parsed = _parse_statements(text[start:end], old, first=not body) if end > start else []
        if parsed is None:
            return None
        body.extend(parsed)
        pieces.extend(old.code_for_node(statement) for statement in parsed)
        start, index = end, resume
    module = old.with_changes(body=body)
    if "".join(pieces) != text:
        return None
    _LAST[path] = _Parsed(text, module, pieces)
    return module


def _parse_statements(changed: str, module: cst.Module, *, first: bool
                      ) -> list[cst.BaseStatement] | None:
    """``changed`` (whole top-level statements) as a full parse of the file would give them."""
    # At the file's start a full parse puts leading comments in the header.
    if first or not _whole_statements(changed):
        return None
    try:
        part = cst.parse_module(changed)
    except Exception:  # noqa: BLE001 - a syntax error: the full parse reports it
        return None
    if (part.footer or not part.body or not part.has_trailing_newline
            or part.default_indent != module.default_indent
            or part.default_newline != module.default_newline):
        return None
    body = list(part.body)
    if part.header:  # mid-file, the lines before a statement are its leading lines
        body[0] = body[0].with_changes(leading_lines=[*part.header, *body[0].leading_lines])
    return body


def _changed_share(old: str, new: str) -> float:
    """The share of ``new`` between the longest start and end it has in common with ``old``."""
    if not new:
        return 1.0
    limit = min(len(old), len(new))
    low, high = 0, limit  # binary search on slices: C-speed comparisons
    while low < high:
        middle = (low + high + 1) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle - 1
    start = low
    low, high = 0, limit - start
    while low < high:
        middle = (low + high + 1) // 2
        if old[len(old) - middle:] == new[len(new) - middle:]:
            low = middle
        else:
            high = middle - 1
    return (len(new) - start - low) / len(new)


def _after_lines(text: str, count: int) -> str:
    """``text`` without its first ``count`` lines."""
    start = 0
    for _ in range(count):
        start = text.find("\n", start) + 1
        if not start:
            return ""
    return text[start:]


def _header_text(module: cst.Module) -> str:
    return "".join(module.code_for_node(line) for line in module.header)


def _whole_statements(changed: str) -> bool:
    """Text that starts at column 0 (blank lines, comments, then a statement) and ends a line."""
    if not changed.strip() or not changed.endswith("\n"):
        return False
    for line in changed.splitlines():
        if line.strip() and not line.startswith("#"):
            return not line[0].isspace()
        if line and line[0].isspace():  # an indented comment may belong to the block before
            return False
    return False


def clear() -> None:
    _LAST.clear()
