"""Reading order and layout of an emitted module's top-level blocks.

A fragment may contribute several blocks (constants, helpers, a class); the reader wants each
fragment's code in one place, every name defined before the code that uses it, and the entry
point (``run_fn``, ``preprocessing_fn``) last. ``order_units`` merges blocks by label and sorts
the merged units so; ``spaced`` lays out blank lines as ``ruff format`` would; ``fit_line``
wraps a one-line statement that a config value made longer than the line limit, the way
``ruff format`` wraps a call. Everything here is a pure function of its input: same blocks in,
same module out.
"""

from __future__ import annotations

import ast
import heapq
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import libcst as cst

#: The emitted modules' line limit (``ruff format --line-length 100`` leaves them unchanged).
LINE_LENGTH = 100
INDENT = "    "


@dataclass
class Unit:
    """The statements of one label, in contribution order, as one contiguous block."""

    label: str
    key: tuple[int, int]
    entry: bool
    chunks: list[list[cst.BaseStatement]] = field(default_factory=list)

    @property
    def statements(self) -> list[cst.BaseStatement]:
        return [statement for chunk in self.chunks for statement in chunk]


def order_units(units: Sequence[Unit]) -> list[Unit]:
    """Units in reading order: a unit that defines a name comes before the units that use it
    (in their function bodies too), ties and cycles go by section then contribution order, and
    entry units (the ones holding ``run_fn``) come last."""
    defined = {unit.label: _defined_names(unit.statements) for unit in units}
    used = {unit.label: _used_names(unit.statements) for unit in units}
    needs: dict[str, set[str]] = {}
    for unit in units:
        needs[unit.label] = {
            other.label for other in units
            if other.label != unit.label and defined[other.label] & used[unit.label]
        }
    ordered: list[Unit] = []
    for group in ([u for u in units if not u.entry], [u for u in units if u.entry]):
        remaining = {unit.label: unit for unit in group}
        placed = {unit.label for unit in ordered}
        while remaining:
            ready = [(u.key, u.label) for u in remaining.values()
                     if needs[u.label] & remaining.keys() <= set()]
            # A cycle (two units that each use the other's names inside functions) has no
            # ready unit: take the earliest by section, which is where it was before.
            _, label = heapq.nsmallest(1, ready or [(u.key, u.label)
                                                    for u in remaining.values()])[0]
            ordered.append(remaining.pop(label))
            placed.add(label)
    return ordered


def _defined_names(statements: Sequence[cst.BaseStatement]) -> set[str]:
    names: set[str] = set()
    for statement in statements:
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            names.add(statement.name.value)
        elif isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                targets = (
                    [t.target for t in small.targets] if isinstance(small, cst.Assign)
                    else [small.target] if isinstance(small, (cst.AnnAssign, cst.AugAssign))
                    else []
                )
                names.update(t.value for t in targets if isinstance(t, cst.Name))
    return names


_EMPTY = cst.Module(body=[])
#: Names a statement reads, by statement identity. Template trees are cached and immutable,
#: so most statements recur from compile to compile; the statement is kept beside its names
#: so its id cannot be reused by another object while the entry exists.
_USES: dict[int, tuple[cst.BaseStatement, frozenset[str]]] = {}
_CACHE_MAX = 8192


def _used_names(statements: Sequence[cst.BaseStatement]) -> set[str]:
    names: set[str] = set()
    for statement in statements:
        cached = _USES.get(id(statement))
        if cached is None or cached[0] is not statement:
            if len(_USES) >= _CACHE_MAX:
                _USES.clear()
            tree = ast.parse(_EMPTY.code_for_node(statement.with_changes(leading_lines=())))
            found = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
            cached = _USES[id(statement)] = (statement, found)
        names |= cached[1]
    return names


# ---------------------------------------------------------------------------------- imports


@dataclass(frozen=True, order=True)
class ImportRequest:
    module: str
    name: str | None = None
    alias: str | None = None


def import_sort_key(request: ImportRequest) -> tuple[int, str, str, str]:
    group = 0 if _is_stdlib(request.module) else 1
    return (group, request.module, request.name or "", request.alias or "")


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def split_imports(requests: list[ImportRequest]
                   ) -> tuple[list[ImportRequest], list[ImportRequest]]:
    early = [r for r in requests if _is_stdlib(r.module)]
    late = [r for r in requests if not _is_stdlib(r.module)]
    return early, late


