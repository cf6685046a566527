"""Parsed files for the passes: ``SourceFile``, ``Project`` and the fast node walker.

Speed matters because every compile runs every pass. So each file is parsed once with libcst and
walked once by a fast field walker (libcst's own ``visit`` rebuilds every node, whitespace
included, and is ~10x slower); the walk feeds an index of nodes by type and a parent map, and
dispatches the ``visit_<Node>`` / ``leave_<Node>`` methods of every module pass. Positions come
from libcst's ``PositionProvider``, resolved lazily and per top-level statement (see
``SourceFile.range``): a clean file never pays for them, a file with findings pays for the
statements they are in.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from compiler.passes import incremental
from compiler.passes.findings import Location, SourceError

N = TypeVar("N", bound=cst.CSTNode)


# --------------------------------------------------------------------------------------------
# The fast walker
# --------------------------------------------------------------------------------------------

# Fields that only ever hold whitespace, comments or punctuation tokens. Skipping them is what
# makes the walk cheap; every node a pass can care about lives in the other fields.
_SKIP_FIELDS = frozenset(
    {
        "lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer", "comma",
        "semicolon", "newline", "trailing_whitespace", "lbracket", "rbracket", "lbrace", "rbrace",
        "dot", "equal", "colon", "star_tok", "operator", "indent", "relative", "asynchronous",
        "encoding", "default_indent", "default_newline", "has_trailing_newline", "start", "end",
        "quote", "prefix", "value_str",
    }
)
_FIELDS: dict[type, tuple[str, ...]] = {}


_NODE_TYPES: dict[type, bool] = {}


def _is_node_type(tp: type) -> bool:
    """``issubclass(tp, cst.CSTNode)``, cached: CSTNode is an ABC and isinstance checks against
    it cost more than the rest of the walk."""
    known = _NODE_TYPES.get(tp)
    if known is None:
        known = _NODE_TYPES[tp] = issubclass(tp, cst.CSTNode)
    return known


def _child_fields(tp: type) -> tuple[str, ...]:
    names = _FIELDS.get(tp)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(tp)
            if f.name not in _SKIP_FIELDS and not f.name.startswith("whitespace")
        )
        _FIELDS[tp] = names
    return names


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The syntactic children of ``node`` (no whitespace or punctuation), in source order."""
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        tp = type(value)
        if tp is tuple or tp is list:
            for item in value:
                if _is_node_type(type(item)):
                    yield item
        elif _is_node_type(tp):
            yield value


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Pre-order walk of ``node`` and its syntactic descendants."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children = list(iter_children(current))
        children.reverse()
        stack.extend(children)


# --------------------------------------------------------------------------------------------
# Parsed files and projects
# --------------------------------------------------------------------------------------------


