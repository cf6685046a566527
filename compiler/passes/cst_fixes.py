"""Fixes as libcst rewrites: node replacements and added imports, applied to the parsed tree.

A pass that builds its fix from libcst nodes calls ``cst_fix`` (the fix then also carries the
same rewrite as text edits, for the JSON, SARIF and manifest output); ``fix_files`` applies such
fixes with ``apply_cst_fixes``, on the tree the findings came from.

Imports are inserted by this module rather than by libcst's ``AddImportsVisitor``: that visitor
adds module-level imports only, right after the module's last leading import, and a fix in a
trainer must import TensorFlow lazily, inside the function, after the
``os.environ["TF_USE_LEGACY_KERAS"] = "1"`` set-up that has to run before TensorFlow loads.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import libcst as cst

from compiler.passes.findings import AddImport, Fix, NodeChange, TextEdit
from compiler.passes.source import SourceFile, walk


def cst_fix(
    sf: SourceFile,
    description: str,
    changes: Sequence[NodeChange] = (),
    imports: Sequence[AddImport] = (),
) -> Fix:
    """A fix made of libcst node replacements and imports in ``sf``'s tree."""
    draft = Fix(description, (), tuple(changes), tuple(imports))
    fixed, _ = apply_cst_fixes(sf.module, [draft])
    return Fix(description, _line_edits(sf.source, fixed.code), draft.changes, draft.imports)


def is_cst_fix(fix: Fix) -> bool:
    return bool(fix.changes or fix.imports)


def apply_cst_fixes(module: cst.Module, fixes: Iterable[Fix]) -> tuple[cst.Module, int]:
    """Apply as many CST fixes as do not touch each other; returns (new tree, fixes applied).

    A fix whose replaced node contains, or sits inside, a node another taken fix replaces waits
    for the next round (``fix_files`` re-checks and tries again), so no replacement ever loses
    another. The same import asked for by several fixes is added once.
    """
    replacements: dict[cst.CSTNode, cst.CSTNode] = {}
    covered: set[cst.CSTNode] = set()  # every node inside a node being replaced
    imports: dict[cst.FunctionDef | None, list[AddImport]] = {}
    applied = 0
    for fix in fixes:
        inside = [set(walk(change.old)) for change in fix.changes]
        if any(change.old in covered for change in fix.changes) or any(
            taken in nodes for nodes in inside for taken in replacements
        ):
            continue
        for change, nodes in zip(fix.changes, inside, strict=True):
            replacements[change.old] = change.new
            covered.update(nodes)
        for request in fix.imports:
            wanted = imports.setdefault(request.scope, [])
            if not any(_same(request, other) for other in wanted):
                wanted.append(request)
        applied += 1
    if not applied:
        return module, 0
    rewritten = module.visit(_Rewriter(replacements, imports))
    assert isinstance(rewritten, cst.Module)
    return rewritten, applied


class _Rewriter(cst.CSTTransformer):
    def __init__(
        self,
        replacements: dict[cst.CSTNode, cst.CSTNode],
        imports: dict[cst.FunctionDef | None, list[AddImport]],
    ) -> None:
        super().__init__()
        self.replacements = replacements
        self.imports = imports

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[no-untyped-def]
        replaced = self.replacements.get(original_node)
        if replaced is not None:
            return replaced
        if isinstance(original_node, cst.FunctionDef) and original_node in self.imports:
            assert isinstance(updated_node, cst.FunctionDef)
            body = updated_node.body
            if isinstance(body, cst.IndentedBlock):
                statements = _with_imports(body.body, self.imports[original_node])
                return updated_node.with_changes(body=body.with_changes(body=statements))
        if isinstance(original_node, cst.Module) and None in self.imports:
            assert isinstance(updated_node, cst.Module)
            return updated_node.with_changes(
                body=_with_imports(updated_node.body, self.imports[None])
            )
        return updated_node


def _with_imports(
    body: Sequence[cst.BaseStatement], requests: Sequence[AddImport]
) -> list[cst.BaseStatement]:
    """``body`` with each requested import after its preamble, unless it is there already."""
    statements = list(body)
    at = 0
    while at < len(statements) and _is_preamble(statements[at]):
        at += 1
    present = {_bound(s) for s in statements[:at]}
    new = [_import_statement(r) for r in requests if (r.module, r.alias) not in present]
    return [*statements[:at], *new, *statements[at:]]


def _import_statement(request: AddImport) -> cst.SimpleStatementLine:
    asname = cst.AsName(cst.Name(request.alias)) if request.alias else None
    return cst.SimpleStatementLine(
        [cst.Import([cst.ImportAlias(name=cst.parse_expression(request.module), asname=asname)])]  # type: ignore[arg-type]
    )


def _bound(statement: cst.BaseStatement) -> tuple[str, str | None] | None:
    """(module, alias) of a one-name ``import module [as alias]`` statement."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, cst.Import) or len(small.names) != 1:
        return None
    alias = small.names[0]
    asname = alias.asname.name if alias.asname is not None else None
    return (
        cst.Module([]).code_for_node(alias.name),
        asname.value if isinstance(asname, cst.Name) else None,
    )


def _is_preamble(statement: cst.BaseStatement) -> bool:
    """Docstrings, imports and ``os.environ`` set-up: an added import goes after them."""
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    for small in statement.body:
        if isinstance(small, cst.Import | cst.ImportFrom):
            continue
        if isinstance(small, cst.Expr) and isinstance(
            small.value, cst.SimpleString | cst.ConcatenatedString
        ):
            continue
        if any(isinstance(n, cst.Name) and n.value == "environ" for n in walk(small)):
            continue
        return False
    return True


def _same(a: AddImport, b: AddImport) -> bool:
    return (a.module, a.alias) == (b.module, b.alias)


def _line_edits(before: str, after: str) -> tuple[TextEdit, ...]:
    """The whole-line text edits that turn ``before`` into ``after``."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    edits = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, lo, hi, new_lo, new_hi in matcher.get_opcodes():
        if tag != "equal":
            edits.append(TextEdit(lo + 1, 1, hi + 1, 1, "".join(new[new_lo:new_hi])))
    return tuple(edits)