def _dotted_name(dotted: str) -> cst.Attribute | cst.Name:
    parts = dotted.split(".")
    node: cst.Attribute | cst.Name = cst.Name(parts[0])
    for part in parts[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def import_statement(request: ImportRequest) -> cst.SimpleStatementLine:
    asname = cst.AsName(name=cst.Name(request.alias)) if request.alias else None
    statement: cst.BaseSmallStatement
    if request.name is None:
        statement = cst.Import(names=[cst.ImportAlias(name=_dotted_name(request.module),
                                                      asname=asname)])
    else:
        statement = cst.ImportFrom(
            module=_dotted_name(request.module),
            names=[cst.ImportAlias(name=cst.Name(request.name), asname=asname)],
        )
    return cst.SimpleStatementLine(body=[statement])



# ------------------------------------------------------------------------------ blank lines


def is_definition(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, (cst.FunctionDef, cst.ClassDef))


def comments(statement: cst.BaseStatement) -> list[cst.EmptyLine]:
    """The comment lines above a statement, without the blank lines around them."""
    return [line for line in statement.leading_lines if line.comment is not None]


def with_blank_lines(statement: cst.BaseStatement, blank_lines: int,
                     extra: Sequence[cst.EmptyLine] = ()) -> cst.BaseStatement:
    """``blank_lines`` empty lines, then ``extra`` comment lines, then the statement's own."""
    return statement.with_changes(
        leading_lines=[*[cst.EmptyLine()] * blank_lines, *extra, *comments(statement)])


def spaced(unit: Unit, label: str, first_blank_lines: int) -> list[cst.BaseStatement]:
    """The unit's statements under its label, spaced as ``ruff format`` spaces them: two
    blank lines around a top-level def or class, one between two contributions, and the
    template's own spacing inside a contribution."""
    out: list[cst.BaseStatement] = []
    label_line = cst.EmptyLine(comment=cst.Comment(f"# [{label}]"))
    previous: cst.BaseStatement | None = None
    for chunk in unit.chunks:
        for position, statement in enumerate(chunk):
            if previous is None:
                statement = with_blank_lines(statement, first_blank_lines, [label_line])
            elif is_definition(statement) or is_definition(previous):
                statement = with_blank_lines(statement, 2)
            elif position == 0:
                statement = with_blank_lines(statement, 1)
            out.append(statement)
            previous = statement
    return out


# ------------------------------------------------------------------------ function bodies


def _with_origin(statements: list[cst.BaseStatement], origin: str) -> list[cst.BaseStatement]:
    """Prefix a step contributed to a function with a comment naming its fragment."""
    if not statements:
        return statements
    comment = cst.EmptyLine(comment=cst.Comment(f"# [{origin}]"))
    first = statements[0].with_changes(leading_lines=[comment, *statements[0].leading_lines])
    return [first, *statements[1:]]


class FunctionBodyFiller:
    """Puts contributed statements into the skeleton function of the same name."""

    def __init__(self, bodies: Mapping[str, list[tuple[str, list[cst.BaseStatement]]]]) -> None:
        self.bodies = bodies

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef
                          ) -> cst.FunctionDef:
        contributions = self.bodies.get(updated.name.value, [])
        if not isinstance(updated.body, cst.IndentedBlock):
            return updated
        if not contributions and not any(_is_slot(s) for s in updated.body.body):
            return updated
        inserted: list[cst.BaseStatement] = []
        for origin, statements in contributions:
            inserted.extend(_with_origin(statements, origin))
        existing = list(updated.body.body)
        slot = next((i for i, s in enumerate(existing) if _is_slot(s)), None)
        if slot is not None:  # the skeleton marked where contributions go
            body = [*existing[:slot], *inserted, *existing[slot + 1:]]
        else:  # otherwise they go just before the final ``return``
            split = len(existing) - 1 if existing and _is_return(existing[-1]) else len(existing)
            body = [*existing[:split], *inserted, *existing[split:]]
        return updated.with_changes(body=updated.body.with_changes(body=body))


#: A skeleton function marks where contributed statements go with a bare ``FRAGMENTS`` line.
SLOT_MARKER = "FRAGMENTS"


def _is_slot(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.Name)
        and statement.body[0].value.value == SLOT_MARKER
    )


