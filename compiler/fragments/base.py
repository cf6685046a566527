"""What a fragment is, and the small API it uses to contribute code.

A fragment is a class registered through ``register_fragments``. The plan picks fragments by
``(kind, name)`` from the config; the build stage calls each one's ``contribute`` with the
parameters the plan resolved. Fragments never format code strings with config values: they
write code as libcst templates and pass values in as CST nodes (``literal``), so a config value
can only ever become a literal in the emitted module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

import libcst as cst
from libcst.helpers import parse_template_expression, parse_template_module

from compiler.model import BuildContext, FragmentUse

TRAINER_FILE = "trainer_module.py"
TRANSFORM_FILE = "transform_module.py"


class Section(IntEnum):
    """Top-level order of an emitted module. Fragments add blocks to a section."""

    CONSTANTS = 10
    HELPERS = 20
    INPUT = 30
    FEATURES = 40
    TOWERS = 50
    HEADS = 60
    LOSSES = 70
    MODEL = 80
    OPTIMIZER = 90
    CANDIDATES = 100
    INDEX = 110
    EVALUATION = 120
    EXPORT = 130
    ENTRY = 140


class Fragment:
    """Base class of every fragment. Subclasses set ``kind`` and ``name``.

    ``Params`` (optional) is a dataclass: the fragment's own config schema. Its values arrive in
    ``use.params`` already validated, with defaults filled in.
    """

    #: What the fragment is: a row of the kinds table (``tower``, ``retrieval_loss`` ...).
    kind: ClassVar[str]
    #: The config value that selects it (``dcn`` in ``model.buyer_tower.type: dcn``); a
    #: lower-case identifier.
    name: ClassVar[str]
    #: The emitted file this fragment contributes to.
    target: ClassVar[str] = TRAINER_FILE
    #: Its own config schema (towers and heads: ``params:``), a dataclass; None: no parameters.
    Params: ClassVar[type | None] = None
    #: One-line description, shown by ``python -m compiler.plugins`` and in the docs.
    description: ClassVar[str] = ""
    #: Configs that select this fragment, as Hydra override lists (``[["model.loss=mae"]]``)
    #: or ``{key: value}`` dicts, applied on top of a full model. The conformance kit
    #: (``compiler.testing.check_plugin``) compiles, checks and imports each one; none means
    #: the base config alone (which must then select the fragment).
    EXAMPLES: ClassVar[Sequence[Sequence[str] | Mapping[str, Any]]] = ()

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- contributions


class Contributions:
    """What one fragment sees of the module being built: its blocks carry the fragment's label."""

    def __init__(self, builder: ModuleBuilder, origin: str) -> None:
        self._builder = builder
        self.origin = origin

    def require_import(self, module: str, name: str | None = None, alias: str | None = None
                       ) -> None:
        """Import ``module`` (``from module import name``; ``as alias``) once, sorted."""
        self._builder.require_import(module, name, alias)

    def add(self, section: Section, code: cst.Module | Sequence[cst.BaseStatement]) -> None:
        """Add top-level statements to ``section``, under a comment naming the fragment."""
        self._builder.add(section, code, origin=self.origin)

    def add_once(self, key: str, section: Section,
                 code: cst.Module | Sequence[cst.BaseStatement]) -> None:
        """Add a shared helper the first time any fragment asks for ``key``."""
        if key not in self._builder.shared:
            self._builder.shared.add(key)
            self._builder.add(section, code, origin=self.origin)

    def add_to_function(self, function: str, code: cst.Module | Sequence[cst.BaseStatement]
                        ) -> None:
        """Add statements to the body of ``function`` (``run_fn``: at its ``FRAGMENTS`` slot)."""
        self._builder.add_to_function(function, code, origin=self.origin)


@dataclass(frozen=True, order=True)
class ImportRequest:
    module: str
    name: str | None = None
    alias: str | None = None


@dataclass
class _Block:
    section: Section
    order: int
    origin: str
    statements: list[cst.BaseStatement]


