"""A small abstract interpreter over one module's libcst tree, for flow-sensitive passes.

It runs the module's statements with abstract values: assignments and aliases, tuple
unpacking, ``if``/``for``/``while``/``try``/``with``/``match`` (branches are forked and joined),
comprehensions and lambdas, and calls into the module's own functions and methods, binding
argument values to parameters and returning the joined ``return`` values. So a fact such as
"this dataset is already batched" or "this string may be a gs:// URI" follows a value through
variables, method chains, parameters and return values, within the module.

What a value *means* is up to the pass: a ``DataflowPass`` supplies the transfer functions
(``df_call``, ``df_attribute``, ``df_join`` ...) and reports findings from them. The engine only
knows the structural values below; everything else is the pass's (hashable) value, typically a
``Fact``.

Limits, on purpose: one iteration per loop; attributes (``self.x = ...``) are not tracked; a
function is analysed in at most ``MAX_CONTEXTS`` argument contexts and ``MAX_DEPTH`` nested
calls; a module has a step budget. Each function is also analysed once on its own, with
parameters from ``df_entry_param``, so code that is never called in the module is still checked.
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from compiler.passes.base import Pass
from compiler.passes.dataflow.statements import StatementInterpreter
from compiler.passes.dataflow.values import (
    _OPS,
    MAX_CONTEXTS,
    MAX_DEPTH,
    NONE,
    STEP_BUDGET,
    UNKNOWN,
    ArgV,
    CallInfo,
    ClassV,
    Frame,
    FuncV,
    InstanceV,
    ModuleV,
    SeqV,
    TupleV,
    _body,
    _is_generator,
    _OutOfBudget,
)
from compiler.passes.source import BUILTIN_NAMES, SourceFile


class Interpreter(StatementInterpreter):
    """Runs one module abstractly, asking ``domain`` (a DataflowPass) what values mean."""

    def __init__(self, sf: SourceFile, domain: DataflowPass) -> None:
        self.sf = sf
        self.d = domain
        self.module_frame = Frame({}, None)
        self.cache: dict[Any, Any] = {}
        self.contexts: dict[cst.CSTNode, int] = {}
        self.active: list[cst.CSTNode] = []
        self.defaults: dict[cst.CSTNode, dict[str, Any]] = {}
        self.lambdas_done: set[cst.Lambda] = set()
        self.steps = 0
        self.generators = {fn for fn in sf.nodes(cst.FunctionDef) if _is_generator(fn, sf)}
        self.classes: dict[cst.FunctionDef, cst.ClassDef] = {}
        for cls in sf.nodes(cst.ClassDef):
            for stmt in _body(cls.body):
                if isinstance(stmt, cst.FunctionDef):
                    self.classes[stmt] = cls

    # -- driver -------------------------------------------------------------------------------
    def run(self) -> None:
        mf = self.module_frame
        for stmt in self.sf.module.body:  # hoist: functions may call ones defined below them
            if isinstance(stmt, cst.FunctionDef):
                mf.names[stmt.name.value] = FuncV(stmt, mf)
            elif isinstance(stmt, cst.ClassDef):
                mf.names[stmt.name.value] = ClassV(stmt)
        try:
            self.exec_block(self.sf.module.body, mf)
            for fn in self.sf.nodes(cst.FunctionDef):
                self.analyze_entry(fn)
        except _OutOfBudget:
            pass

    def analyze_entry(self, fn: cst.FunctionDef) -> None:
        cls = self.classes.get(fn)
        bound: dict[str, Any] = {}
        defaults = self.defaults.get(fn, {})
        params = self._params(fn)
        for index, param in enumerate(params):
            name = param.name.value
            if index == 0 and cls is not None and not _is_static(fn):
                bound[name] = InstanceV(cls)
                continue
            value = self.d.df_entry_param(fn, name, index)
            if name in defaults:
                value = self.join(value, defaults[name])
            bound[name] = value
        self.invoke(FuncV(fn, self.module_frame), bound, entry=True)

    # -- functions ----------------------------------------------------------------------------
    @staticmethod
    def _params(fn: cst.FunctionDef | cst.Lambda) -> list[cst.Param]:
        p = fn.params
        return [*p.posonly_params, *p.params, *p.kwonly_params]

    def bind(self, fv: FuncV, args: list[ArgV]) -> dict[str, Any]:
        fn = fv.node
        p = fn.params
        positional = [*p.posonly_params, *p.params]
        bound: dict[str, Any] = {}
        if fv.self_value is not None and positional:
            bound[positional[0].name.value] = fv.self_value
            positional = positional[1:]
        defaults = self.defaults.get(fn, {})
        pos_values: list[Any] = []
        uncertain = False  # a *args argument makes every later position unknowable
        for a in args:
            if a.star:
                uncertain = True
            elif a.keyword is None and not uncertain:
                pos_values.append(a.value)
        keywords = {a.keyword: a.value for a in args if a.keyword}
        for index, param in enumerate(positional):
            name = param.name.value
            if index < len(pos_values):
                bound[name] = pos_values[index]
            elif name in keywords:
                bound[name] = keywords[name]
            elif uncertain:
                bound[name] = UNKNOWN
            else:
                bound[name] = defaults.get(name, UNKNOWN)
        for param in p.kwonly_params:
            name = param.name.value
            bound[name] = keywords.get(name, defaults.get(name, UNKNOWN))
        for star in (p.star_arg, p.star_kwarg):
            if isinstance(star, cst.Param):
                bound[star.name.value] = UNKNOWN
        return bound

    def invoke(self, fv: FuncV, bound: dict[str, Any], *, entry: bool = False) -> Any:
        fn = fv.node
        try:
            key: Any = (fn, id(fv.closure), entry, frozenset(bound.items()))
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self.cache:
            return self.cache[key]
        if fn in self.active or len(self.active) >= MAX_DEPTH:
            return UNKNOWN
        if not entry:
            if self.contexts.get(fn, 0) >= MAX_CONTEXTS:
                return UNKNOWN
            self.contexts[fn] = self.contexts.get(fn, 0) + 1
        frame = Frame(dict(bound), fv.closure)
        self.active.append(fn)
        try:
            if isinstance(fn, cst.Lambda):
                result = self.eval(fn.body, frame)
            else:
                self.exec_block(_body(fn.body), frame)
                # Falling off the end returns None, the bottom of every join: the function's
                # value is the join of its return statements.
                result = NONE
                for value in frame.returns:
                    result = self.join(result, value)
                if fn in self.generators:
                    result = UNKNOWN
        finally:
            self.active.pop()
        if key is not None:
            self.cache[key] = result
        return result

    # -- expressions --------------------------------------------------------------------------
    def lookup(self, name: str, frame: Frame) -> Any:
        found, value = frame.lookup(name)
        if found:
            return value
        if name == "None":
            return NONE
        imported = self.sf.imports.get(name)
        if imported is not None:
            return ModuleV(imported)
        if name in BUILTIN_NAMES:
            return ModuleV(f"builtins.{name}")
        return UNKNOWN

    def eval(self, node: cst.CSTNode, frame: Frame) -> Any:
        self.steps += 1
        if self.steps > STEP_BUDGET:
            raise _OutOfBudget
        d = self.d
        if isinstance(node, cst.Name):
            return self.lookup(node.value, frame)
        if isinstance(node, cst.Attribute):
            base = self.eval(node.value, frame)
            attr = node.attr.value
            if isinstance(base, ModuleV):
                return ModuleV(f"{base.qualname}.{attr}")
            if isinstance(base, InstanceV):
                method = self._method(base.cls, attr)
                if method is not None:
                    return FuncV(method, self.module_frame, self_value=base)
            return d.df_attribute(node, base, attr)
        if isinstance(node, cst.Call):
            return self.eval_call(node, frame)
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString | cst.Integer | cst.Float):
            return d.df_literal(node)
        if isinstance(node, cst.FormattedString):
            parts: list[Any] = []
            for part in node.parts:
                if isinstance(part, cst.FormattedStringText):
                    parts.append(part.value)
                elif isinstance(part, cst.FormattedStringExpression):
                    parts.append(self.eval(part.expression, frame))
            return d.df_fstring(node, parts)
        if isinstance(node, cst.Subscript):
            return self.eval_subscript(node, frame)
        if isinstance(node, cst.BinaryOperation):
            left = self.eval(node.left, frame)
            right = self.eval(node.right, frame)
            return d.df_binop(node, _OPS.get(type(node.operator), "?"), left, right)
        if isinstance(node, cst.BooleanOperation):
            return self.join(self.eval(node.left, frame), self.eval(node.right, frame))
        if isinstance(node, cst.IfExp):
            self.eval(node.test, frame)
            return self.join(self.eval(node.body, frame), self.eval(node.orelse, frame))
        if isinstance(node, cst.Tuple | cst.List | cst.Set):
            items = []
            starred = False
            for element in node.elements:
                value = self.eval(element.value, frame)
                if isinstance(element, cst.StarredElement):
                    starred = True
                    value = self.iter_value(value)
                items.append(value)
            if starred or isinstance(node, cst.Set):
                result = NONE
                for item in items:
                    result = self.join(result, item)
                return SeqV(UNKNOWN if result is NONE else result)
            return TupleV(tuple(items))
        if isinstance(node, cst.Lambda):
            fv = FuncV(node, frame)
            if node not in self.lambdas_done:
                self.lambdas_done.add(node)
                self.invoke(fv, {p.name.value: UNKNOWN for p in self._params(node)}, entry=True)
            return fv
        if isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp):
            inner = Frame({}, frame)
            comp: cst.CompFor | None = node.for_in
            while comp is not None:
                elem = self.iter_value(self.eval(comp.iter, inner))
                self.bind_target(comp.target, elem, inner)
                for cond in comp.ifs:
                    self.eval(cond.test, inner)
                comp = comp.inner_for_in
            if isinstance(node, cst.DictComp):
                self.eval(node.key, inner)
                self.eval(node.value, inner)
                return UNKNOWN
            return SeqV(self.eval(node.elt, inner))
        if isinstance(node, cst.NamedExpr):
            value = self.eval(node.value, frame)
            self.bind_target(node.target, value, frame)
            return value
        if isinstance(node, cst.Await):
            return self.eval(node.expression, frame)
        # Anything else (comparisons, unary ops, dicts, yields...): evaluate the parts so calls
        # inside them are seen, and know nothing about the result.
        for child in _expr_children(node):
            self.eval(child, frame)
        return UNKNOWN

    def eval_subscript(self, node: cst.Subscript, frame: Frame) -> Any:
        base = self.eval(node.value, frame)
        if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            index_node = node.slice[0].slice.value
            index = self.eval(index_node, frame)
            literal = _int_literal(index_node)
            if isinstance(base, TupleV) and literal is not None:
                if -len(base.items) <= literal < len(base.items):
                    return base.items[literal]
                return UNKNOWN
            if isinstance(base, SeqV):
                return base.elem
            return self.d.df_subscript(node, base, index, index_node)
        for element in node.slice:
            if isinstance(element.slice, cst.Index):
                self.eval(element.slice.value, frame)
            elif isinstance(element.slice, cst.Slice):
                for part in (element.slice.lower, element.slice.upper, element.slice.step):
                    if part is not None:
                        self.eval(part, frame)
        if isinstance(base, TupleV):
            return SeqV(self.iter_value(base))
        if isinstance(base, SeqV):
            return base
        return self.d.df_subscript(node, base, None, None)

    def _method(self, cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
        for stmt in _body(cls.body):
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
                return stmt
        return None

    def eval_call(self, node: cst.Call, frame: Frame) -> Any:
        func = node.func
        receiver: Any = None
        method: str | None = None
        callee: Any
        if isinstance(func, cst.Attribute):
            receiver = self.eval(func.value, frame)
            method = func.attr.value
            if isinstance(receiver, ModuleV):
                callee, receiver, method = ModuleV(f"{receiver.qualname}.{method}"), None, None
            elif isinstance(receiver, InstanceV) and self._method(receiver.cls, method):
                callee = FuncV(self._method(receiver.cls, method), self.module_frame, receiver)
            else:
                callee = None
        else:
            callee = self.eval(func, frame)
        args = [
            ArgV(
                a,
                a.keyword.value if a.keyword is not None else None,
                a.star,
                self.eval(a.value, frame),
            )
            for a in node.args
        ]
        if isinstance(callee, FuncV):
            return self.invoke(callee, self.bind(callee, args))
        if isinstance(callee, ClassV):
            return InstanceV(callee.node)
        qname = callee.qualname if isinstance(callee, ModuleV) else None
        return self.d.df_call(CallInfo(node, qname, receiver, method, args))


def _int_literal(node: cst.CSTNode) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value, 0)
    if (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, cst.Integer)
    ):
        return -int(node.expression.value, 0)
    return None


def _expr_children(node: cst.CSTNode) -> list[cst.BaseExpression]:
    out: list[cst.BaseExpression] = []
    stack = [node]
    while stack:
        current = stack.pop()
        for name in ("left", "right", "expression", "value", "key", "test", "comparisons",
                     "comparator", "elements", "slice", "parts", "item"):
            child = getattr(current, name, None)
            if child is None or child is current:
                continue
            items = child if isinstance(child, list | tuple) else [child]
            for item in items:
                if isinstance(item, cst.BaseExpression):
                    out.append(item)
                elif isinstance(item, cst.CSTNode):
                    stack.append(item)
    return out


def _is_static(fn: cst.FunctionDef) -> bool:
    return any(
        isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
        for d in fn.decorators
    )


class DataflowPass(Pass):
    """Base for flow-sensitive passes: override the ``df_*`` transfer functions.

    Every hook gets engine values (``UNKNOWN``, ``NONE``, ``TupleV``, ``SeqV``, ``ModuleV``,
    ``FuncV``...) or the pass's own values, and returns a value. ``finish()`` runs the
    interpreter over the file once.
    """

    def finish(self) -> None:
        if self.file is not None and self.wants(self.file):
            Interpreter(self.file, self).run()

    def wants(self, sf: SourceFile) -> bool:
        """Cheap pre-check: False skips the analysis of a file that cannot have findings."""
        return True

    def df_literal(self, node: cst.BaseExpression) -> Any:
        return UNKNOWN

    def df_fstring(self, node: cst.FormattedString, parts: list[Any]) -> Any:
        """``parts``: the literal text pieces (str) and the values of the expressions."""
        return UNKNOWN

    def df_attribute(self, node: cst.Attribute, base: Any, attr: str) -> Any:
        return UNKNOWN

    def df_subscript(
        self, node: cst.Subscript, base: Any, index: Any, index_node: cst.CSTNode | None
    ) -> Any:
        """``index``/``index_node`` are None for slices and multi-element subscripts."""
        return UNKNOWN

    def df_binop(self, node: cst.CSTNode, op: str, left: Any, right: Any) -> Any:
        return UNKNOWN

    def df_call(self, call: CallInfo) -> Any:
        return UNKNOWN

    def df_join(self, a: Any, b: Any) -> Any:
        """Join two different values where control flow merges. Default: nothing is known."""
        return UNKNOWN

    def df_iter(self, value: Any) -> Any:
        """The value of an element when iterating over ``value``."""
        return UNKNOWN

    def df_unpack(self, value: Any, index: int) -> Any:
        """Element ``index`` when unpacking ``value`` into a tuple target."""
        return UNKNOWN

    def df_with(self, value: Any) -> Any:
        """The ``as`` target of ``with value as x``."""
        return UNKNOWN

    def df_entry_param(self, fn: cst.FunctionDef, name: str, index: int) -> Any:
        """A parameter's value when the function is analysed on its own."""
        return UNKNOWN
