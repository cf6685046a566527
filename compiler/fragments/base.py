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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

import libcst as cst
from libcst.helpers import parse_template_expression, parse_template_module

from compiler.fragments.layout import (
    LINE_LENGTH,
    FunctionBodyFiller,
    ImportRequest,
    Unit,
    fit_line,
    import_sort_key,
    import_statement,
    order_units,
    spaced,
    split_imports,
    with_blank_lines,
)
from compiler.model import BuildContext, FragmentUse

TRAINER_FILE = "trainer_module.py"
TRANSFORM_FILE = "transform_module.py"


class Section(IntEnum):
    """Where a block goes in an emitted module. A fragment's blocks are merged into one (under
    its label); a block comes after the blocks whose names it uses, and the section breaks the
    ties (a merged block goes by its last section). ``ENTRY`` (``run_fn``) comes last."""

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
    #: Named values it defines for other fragments (``compiler.model.VALUES``: ``target_key``,
    #: ``candidates`` …; ``{role}`` is the use's role: ``{role}_tower``). Checked before the build.
    provides: ClassVar[tuple[str, ...]] = ()
    #: Named values it uses, which exactly one other selected fragment must provide.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The ``run_fn`` slots it opens (the trainer skeleton: ``compiler.model.RUN_FN_SLOTS``).
    slots: ClassVar[tuple[str, ...]] = ()
    #: The ``run_fn`` slots it adds code to: ``callbacks``, ``after_fit``, ``evaluate``, ``export``.
    fills: ClassVar[tuple[str, ...]] = ()
    #: The final metrics it adds to training_metrics.json (``{k}``: each of model.top_k; a
    #: ``val_`` one only with an eval split): what a sweep's ``objective`` may name.
    writes: ClassVar[tuple[str, ...]] = ()

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- contributions