def _is_return(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and isinstance(
        statement.body[0], cst.Return
    )


def block_origin(source: str, line: int) -> str | None:
    """The label of the contributed block that holds 1-based ``line`` of an emitted module:
    the nearest ``# [label]`` comment above it, at the same or a smaller indentation."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    target = lines[line - 1]
    indent = len(target) - len(target.lstrip())
    for text in reversed(lines[:line]):
        stripped = text.lstrip()
        if stripped.startswith("# [") and stripped.endswith("]") \
                and len(text) - len(stripped) <= indent:
            return stripped[3:-1]
    return None



# ------------------------------------------------------------------------------ long lines


def fit_line(statement: cst.BaseStatement, indent: str) -> cst.BaseStatement:
    """A one-line statement longer than the limit, with its outermost call wrapped as ``ruff
    format`` wraps it: the arguments on their own line, else one per line with a trailing
    comma (each wrapped the same way in turn). Anything else is returned as it is."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return statement
    # Rendering to measure is the cost; statements recur (cached templates), so remember.
    key = (id(statement), indent)
    cached = _FITTED.get(key)
    if cached is None or cached[0] is not statement:
        if len(_FITTED) >= _CACHE_MAX:
            _FITTED.clear()
        cached = _FITTED[key] = (statement, _fit_line(statement, indent))
    return cached[1]


_FITTED: dict[tuple[int, str], tuple[cst.BaseStatement, cst.BaseStatement]] = {}


def _fit_line(statement: cst.SimpleStatementLine, indent: str) -> cst.BaseStatement:
    bare = statement.with_changes(leading_lines=())
    code = _EMPTY.code_for_node(bare).rstrip("\n")
    if "\n" in code or len(indent) + len(code) <= LINE_LENGTH:
        return statement
    small = statement.body[0]
    value = getattr(small, "value", None)
    if not isinstance(value, cst.Call) or not isinstance(small, (cst.Assign, cst.Expr,
                                                                  cst.Return)):
        return statement
    return statement.with_changes(
        body=[small.with_changes(value=_wrapped(value, indent, block=indent))])


def _code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def _newline(indent: str, block: str = "") -> cst.ParenthesizedWhitespace:
    """A line break inside brackets, to ``indent``; libcst adds the enclosing ``block``'s
    indentation itself, so only the rest is written."""
    return cst.ParenthesizedWhitespace(
        first_line=cst.TrailingWhitespace(), empty_lines=[], indent=True,
        last_line=cst.SimpleWhitespace(indent[len(block):]),
    )


def _fits(node: cst.CSTNode, indent: str, suffix: str = "") -> bool:
    return len(indent) + len(_code(node)) + len(suffix) <= LINE_LENGTH


def _wrapped(node: cst.BaseExpression, indent: str, *, block: str) -> cst.BaseExpression:
    """``node`` split over lines inside its own brackets; ``indent``: its first line's;
    ``block``: the indentation of the statement's block."""
    inner = indent + INDENT
    if isinstance(node, cst.Call):
        args = [arg.with_changes(comma=cst.MaybeSentinel.DEFAULT) for arg in node.args]
        if not args:
            return node
        flat_args = _code(cst.Call(func=cst.Name("f"), args=args))[2:-1]
        if len(inner) + len(flat_args) <= LINE_LENGTH:  # the arguments on one line of their own
            args[-1] = args[-1].with_changes(whitespace_after_arg=_newline(indent, block))
            return node.with_changes(args=args, whitespace_before_args=_newline(inner, block))
        laid_out = [
            arg.with_changes(
                value=arg.value if _fits(arg, inner, ",")
                else _wrapped(arg.value, inner, block=block),
                comma=cst.Comma(whitespace_after=_newline(
                    inner if i < len(args) - 1 else indent, block)),
                whitespace_after_arg=cst.SimpleWhitespace(""),
            )
            for i, arg in enumerate(args)
        ]
        return node.with_changes(args=laid_out, whitespace_before_args=_newline(inner, block))
    if isinstance(node, (cst.List, cst.Tuple)) and node.elements:
        elements = list(node.elements)
        laid_out = [
            element.with_changes(
                value=element.value if _fits(element.value, inner, ",")
                else _wrapped(element.value, inner, block=block),
                comma=cst.Comma(whitespace_after=_newline(
                    inner if i < len(elements) - 1 else indent, block)),
            )
            for i, element in enumerate(elements)
        ]
        if isinstance(node, cst.List):
            return node.with_changes(elements=laid_out, lbracket=cst.LeftSquareBracket(
                whitespace_after=_newline(inner, block)))
        return node.with_changes(elements=laid_out, lpar=[cst.LeftParen(
            whitespace_after=_newline(inner, block))], rpar=[cst.RightParen()])
    return node