class SourceFile:
    """One parsed file, shared by every pass: the libcst tree, an index and lazy positions."""

    def __init__(self, path: str, source: str | cst.Module) -> None:
        self.path = path
        # A tree the compiler built is re-parsed from its code: built trees may share node
        # objects between places, which would confuse the identity-keyed positions and parents.
        self.source = source.code if isinstance(source, cst.Module) else source
        self.module: cst.Module = _parse(path, self.source)
        # unsafe_skip_copy: the tree is never mutated, and the copy would cost as much as a parse.
        self.wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self._positions: Mapping[cst.CSTNode, CodeRange] | None = None
        self._statement_positions: dict[
            cst.CSTNode, tuple[Mapping[cst.CSTNode, CodeRange], int]
        ] = {}
        self._top_lines: dict[cst.CSTNode, int] | None = None
        self._ast: ast.Module | None = None
        self._imports: dict[str, str] | None = None
        self.parents: dict[cst.CSTNode, cst.CSTNode] = {}
        #: Pre-order number of every node: compares "comes before" without computing positions.
        self.order: dict[cst.CSTNode, int] = {}
        self._by_type: dict[type, list[cst.CSTNode]] = {}
        self._indexed = False
        self._lines: list[str] | None = None

    # -- the index ----------------------------------------------------------------------------
    def nodes(self, node_type: type[N]) -> list[N]:
        """Every node of exactly this type, in source order (filled by the shared walk)."""
        if not self._by_type:
            _walk_file(self, {}, {})  # used outside run_passes: index now
        return self._by_type.get(node_type, [])  # type: ignore[return-value]

    @property
    def indexed(self) -> bool:
        """Whether the shared walk has finished (during it, ``nodes`` is partial)."""
        return self._indexed

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(node)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        current = self.parents.get(node)
        while current is not None:
            yield current
            current = self.parents.get(current)

    def enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        for anc in self.ancestors(node):
            if isinstance(anc, cst.FunctionDef):
                return anc
        return None

    def top_level_functions(self) -> dict[str, cst.FunctionDef]:
        out: dict[str, cst.FunctionDef] = {}
        for stmt in self.module.body:
            if isinstance(stmt, cst.FunctionDef):
                out[stmt.name.value] = stmt
        return out

    # -- positions ----------------------------------------------------------------------------
    def range(self, node: cst.CSTNode) -> CodeRange:
        """The node's position (1-based lines, 0-based columns, as libcst's PositionProvider).

        Resolving positions for a whole module costs more than every pass together, and a file
        usually needs a handful. So positions are resolved per top-level statement: the
        statement alone in a one-statement module (same text, same columns), shifted by the
        line it starts on in the file (from the ``ast`` tree, which has statement lines for
        free).
        """
        top = node
        parent = self.parents.get(top)
        while parent is not None and parent is not self.module:
            top, parent = parent, self.parents.get(parent)
        if parent is None or top not in self._statement_lines():
            return self._full_positions()[node]  # not indexed yet, or the module itself
        cached = self._statement_positions.get(top)
        if cached is None:
            mini = cst.Module(
                body=[top],  # type: ignore[list-item]
                default_indent=self.module.default_indent,
                default_newline=self.module.default_newline,
            )
            positions = MetadataWrapper(mini, unsafe_skip_copy=True).resolve(PositionProvider)
            shift = self._statement_lines()[top] - positions[top].start.line
            cached = self._statement_positions[top] = (positions, shift)
        positions, shift = cached
        found = positions[node]
        if not shift:
            return found
        return CodeRange(
            CodePosition(found.start.line + shift, found.start.column),
            CodePosition(found.end.line + shift, found.end.column),
        )

    def _full_positions(self) -> Mapping[cst.CSTNode, CodeRange]:
        if self._positions is None:
            self._positions = self.wrapper.resolve(PositionProvider)
        return self._positions

    def _statement_lines(self) -> dict[cst.CSTNode, int]:
        """First line of each top-level libcst statement, matched to ``ast``'s statements."""
        if self._top_lines is None:
            lines: dict[cst.CSTNode, int] = {}
            try:
                tree_body = self.ast.body
            except SyntaxError:
                tree_body = []
            index = 0
            for stmt in self.module.body:
                width = len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
                if index >= len(tree_body):
                    lines = {}  # the trees disagree: fall back to full resolution
                    break
                # Both trees start a decorated def/class at the `def`/`class` line.
                lines[stmt] = tree_body[index].lineno
                index += width
            self._top_lines = lines
        return self._top_lines

    def pos(self, node: cst.CSTNode) -> tuple[int, int]:
        """1-based (line, col) of the node's first character."""
        start = self.range(node).start
        return start.line, start.column + 1

    def location(self, node: cst.CSTNode, note: str = "") -> Location:
        line, col = self.pos(node)
        return Location(self.path, line, col, note)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.source.splitlines()
        return self._lines

    # -- names --------------------------------------------------------------------------------
    @property
    def ast(self) -> ast.Module:
        """The stdlib ``ast`` tree (pyflakes wants it); parsed on first use."""
        if self._ast is None:
            self._ast = ast.parse(self.source, filename=self.path)
        return self._ast

    @property
    def imports(self) -> dict[str, str]:
        """Local alias -> qualified name for every import in the file, wherever it is.

        Flow-insensitive on purpose: generated trainers import TensorFlow lazily inside
        functions, always under the same alias, so one map serves every scope.
        """
        if self._imports is None or not self._indexed:
            table: dict[str, str] = {}
            for imp in self.nodes(cst.Import):
                for alias in imp.names:
                    full = dotted_name(alias.name) or ""
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        table[alias.asname.name.value] = full
                    else:
                        head = full.split(".", 1)[0]
                        table[head] = head
            for imp in self.nodes(cst.ImportFrom):
                if imp.relative or imp.module is None or isinstance(imp.names, cst.ImportStar):
                    continue
                base = dotted_name(imp.module) or ""
                for alias in imp.names:
                    name = dotted_name(alias.name) or ""
                    local = name
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        local = alias.asname.name.value
                    table[local] = f"{base}.{name}"
            if not self._indexed:
                return table  # asked mid-walk (from a visit_ method): partial, don't keep it
            self._imports = table
        return self._imports

    def qualname(self, expr: cst.BaseExpression) -> str | None:
        """``tf.io.gfile.exists`` -> ``tensorflow.io.gfile.exists`` when ``tf`` is imported.

        A bare builtin name (``open``) gives ``builtins.open``; anything else not rooted in an
        import gives None.
        """
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head in self.imports:
            full = self.imports[head]
            return f"{full}.{rest}" if rest else full
        if not rest and head in BUILTIN_NAMES:
            return f"builtins.{head}"
        return None