class Contributions:
    """What one fragment sees of the module being built: its blocks carry the fragment's label
    (``origin``); the shared helpers it adds with ``add_once`` carry ``shared_origin``."""

    def __init__(self, builder: ModuleBuilder, origin: str, shared_origin: str | None = None
                 ) -> None:
        self._builder = builder
        self.origin = origin
        self.shared_origin = shared_origin or origin

    def require_import(self, module: str, name: str | None = None, alias: str | None = None
                       ) -> None:
        """Import ``module`` (``from module import name``; ``as alias``) once, sorted."""
        self._builder.require_import(module, name, alias)

    def add(self, section: Section, code: cst.Module | Sequence[cst.BaseStatement]) -> None:
        """Add top-level statements to ``section``, under a comment naming the fragment."""
        self._builder.add(section, code, origin=self.origin)

    def add_once(self, key: str, section: Section,
                 code: cst.Module | Sequence[cst.BaseStatement]) -> None:
        """Add a shared helper the first time any fragment asks for ``key``; it is labelled as
        shared (``tower/mlp · shared``), since other fragments use it too."""
        if key not in self._builder.shared:
            self._builder.shared.add(key)
            self._builder.add(section, code, origin=self.shared_origin)

    def add_to_function(self, function: str, code: cst.Module | Sequence[cst.BaseStatement]
                        ) -> None:
        """Add statements to the body of ``function`` (``run_fn``: at its ``FRAGMENTS`` slot)."""
        self._builder.add_to_function(function, code, origin=self.origin)


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
        statements = [fit_line(statement, "") for statement in _body(code)]
        self._counter += 1
        self.blocks.append(_Block(section, self._counter, origin, statements))

    def add_to_function(self, function: str, code: cst.Module | Sequence[cst.BaseStatement], *,
                        origin: str) -> None:
        """Add statements to the body of ``function`` (inserted before its final ``return``)."""
        # Contributed statements go into a top-level function: one indent deep.
        statements = [fit_line(statement, "    ") for statement in _body(code)]
        self.bodies.setdefault(function, []).append((origin, statements))

    # ----------------------------------------------------------------------------- assembly

    def to_module(self, header_lines: Sequence[str],
                  prelude: cst.Module | Sequence[cst.BaseStatement] = ()) -> cst.Module:
        """Assemble: header comments, docstring, imports, prelude, then one contiguous block per
        label, in reading order (``layout.order_units``), the entry point last."""
        body: list[cst.BaseStatement] = []
        if self.docstring:
            body.append(_docstring(self.docstring))
        early, late = split_imports(sorted(self.imports, key=import_sort_key))
        imports = [import_statement(request) for request in early]
        prelude = _body(prelude)
        if prelude:  # isort style: one blank line between the stdlib imports and the prelude
            prelude[0] = with_blank_lines(prelude[0], 1)
        third_party = [import_statement(request) for request in late]
        if third_party and prelude:
            third_party[0] = third_party[0].with_changes(leading_lines=[cst.EmptyLine()])
        top = [*imports, *prelude, *third_party]
        if top and self.docstring:  # ruff format: one blank line after the module docstring
            top[0] = with_blank_lines(top[0], 1)
        body.extend(top)
        for position, unit in enumerate(order_units(self._units())):
            # After the imports isort wants one blank line before plain statements, two before
            # a def or class; between blocks the two blank lines of PEP 8.
            first = unit.statements[0]
            blank = 2 if position or isinstance(first, (cst.FunctionDef, cst.ClassDef)) else 1
            body.extend(spaced(unit, unit.label, blank))
        module = cst.Module(
            body=body,
            header=[cst.EmptyLine(comment=cst.Comment(line)) for line in header_lines],
        )
        # Skeleton functions are top-level definitions: fill them without walking the tree.
        filler = FunctionBodyFiller(self.bodies)
        filled = [
            filler.leave_FunctionDef(statement, statement)
            if isinstance(statement, cst.FunctionDef) else statement
            for statement in module.body
        ]
        return module.with_changes(body=filled)

    def _units(self) -> list[Unit]:
        """The blocks merged by label: one fragment's code in one place, in section order."""
        units: dict[str, Unit] = {}
        for block in sorted(self.blocks, key=lambda b: (b.section, b.order)):
            if not block.statements:
                continue
            unit = units.get(block.origin)
            if unit is None:
                unit = units[block.origin] = Unit(block.origin, (block.section, block.order),
                                                  entry=False)
            unit.chunks.append(block.statements)
            # A unit reads where its code goes (its last section), not where its constants do.
            unit.key = max(unit.key, (block.section, unit.key[1]))
            unit.entry = unit.entry or block.section == Section.ENTRY
        return list(units.values())


def _body(code: cst.Module | Sequence[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """A template's statements; the comments above its first statement (which libcst keeps in
    the module header) stay with that statement."""
    if not isinstance(code, cst.Module):
        return list(code)
    header = [line for line in code.header if line.comment is not None]
    if not code.body or not header:
        return list(code.body)
    # Templates are cached trees: moving the comments makes the same new tree each time, so
    # keep it, and the layout's caches (keyed by statement identity) keep working.
    cached = _COMMENTED.get(id(code))
    if cached is None or cached[0] is not code:
        if len(_COMMENTED) >= _FILLED_MAX:
            _COMMENTED.clear()
        first = code.body[0].with_changes(leading_lines=[*header, *code.body[0].leading_lines])
        cached = _COMMENTED[id(code)] = (code, [first, *code.body[1:]])
    return list(cached[1])


_COMMENTED: dict[int, tuple[cst.Module, list[cst.BaseStatement]]] = {}


def _docstring(text: str) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(cst.SimpleString('"""' + text + '\n"""'))])


