"""Constant folding over one module, for passes that need the *value* of a feature key.

Feature keys in trainer and transform modules are often computed: ``_transformed_name(key)``
inside ``for key in _DENSE_FLOAT_FEATURE_KEYS:``, ``f"{name}_id"``, ``KEYS[:3]``. ``ConstEval``
folds strings, numbers, lists/tuples/dicts of them, ``+``/``%``/f-strings/``.format``/
``.join``, indexing and slicing, ``len``/``list``/``tuple``/``sorted``/``zip``/``range``,
comprehensions, module-level constants, and calls to the module's own single-``return``
functions. ``ConstWalker`` runs a function body with an environment of known locals,
unrolling ``for`` loops and comprehensions over known sequences, and hands every node it meets
(with the environment in force there) to a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import libcst as cst

from compiler.passes.source import SourceFile, dotted_name, iter_children, string_value


class _Unknown:
    def __repr__(self) -> str:
        return "UNRESOLVED"


#: The value could not be folded.
UNRESOLVED: Any = _Unknown()
_MAX_UNROLL = 256
_MAX_DEPTH = 6


class ConstEval:
    def __init__(self, sf: SourceFile) -> None:
        self.sf = sf
        self.functions = sf.top_level_functions()
        self.module: dict[str, Any] = {}
        for stmt in sf.module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.Assign | cst.AnnAssign) and small.value is not None:
                    targets = (
                        [t.target for t in small.targets]
                        if isinstance(small, cst.Assign)
                        else [small.target]
                    )
                    value = self.eval(small.value, {})
                    for target in targets:
                        if isinstance(target, cst.Name):
                            if value is UNRESOLVED:
                                self.module.pop(target.value, None)
                            else:
                                self.module[target.value] = value

    def eval(self, node: cst.CSTNode, env: dict[str, Any], depth: int = 0) -> Any:
        try:
            return self._eval(node, env, depth)
        except Exception:  # noqa: BLE001 - folding user code may fail any way; then it's unknown
            return UNRESOLVED

    def _eval(self, node: cst.CSTNode, env: dict[str, Any], depth: int) -> Any:
        U = UNRESOLVED
        if depth > _MAX_DEPTH:
            return U
        ev = self._eval
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            value = string_value(node)
            return U if value is None else value
        if isinstance(node, cst.Integer):
            return int(node.value, 0)
        if isinstance(node, cst.Float):
            return float(node.value)
        if isinstance(node, cst.Name):
            if node.value in env:
                return env[node.value]
            if node.value in self.module:
                return self.module[node.value]
            return {"True": True, "False": False, "None": None}.get(node.value, U)
        if isinstance(node, cst.Attribute):
            dotted = dotted_name(node)  # `self.features` bound by ConstWalker's caller
            return env[dotted] if dotted is not None and dotted in env else U
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            inner = ev(node.expression, env, depth)
            return U if inner is U else -inner
        if isinstance(node, cst.List | cst.Tuple):
            items = []
            for element in node.elements:
                value = ev(element.value, env, depth)
                if value is U:
                    return U
                if isinstance(element, cst.StarredElement):
                    items.extend(value)
                else:
                    items.append(value)
            return items if isinstance(node, cst.List) else tuple(items)
        if isinstance(node, cst.Dict):
            out: dict[Any, Any] = {}
            for element in node.elements:
                if not isinstance(element, cst.DictElement):
                    return U
                key, value = ev(element.key, env, depth), ev(element.value, env, depth)
                if key is U or value is U:
                    return U
                out[key] = value
            return out
        if isinstance(node, cst.BinaryOperation):
            left, right = ev(node.left, env, depth), ev(node.right, env, depth)
            if left is U or right is U:
                return U
            if isinstance(node.operator, cst.Add):
                return left + right
            if isinstance(node.operator, cst.Modulo) and isinstance(left, str):
                return left % right
            if isinstance(node.operator, cst.Multiply):
                return left * right
            if isinstance(node.operator, cst.Subtract):
                return left - right
            return U
        if isinstance(node, cst.FormattedString):
            pieces = []
            for part in node.parts:
                if isinstance(part, cst.FormattedStringText):
                    pieces.append(part.value)
                elif isinstance(part, cst.FormattedStringExpression):
                    if part.format_spec is not None or part.conversion is not None:
                        return U
                    value = ev(part.expression, env, depth)
                    if value is U:
                        return U
                    pieces.append(str(value))
            return "".join(pieces)
        if isinstance(node, cst.Subscript) and len(node.slice) == 1:
            base = ev(node.value, env, depth)
            if base is U:
                return U
            element = node.slice[0].slice
            if isinstance(element, cst.Index):
                index = ev(element.value, env, depth)
                return U if index is U else base[index]
            if isinstance(element, cst.Slice):
                parts = [
                    None if p is None else ev(p, env, depth)
                    for p in (element.lower, element.upper, element.step)
                ]
                if any(p is U for p in parts):
                    return U
                return base[slice(*parts)]
            return U
        if isinstance(node, cst.ListComp | cst.GeneratorExp | cst.SetComp):
            results = self._comprehension(node, env, depth)
            if results is U:
                return U
            items = [ev(node.elt, e, depth) for e in results]
            return U if any(i is U for i in items) else items
        if isinstance(node, cst.Call):
            return self._call(node, env, depth)
        return U

    def comprehension(
        self, node: cst.BaseComp | cst.DictComp, env: dict[str, Any], depth: int = 0
    ) -> Any:
        """The environments a comprehension's element is evaluated in, or UNRESOLVED."""
        try:
            return self._comprehension(node, env, depth)
        except Exception:  # noqa: BLE001 - see eval()
            return UNRESOLVED

    def _comprehension(
        self, node: cst.BaseComp | cst.DictComp, env: dict[str, Any], depth: int
    ) -> Any:
        envs = [env]
        comp: cst.CompFor | None = node.for_in
        while comp is not None:
            next_envs = []
            for current in envs:
                iterable = self._eval(comp.iter, current, depth)
                if iterable is UNRESOLVED or not hasattr(iterable, "__iter__"):
                    return UNRESOLVED
                for item in list(iterable)[:_MAX_UNROLL]:
                    bound = bind(comp.target, item, current)
                    if bound is None:
                        return UNRESOLVED
                    if all(self._eval(c.test, bound, depth) is True for c in comp.ifs):
                        next_envs.append(bound)
            envs = next_envs
            comp = comp.inner_for_in
        return envs

    def _call(self, node: cst.Call, env: dict[str, Any], depth: int) -> Any:
        U = UNRESOLVED
        func = node.func
        args = [a for a in node.args if a.keyword is None and not a.star]
        if any(a.star for a in node.args):
            return U
        values = [self._eval(a.value, env, depth) for a in args]
        if any(v is U for v in values):
            return U
        if isinstance(func, cst.Attribute):
            base = self._eval(func.value, env, depth)
            if base is U:
                return U
            method = func.attr.value
            if isinstance(base, str) and method in (
                "format", "join", "upper", "lower", "strip", "rstrip", "lstrip", "replace",
                "split", "rsplit", "removesuffix", "removeprefix",
            ):
                kwargs = {}
                for a in node.args:
                    if a.keyword is not None:
                        kw = self._eval(a.value, env, depth)
                        if kw is U:
                            return U
                        kwargs[a.keyword.value] = kw
                return getattr(base, method)(*values, **kwargs)
            if isinstance(base, dict) and method in ("keys", "values", "items") and not values:
                return list(getattr(base, method)())
            return U
        if not isinstance(func, cst.Name) or any(a.keyword is not None for a in node.args):
            return U
        name = func.value
        if name in env or name in self.module:
            return U
        if name in self.functions:
            return self._local_call(self.functions[name], values, depth)
        builtin = _BUILTINS.get(name)
        return U if builtin is None else builtin(*values)

    def _local_call(self, fn: cst.FunctionDef, values: list[Any], depth: int) -> Any:
        """A module function whose body is (a docstring and) one ``return`` expression."""
        body = [
            s for s in fn.body.body
            if not (
                isinstance(s, cst.SimpleStatementLine)
                and isinstance(s.body[0], cst.Expr)
                and isinstance(s.body[0].value, cst.SimpleString | cst.ConcatenatedString)
            )
        ]
        if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
            return UNRESOLVED
        stmt = body[0].body[0]
        if not isinstance(stmt, cst.Return) or stmt.value is None:
            return UNRESOLVED
        params = [p.name.value for p in fn.params.params]
        if len(values) > len(params):
            return UNRESOLVED
        env: dict[str, Any] = {}
        for index, param in enumerate(fn.params.params):
            if index < len(values):
                env[param.name.value] = values[index]
            elif param.default is not None:
                env[param.name.value] = self._eval(param.default, {}, depth + 1)
            else:
                return UNRESOLVED
        return self._eval(stmt.value, env, depth + 1)