@dataclass
class ModuleBuilder:
    """Collects the blocks and imports fragments contribute to one emitted file."""

    filename: str
    docstring: str = ""
    imports: set[ImportRequest] = field(default_factory=set)
    blocks: list[_Block] = field(default_factory=list)
    bodies: dict[str, list[tuple[str, list[cst.BaseStatement]]]] = field(default_factory=dict)
    shared: set[str] = field(default_factory=set)
    _counter: int = 0

    def require_import(self, module: str, name: str | None = None,
                       alias: str | None = None) -> None:
        """Ask for an import; the final assembly writes each one once, in a stable order."""
        self.imports.add(ImportRequest(module, name, alias))

    def add(self, section: Section, code: cst.Module | Sequence[cst.BaseStatement], *,
            origin: str) -> None:
        """Add top-level statements to ``section``; ``origin`` names the fragment for the reader."""
        statements = list(code.body if isinstance(code, cst.Module) else code)
        self._counter += 1
        self.blocks.append(_Block(section, self._counter, origin, statements))

    def add_to_function(self, function: str, code: cst.Module | Sequence[cst.BaseStatement], *,
                        origin: str) -> None:
        """Add statements to the body of ``function`` (inserted before its final ``return``)."""
        statements = list(code.body if isinstance(code, cst.Module) else code)
        self.bodies.setdefault(function, []).append((origin, statements))

    # ----------------------------------------------------------------------------- assembly

    def to_module(self, header_lines: Sequence[str], prelude: Sequence[cst.BaseStatement] = ()
                  ) -> cst.Module:
        """Assemble: header comments, docstring, imports, prelude, then sections in order."""
        body: list[cst.BaseStatement] = []
        if self.docstring:
            body.append(_docstring(self.docstring))
        early, late = _split_imports(sorted(self.imports, key=_import_sort_key))
        body.extend(_import_statement(request) for request in early)
        prelude = list(prelude)
        if prelude:  # isort style: one blank line between the stdlib imports and the prelude
            prelude[0] = prelude[0].with_changes(
                leading_lines=[cst.EmptyLine(), *prelude[0].leading_lines]
            )
        body.extend(prelude)
        third_party = [_import_statement(request) for request in late]
        if third_party and prelude:
            third_party[0] = third_party[0].with_changes(leading_lines=[cst.EmptyLine()])
        body.extend(third_party)
        for position, block in enumerate(sorted(self.blocks, key=lambda b: (b.section, b.order))):
            # After the imports isort wants one blank line before plain statements, two before
            # a def or class; between blocks the two blank lines of PEP 8.
            first = block.statements[0] if block.statements else None
            blank = 2 if position or isinstance(first, (cst.FunctionDef, cst.ClassDef)) else 1
            body.extend(_with_origin(block.statements, block.origin, blank_lines=blank))
        module = cst.Module(
            body=body,
            header=[cst.EmptyLine(comment=cst.Comment(line)) for line in header_lines],
        )
        # Skeleton functions are top-level definitions: fill them without walking the tree.
        filler = _FunctionBodyFiller(self.bodies)
        filled = [
            filler.leave_FunctionDef(statement, statement)
            if isinstance(statement, cst.FunctionDef) else statement
            for statement in module.body
        ]
        return module.with_changes(body=filled)


def _docstring(text: str) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(cst.SimpleString('"""' + text + '\n"""'))])


def docstring(text: str) -> cst.SimpleStatementLine:
    """A docstring statement for a template's ``{doc}`` line (any text, safely quoted)."""
    if '"""' in text or "\\" in text or text.endswith('"'):
        return cst.SimpleStatementLine([cst.Expr(cst.SimpleString(repr(text)))])
    return cst.SimpleStatementLine([cst.Expr(cst.SimpleString('"""' + text + '"""'))])


