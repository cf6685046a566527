"""The pass framework: findings, the ``Pass`` base class, parsed files and ``run_passes``.

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
import contextlib
import dataclasses
import enum
import functools
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

N = TypeVar("N", bound=cst.CSTNode)

#: A VALID/INVALID example: one module's source (checked as ``trainer_module.py``), or a mapping
#: of file name to source for passes that look at several files of one compile.
Example = str | Mapping[str, str]
#: File name a single-source example is checked under.
EXAMPLE_FILE = "trainer_module.py"
#: An INVALID example marks each line a finding must point at with this comment.
EXPECT_MARKER = "# <-"

_RULE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


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


@dataclasses.dataclass(frozen=True)
class Fix:
    """A mechanical rewrite of the finding's file that resolves it."""

    description: str
    edits: tuple[TextEdit, ...]


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


BUILTIN_NAMES = frozenset(vars(builtins))


@functools.lru_cache(maxsize=16)
def _parse(path: str, source: str) -> cst.Module:
    # Parsing is most of a compile's pass time; trees are immutable and every SourceFile keeps
    # its own index, so one parse per distinct text serves every compile of it (in a sweep the
    # Transform module is the same for every point).
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
    from compiler.passes.suppress import apply_suppressions

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