def _walk_file(
    sf: SourceFile,
    visits: Mapping[type, list[Callable[[Any], Any]]],
    leaves: Mapping[type, list[Callable[[Any], Any]]],
) -> None:
    """Fill ``sf``'s index and parent map, calling the passes' visit/leave methods."""
    parents = sf.parents
    order = sf.order
    by_type = sf._by_type
    fields = _child_fields
    is_node = _NODE_TYPES.get

    def visit(node: cst.CSTNode) -> None:
        order[node] = len(order)
        tp = type(node)
        bucket = by_type.get(tp)
        if bucket is None:
            by_type[tp] = [node]
        else:
            bucket.append(node)
        handlers = visits.get(tp)
        if handlers:
            for handler in handlers:
                handler(node)
        for name in fields(tp):
            value = getattr(node, name)
            vt = type(value)
            if vt is tuple or vt is list:
                for item in value:
                    it = type(item)
                    if is_node(it) or (is_node(it) is None and _is_node_type(it)):
                        parents[item] = node
                        visit(item)
            elif is_node(vt) or (is_node(vt) is None and _is_node_type(vt)):
                parents[value] = node
                visit(value)
        handlers = leaves.get(tp)
        if handlers:
            for handler in handlers:
                handler(node)

    visit(sf.module)
    sf._indexed = True


BUILTIN_NAMES = frozenset(vars(builtins))


@functools.lru_cache(maxsize=16)
def _parse(path: str, source: str) -> cst.Module:
    # Parsing is most of a compile's pass time; trees are immutable and every SourceFile keeps
    # its own index, so one parse per distinct text serves every compile of it (in a sweep the
    # Transform module is the same for every point), and a text that differs from the last one
    # of its file in a few statements parses only those (``incremental``).
    module = incremental.reparse(path, source)
    if module is None:
        module = _parse_whole(path, source)
        incremental.remember(path, source, module)
    return module


def _parse_whole(path: str, source: str) -> cst.Module:
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        # CPython's own message and position are clearer than libcst's; use them when it
        # agrees the file is broken.
        try:
            ast.parse(source, filename=path)
        except SyntaxError as syntax:
            raise SourceError(path, syntax.lineno or 1, syntax.offset or 1, syntax.msg) from None
        raise SourceError(path, exc.raw_line, exc.raw_column + 1, exc.message) from None
    except (ValueError, RecursionError) as exc:
        raise SourceError(path, 1, 1, str(exc)) from None


def dotted_name(expr: cst.CSTNode | None) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def string_value(expr: cst.CSTNode | None) -> str | None:
    """The value of a plain string literal (no f-strings), else None."""
    if type(expr) is cst.SimpleString and "\\" not in expr.value:
        # Fast path: libcst's evaluated_value goes through ast.literal_eval (a compile() per
        # literal), which was a visible share of a whole run.
        prefix = expr.prefix.lower()
        if "b" not in prefix:
            return expr.raw_value
    if isinstance(expr, cst.SimpleString | cst.ConcatenatedString):
        try:
            value = expr.evaluated_value
        except Exception:  # noqa: BLE001 - odd literals (bytes, bad escapes) just don't count
            return None
        return value if isinstance(value, str) else None
    return None


class Project:
    """Every file of one compile (or one ``compiler.check`` run), parsed."""

    def __init__(self, files: Mapping[str, SourceFile]) -> None:
        self.files: dict[str, SourceFile] = dict(files)

    def __iter__(self) -> Iterator[SourceFile]:
        return iter(self.files.values())