def _with_origin(
    statements: list[cst.BaseStatement], origin: str, *, blank_lines: int
) -> list[cst.BaseStatement]:
    """Prefix the block with a comment naming the fragment, so any line traces to its source."""
    if not statements:
        return statements
    first = statements[0]
    comment = cst.EmptyLine(comment=cst.Comment(f"# [{origin}]"))
    blanks = [cst.EmptyLine()] * blank_lines
    leading = [*blanks, comment]
    if isinstance(first, (cst.FunctionDef, cst.ClassDef)) and first.decorators:
        first = first.with_changes(lines_after_decorators=first.lines_after_decorators)
    first = first.with_changes(leading_lines=leading)
    return [first, *statements[1:]]


class _FunctionBodyFiller:
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
            inserted.extend(_with_origin(statements, origin, blank_lines=0))
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


def _import_sort_key(request: ImportRequest) -> tuple[int, str, str, str]:
    group = 0 if _is_stdlib(request.module) else 1
    return (group, request.module, request.name or "", request.alias or "")


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def _split_imports(requests: list[ImportRequest]
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


def _import_statement(request: ImportRequest) -> cst.SimpleStatementLine:
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


# --------------------------------------------------------------------------- values -> CST


def literal(value: Any) -> cst.BaseExpression:
    """A config value as a CST literal node. The only way values enter emitted code."""
    if isinstance(value, bool) or value is None:
        return cst.Name(repr(value))
    if isinstance(value, IntEnum):
        value = int(value)
    if hasattr(value, "value") and isinstance(value.value, str):  # str Enums
        value = value.value
    if isinstance(value, int):
        node: cst.BaseExpression = cst.Integer(str(abs(value)))
        return cst.UnaryOperation(cst.Minus(), node) if value < 0 else node
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot emit a non-finite float: {value!r}")
        node = cst.Float(repr(abs(value)))
        return cst.UnaryOperation(cst.Minus(), node) if value < 0 or math.copysign(1, value) < 0 \
            else node
    if isinstance(value, str):
        return cst.SimpleString(_string_literal(value))
    if isinstance(value, tuple):
        return cst.Tuple([cst.Element(literal(v)) for v in value]) if value else cst.Tuple([])
    if isinstance(value, list):
        return cst.List([cst.Element(literal(v)) for v in value])
    if isinstance(value, Mapping):
        return cst.Dict([cst.DictElement(literal(k), literal(v)) for k, v in value.items()])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return literal({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    raise TypeError(f"cannot emit a value of type {type(value).__name__}")


def _string_literal(text: str) -> str:
    # repr() of a str is always one valid, fully escaped literal; prefer double quotes, as
    # the rest of the emitted code does, when that changes nothing but the quote character.
    quoted = repr(text)
    if quoted.startswith("'") and '"' not in text:
        quoted = '"' + quoted[1:-1] + '"'
    return quoted


def block_literal(value: Sequence[Any] | Mapping[str, Any], indent: str = "") -> cst.BaseExpression:
    """A tuple/list/dict literal laid out one element per line, as a person would write a
    table constant; elements themselves stay on one line."""
    inner = indent + "    "

    def newline(at: str) -> cst.ParenthesizedWhitespace:
        return cst.ParenthesizedWhitespace(
            first_line=cst.TrailingWhitespace(), empty_lines=[],
            indent=True, last_line=cst.SimpleWhitespace(at),
        )

    comma = cst.Comma(whitespace_after=newline(inner))
    last_comma = cst.Comma(whitespace_after=newline(indent))
    if isinstance(value, Mapping):
        items = list(value.items())
        if not items:
            return cst.Dict([])
        return cst.Dict(
            [cst.DictElement(literal(k), literal(v), comma=last_comma if i == len(items) - 1
                             else comma) for i, (k, v) in enumerate(items)],
            lbrace=cst.LeftCurlyBrace(whitespace_after=newline(inner)),
        )
    items = list(value)
    if not items:
        return literal(type(value)())
    elements = [cst.Element(literal(v), comma=last_comma if i == len(items) - 1 else comma)
                for i, v in enumerate(items)]
    if isinstance(value, tuple):
        return cst.Tuple(elements, lpar=[cst.LeftParen(whitespace_after=newline(inner))])
    return cst.List(elements, lbracket=cst.LeftSquareBracket(whitespace_after=newline(inner)))


def statements(template: str, **values: Any) -> cst.Module:
    """Parse a code template; ``{name}`` placeholders take ``values`` (CST nodes or literals).

    Values the template does not mention are ignored, so one set of values can serve the
    variants of a template.
    """
    nodes = _as_nodes(template, values)
    parsed = _parsed_template(template, frozenset(nodes), "module")
    if parsed is None:
        return parse_template_module(template, **nodes)
    if not nodes:
        return parsed
    # Filling placeholders walks the whole template, the larger part of a build; most
    # templates get the same values in every compile (and every point of a sweep). The same
    # text in gives the same tree out, and trees are immutable, so each filling is kept.
    key = (template, tuple((name, _EMPTY.code_for_node(node)) for name, node in nodes.items()))
    filled = _FILLED.get(key)
    if filled is None:
        if len(_FILLED) >= _FILLED_MAX:
            _FILLED.clear()
        filled = _FILLED[key] = _unmangle(parsed, nodes)
    return filled


_EMPTY = cst.Module(body=[])
_FILLED: dict[tuple[str, tuple[tuple[str, str], ...]], cst.Module] = {}
_FILLED_MAX = 4096


def expression(template: str, **values: Any) -> cst.BaseExpression:
    nodes = _as_nodes(template, values)
    parsed = _parsed_template(template, frozenset(nodes), "expression")
    if parsed is None:
        return parse_template_expression(template, **nodes)
    return _unmangle(parsed, nodes) if nodes else parsed


@functools.lru_cache(maxsize=1024)
def _parsed_template(template: str, names: frozenset[str], kind: str) -> Any:
    """Parse each (template, placeholder names) once: parsing dominates build time, and CST
    nodes are immutable, so one parse serves every substitution."""
    if _template_internals is None:  # pragma: no cover - libcst moved its helpers
        return None
    mangle, _ = _template_internals
    source = mangle(template, set(names))
    return cst.parse_module(source) if kind == "module" else cst.parse_expression(source)


def _unmangle(parsed: Any, nodes: Mapping[str, cst.CSTNode]) -> Any:
    _, unmangle = _template_internals  # type: ignore[misc]
    return unmangle(parsed, dict(nodes))


try:  # the two steps of libcst's parse_template_*, used separately to cache the parse
    from libcst.helpers._template import mangle_template as _mangle
    from libcst.helpers._template import unmangle_nodes as _unmangle_nodes

    _template_internals: tuple[Any, Any] | None = (_mangle, _unmangle_nodes)
except ImportError:  # pragma: no cover
    _template_internals = None


def name(identifier: str) -> cst.Name:
    """A CST name for an identifier the compiler chose (never one taken from config text)."""
    if not identifier.isidentifier():
        raise ValueError(f"not an identifier: {identifier!r}")
    return cst.Name(identifier)


def _as_nodes(template: str, values: Mapping[str, Any]) -> dict[str, cst.CSTNode]:
    return {
        key: value if isinstance(value, cst.CSTNode) else literal(value)
        for key, value in values.items()
        if "{" + key + "}" in template
    }


def origin_label(use: FragmentUse, plugin: str, version: str) -> str:
    """The short comment that marks a contributed block: ``tower/mlp · recforge 0.1.0``."""
    role = f" ({use.role})" if use.role else ""
    # A config may name ``recforge-dcn:dcn``; the label names the distribution anyway.
    bare = use.name.rpartition(":")[2]
    return f"{use.kind}/{bare}{role} · {plugin} {version}"


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


def unique(items: Iterable[str]) -> list[str]:
    """Order-preserving de-duplication (sets would make output depend on hashing)."""
    return list(dict.fromkeys(items))