def docstring(text: str) -> cst.SimpleStatementLine:
    """A docstring statement for a template's ``{doc}`` line (any text, safely quoted)."""
    if '"""' in text or "\\" in text or text.endswith('"'):
        return cst.SimpleStatementLine([cst.Expr(cst.SimpleString(repr(text)))])
    return cst.SimpleStatementLine([cst.Expr(cst.SimpleString('"""' + text + '"""'))])


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
    table constant; elements stay on one line where they fit."""
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
    elements = [cst.Element(_table_row(v, inner), comma=last_comma if i == len(items) - 1
                            else comma) for i, v in enumerate(items)]
    if isinstance(value, tuple):
        return cst.Tuple(elements, lpar=[cst.LeftParen(whitespace_after=newline(inner))])
    return cst.List(elements, lbracket=cst.LeftSquareBracket(whitespace_after=newline(inner)))


def _table_row(value: Any, indent: str) -> cst.BaseExpression:
    """One element of a table: on one line, or, a mapping too long for one, a line per key
    (as ``ruff format`` lays it out)."""
    if not isinstance(value, Mapping) or not value:
        return literal(value)
    # Measuring renders the row; the same rows recur in every compile, so remember them (the
    # repr of a literal value tells apart every value ``literal`` would write differently).
    key = (repr(value), indent)
    node = _ROWS.get(key)
    if node is None:
        if len(_ROWS) >= _FILLED_MAX:
            _ROWS.clear()
        node = literal(value)
        if len(indent) + len(_EMPTY.code_for_node(node)) + 1 > LINE_LENGTH:
            node = block_literal(value, indent)
        _ROWS[key] = node
    return node


_ROWS: dict[tuple[str, str], cst.BaseExpression] = {}


def statements(template: str, **values: Any) -> cst.Module:
    """Parse a code template; ``{name}`` placeholders take ``values`` (CST nodes or literals).

    Values the template does not mention are ignored, so one set of values can serve the
    variants of a template.
    """
    nodes = _as_nodes(template, values)
    parsed = _parsed_template(template, frozenset(nodes), "module")
    if parsed is None:
        return parse_template_module(template, **nodes)
    return _filled(_FILLED, template, parsed, nodes) if nodes else parsed


_EMPTY = cst.Module(body=[])
_FILLED: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
_FILLED_EXPRESSIONS: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
_FILLED_MAX = 4096


def _filled(kept: dict[tuple[str, tuple[tuple[str, str], ...]], Any], template: str,
            parsed: Any, nodes: dict[str, cst.CSTNode]) -> Any:
    """``parsed`` with ``nodes`` filled in, kept in ``kept``. Filling placeholders walks the
    whole template, the larger part of a build; most templates get the same values in every
    compile (and every point of a sweep). The same text in gives the same tree out, and trees
    are immutable, so each filling is kept."""
    key = (template, tuple((name, _EMPTY.code_for_node(node)) for name, node in nodes.items()))
    filled = kept.get(key)
    if filled is None:
        if len(kept) >= _FILLED_MAX:
            kept.clear()
        filled = kept[key] = _unmangle(parsed, nodes)
    return filled


def expression(template: str, **values: Any) -> cst.BaseExpression:
    nodes = _as_nodes(template, values)
    parsed = _parsed_template(template, frozenset(nodes), "expression")
    if parsed is None:
        return parse_template_expression(template, **nodes)
    return _filled(_FILLED_EXPRESSIONS, template, parsed, nodes) if nodes else parsed


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


#: The distribution of the built-in fragments. Its version is in each module's header, so
#: its blocks' labels leave it out; a block from any other distribution names it and its version.
HOST_DISTRIBUTION = "recforge"


def origin_label(use: FragmentUse, plugin: str, version: str) -> str:
    """The short comment that marks a contributed block: ``tower/mlp (buyer)``, or
    ``tower/dcn (buyer) · recforge-dcn 0.1.0`` for a third-party plugin's block."""
    role = f" ({use.role})" if use.role else ""
    return f"{use.kind}/{_bare(use)}{role}{_stamp(plugin, version)}"


def shared_label(use: FragmentUse, plugin: str, version: str) -> str:
    """The label of a helper the fragment shares with others (``add_once``): no role, since
    both towers (or a tower and a head) use it: ``tower/mlp · shared``."""
    return f"{use.kind}/{_bare(use)} · shared{_stamp(plugin, version)}"


def _bare(use: FragmentUse) -> str:
    # A config may name ``recforge-dcn:dcn``; the label names the distribution anyway.
    return use.name.rpartition(":")[2]


def _stamp(plugin: str, version: str) -> str:
    return "" if plugin == HOST_DISTRIBUTION else f" · {plugin} {version}"


def unique(items: Iterable[str]) -> list[str]:
    """Order-preserving de-duplication (sets would make output depend on hashing)."""
    return list(dict.fromkeys(items))