_BUILTINS: dict[str, Callable[..., Any]] = {
    "len": len, "list": list, "tuple": tuple, "sorted": sorted, "str": str, "int": int,
    "range": lambda *a: list(range(*a)), "zip": lambda *a: list(zip(*a, strict=False)),
    "reversed": lambda a: list(reversed(a)), "enumerate": lambda a: list(enumerate(a)),
}


def bind(target: cst.CSTNode, value: Any, env: dict[str, Any]) -> dict[str, Any] | None:
    """``env`` plus ``target = value``; None when the target's shape does not fit."""
    out = dict(env)
    if isinstance(target, cst.Name):
        out[target.value] = value
        return out
    if isinstance(target, cst.Tuple | cst.List):
        try:
            items = list(value)
        except TypeError:
            return None
        if len(items) != len(target.elements):
            return None
        for element, item in zip(target.elements, items, strict=True):
            nested = bind(element.value, item, out)
            if nested is None:
                return None
            out = nested
        return out
    return None


def _targets_names(target: cst.CSTNode) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, cst.Tuple | cst.List):
        return [n for e in target.elements for n in _targets_names(e.value)]
    return []


Visit = Callable[[cst.CSTNode, dict[str, Any]], None]


class ConstWalker:
    """Runs function bodies with known locals, calling ``visit(node, env)`` for every node.

    ``for`` loops and comprehensions over known sequences are unrolled (the body is visited
    once per item, with the loop variable bound); otherwise the body is visited once with the
    loop variable unknown. Nested functions are visited with their parameters unknown.
    """

    def __init__(self, consts: ConstEval, visit: Visit) -> None:
        self.consts = consts
        self.visit = visit

    def run_function(self, fn: cst.FunctionDef, env: dict[str, Any] | None = None) -> None:
        scope = dict(env or {})
        for param in (*fn.params.params, *fn.params.kwonly_params):
            scope.pop(param.name.value, None)
        self.run_block(fn.body.body, scope)

    def run_block(self, stmts: Any, env: dict[str, Any]) -> None:
        for stmt in stmts:
            self.run_stmt(stmt, env)

    def run_stmt(self, stmt: cst.CSTNode, env: dict[str, Any]) -> None:
        if isinstance(stmt, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            for small in stmt.body:
                self.visit_tree(small, env)
                self._assign(small, env)
            return
        if isinstance(stmt, cst.For):
            self.visit_tree(stmt.iter, env)
            iterable = self.consts.eval(stmt.iter, env)
            items = None
            if iterable is not UNRESOLVED and hasattr(iterable, "__iter__"):
                items = list(iterable)[:_MAX_UNROLL]
            if items is not None:
                for item in items:
                    bound = bind(stmt.target, item, env)
                    if bound is None:
                        items = None
                        break
                    self.run_block(stmt.body.body, bound)
            if items is None:
                loose = {k: v for k, v in env.items() if k not in _targets_names(stmt.target)}
                self.run_block(stmt.body.body, loose)
            if stmt.orelse is not None:
                self.run_block(stmt.orelse.body.body, env)
            return
        if isinstance(stmt, cst.FunctionDef):
            for deco in stmt.decorators:
                self.visit_tree(deco.decorator, env)
            self.run_function(stmt, env)
            return
        if isinstance(stmt, cst.ClassDef):
            self.run_block(stmt.body.body, env)
            return
        # if / while / try / with / match: visit the headers, run every block.
        for child in iter_children(stmt):
            if isinstance(child, cst.BaseSuite):
                self.run_block(child.body, env)
            elif isinstance(child, cst.BaseExpression | cst.WithItem):
                self.visit_tree(child, env)
            else:
                self.run_stmt(child, env)  # else/elif/except/finally/case clauses

    def _assign(self, small: cst.CSTNode, env: dict[str, Any]) -> None:
        if isinstance(small, cst.Assign):
            value = self.consts.eval(small.value, env)
            for target in small.targets:
                for name in _targets_names(target.target):
                    env.pop(name, None)
                if value is not UNRESOLVED:
                    bound = bind(target.target, value, env)
                    if bound is not None:
                        env.update(bound)

    def visit_tree(self, node: cst.CSTNode, env: dict[str, Any]) -> None:
        self.visit(node, env)
        if isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp):
            envs = self.consts.comprehension(node, env)
            if envs is not UNRESOLVED:
                for inner in envs:
                    if isinstance(node, cst.DictComp):
                        self.visit_tree(node.key, inner)
                        self.visit_tree(node.value, inner)
                    else:
                        self.visit_tree(node.elt, inner)
                return
        if isinstance(node, cst.Lambda):
            names = {p.name.value for p in node.params.params}
            inner = {k: v for k, v in env.items() if k not in names}
            self.visit_tree(node.body, inner)
            return
        for child in iter_children(node):
            self.visit_tree(child, env)
