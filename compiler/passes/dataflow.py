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

import dataclasses
from collections.abc import Sequence
from typing import Any

import libcst as cst

from compiler.passes.core import BUILTIN_NAMES, Pass, SourceFile, dotted_name

MAX_CONTEXTS = 8
MAX_DEPTH = 12
STEP_BUDGET = 250_000


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Nothing is known about the value.
UNKNOWN: Any = _Sentinel("UNKNOWN")
#: The ``None`` constant; it is the bottom of every join (``x if c else None`` keeps x's facts).
NONE: Any = _Sentinel("NONE")


@dataclasses.dataclass(frozen=True)
class Fact:
    """A pass-defined fact about a value: a kind, where it was established, and a note."""

    kind: str
    origin: cst.CSTNode | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class TupleV:
    """A tuple or list literal (or a function returning one) with known items."""

    items: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class SeqV:
    """A sequence of unknown length whose elements all have value ``elem``."""

    elem: Any


@dataclasses.dataclass(frozen=True)
class ModuleV:
    """An imported module or one of its attributes, or a builtin: ``tensorflow.io.gfile``."""

    qualname: str


@dataclasses.dataclass(frozen=True)
class ClassV:
    node: cst.ClassDef


@dataclasses.dataclass(frozen=True)
class InstanceV:
    """``self`` inside a method of a class defined in the module."""

    cls: cst.ClassDef


@dataclasses.dataclass(eq=False)
class FuncV:
    """A function, method or lambda of the module, with the frame it closes over."""

    node: cst.FunctionDef | cst.Lambda
    closure: Frame
    self_value: Any = None


@dataclasses.dataclass
class ArgV:
    node: cst.Arg
    keyword: str | None
    star: str
    value: Any


@dataclasses.dataclass
class CallInfo:
    """A call the pass is asked to give a value to.

    ``qname`` is set for calls of imported names and builtins (``os.path.exists``,
    ``builtins.open``); ``receiver``/``method`` for method calls on a value (``ds.batch(32)``).
    """

    node: cst.Call
    qname: str | None
    receiver: Any
    method: str | None
    args: list[ArgV]

    def arg(self, index: int | None, keyword: str | None = None) -> ArgV | None:
        """The argument at positional ``index`` or passed as ``keyword``."""
        positional = [a for a in self.args if a.keyword is None and not a.star]
        if index is not None and index < len(positional):
            return positional[index]
        if keyword is not None:
            for a in self.args:
                if a.keyword == keyword:
                    return a
        return None

    def value(self, index: int | None, keyword: str | None = None) -> Any:
        found = self.arg(index, keyword)
        return UNKNOWN if found is None else found.value


class Frame:
    def __init__(
        self, names: dict[str, Any], parent: Frame | None, returns: list[Any] | None = None
    ) -> None:
        self.names = names
        self.parent = parent
        self.returns: list[Any] = returns if returns is not None else []

    def lookup(self, name: str) -> tuple[bool, Any]:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.names:
                return True, frame.names[name]
            frame = frame.parent
        return False, None

    def fork(self) -> Frame:
        return Frame(dict(self.names), self.parent, self.returns)


class _OutOfBudget(Exception):
    pass


_OPS = {
    cst.Add: "+", cst.Subtract: "-", cst.Multiply: "*", cst.Divide: "/", cst.Modulo: "%",
    cst.FloorDivide: "//", cst.Power: "**", cst.MatrixMultiply: "@", cst.BitOr: "|",
    cst.BitAnd: "&", cst.BitXor: "^", cst.LeftShift: "<<", cst.RightShift: ">>",
}
_AUG_OPS = {
    cst.AddAssign: "+", cst.SubtractAssign: "-", cst.MultiplyAssign: "*", cst.DivideAssign: "/",
    cst.ModuloAssign: "%", cst.FloorDivideAssign: "//", cst.PowerAssign: "**",
    cst.BitOrAssign: "|", cst.BitAndAssign: "&", cst.BitXorAssign: "^",
    cst.LeftShiftAssign: "<<", cst.RightShiftAssign: ">>", cst.MatrixMultiplyAssign: "@",
}


def _body(block: cst.BaseSuite) -> Sequence[cst.CSTNode]:
    return block.body  # IndentedBlock.body: statements; SimpleStatementSuite.body: small ones


def _is_generator(fn: cst.FunctionDef, sf: SourceFile) -> bool:
    for node in sf.nodes(cst.Yield):
        for anc in sf.ancestors(node):
            if isinstance(anc, cst.FunctionDef | cst.Lambda):
                if anc is fn:
                    return True
                break
    return False


class Interpreter:
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

    # -- statements ---------------------------------------------------------------------------
    def exec_block(self, stmts: Sequence[cst.CSTNode], frame: Frame) -> bool:
        """Run statements; True when every path through them ends (return/raise/break...)."""
        for stmt in stmts:
            if self.exec_stmt(stmt, frame):
                return True
        return False

    def _branches(self, frame: Frame, runs: list[tuple[Frame, bool]]) -> bool:
        live = [f.names for f, terminated in runs if not terminated]
        if not live:
            return True
        merged: dict[str, Any] = {}
        for names in live:
            for name, value in names.items():
                merged[name] = self.join(merged[name], value) if name in merged else value
        frame.names = merged
        return False

    def exec_stmt(self, stmt: cst.CSTNode, frame: Frame) -> bool:
        if isinstance(stmt, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            return self.exec_block(stmt.body, frame)
        if isinstance(stmt, cst.BaseSmallStatement):
            return self.exec_small(stmt, frame)
        if isinstance(stmt, cst.If):
            self.eval(stmt.test, frame)
            then = frame.fork()
            runs = [(then, self.exec_block(_body(stmt.body), then))]
            other = frame.fork()
            if isinstance(stmt.orelse, cst.If):
                runs.append((other, self.exec_stmt(stmt.orelse, other)))
            elif isinstance(stmt.orelse, cst.Else):
                runs.append((other, self.exec_block(_body(stmt.orelse.body), other)))
            else:
                runs.append((other, False))
            return self._branches(frame, runs)
        if isinstance(stmt, cst.For):
            elem = self.iter_value(self.eval(stmt.iter, frame))
            loop = frame.fork()
            self.bind_target(stmt.target, elem, loop)
            done = self.exec_block(_body(stmt.body), loop)
            self._branches(frame, [(frame.fork(), False), (loop, done)])
            if stmt.orelse is not None:
                return self.exec_block(_body(stmt.orelse.body), frame)
            return False
        if isinstance(stmt, cst.While):
            self.eval(stmt.test, frame)
            loop = frame.fork()
            done = self.exec_block(_body(stmt.body), loop)
            self._branches(frame, [(frame.fork(), False), (loop, done)])
            if stmt.orelse is not None:
                return self.exec_block(_body(stmt.orelse.body), frame)
            return False
        if isinstance(stmt, cst.Try | cst.TryStar):
            body = frame.fork()
            done = self.exec_block(_body(stmt.body), body)
            if not done and stmt.orelse is not None:
                done = self.exec_block(_body(stmt.orelse.body), body)
            runs = [(body, done)]
            for handler in stmt.handlers:
                entry = frame.fork()
                self._branches(entry, [(entry.fork(), False), (body.fork(), False)])
                if handler.type is not None:
                    self.eval(handler.type, entry)
                if handler.name is not None:
                    self.bind_target(handler.name.name, UNKNOWN, entry)
                runs.append((entry, self.exec_block(_body(handler.body), entry)))
            ended = self._branches(frame, runs)
            if stmt.finalbody is not None:
                ended = self.exec_block(_body(stmt.finalbody.body), frame) or ended
            return ended
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                value = self.eval(item.item, frame)
                if item.asname is not None:
                    self.bind_target(item.asname.name, self.d.df_with(value), frame)
            return self.exec_block(_body(stmt.body), frame)
        if isinstance(stmt, cst.FunctionDef):
            for deco in stmt.decorators:
                self.eval(deco.decorator, frame)
            defaults: dict[str, Any] = {}
            for param in self._params(stmt):
                if param.default is not None:
                    defaults[param.name.value] = self.eval(param.default, frame)
            self.defaults[stmt] = defaults
            frame.names[stmt.name.value] = FuncV(stmt, frame)
            return False
        if isinstance(stmt, cst.ClassDef):
            frame.names[stmt.name.value] = ClassV(stmt)
            for base in stmt.bases:
                self.eval(base.value, frame)
            self.exec_block(_body(stmt.body), Frame({}, frame))
            return False
        if isinstance(stmt, cst.Match):
            self.eval(stmt.subject, frame)
            runs = [(frame.fork(), False)]
            for case in stmt.cases:
                branch = frame.fork()
                runs.append((branch, self.exec_block(_body(case.body), branch)))
            return self._branches(frame, runs)
        return False

    def exec_small(self, stmt: cst.BaseSmallStatement, frame: Frame) -> bool:
        if isinstance(stmt, cst.Expr):
            self.eval(stmt.value, frame)
        elif isinstance(stmt, cst.Assign):
            value = self.eval(stmt.value, frame)
            for target in stmt.targets:
                self.bind_target(target.target, value, frame)
        elif isinstance(stmt, cst.AnnAssign):
            if stmt.value is not None:
                self.bind_target(stmt.target, self.eval(stmt.value, frame), frame)
        elif isinstance(stmt, cst.AugAssign):
            current = self.eval(stmt.target, frame)
            value = self.eval(stmt.value, frame)
            op = _AUG_OPS.get(type(stmt.operator), "?")
            self.bind_target(stmt.target, self.d.df_binop(stmt, op, current, value), frame)
        elif isinstance(stmt, cst.Return):
            frame.returns.append(NONE if stmt.value is None else self.eval(stmt.value, frame))
            return True
        elif isinstance(stmt, cst.Raise):
            if stmt.exc is not None:
                self.eval(stmt.exc, frame)
            return True
        elif isinstance(stmt, cst.Break | cst.Continue):
            return True
        elif isinstance(stmt, cst.Import):
            for alias in stmt.names:
                full = dotted_name(alias.name) or ""
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    frame.names[alias.asname.name.value] = ModuleV(full)
                else:
                    head = full.split(".", 1)[0]
                    frame.names[head] = ModuleV(head)
        elif isinstance(stmt, cst.ImportFrom):
            if stmt.module is not None and not stmt.relative:
                base = dotted_name(stmt.module) or ""
                if not isinstance(stmt.names, cst.ImportStar):
                    for alias in stmt.names:
                        name = dotted_name(alias.name) or ""
                        local = name
                        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                            local = alias.asname.name.value
                        frame.names[local] = ModuleV(f"{base}.{name}")
        elif isinstance(stmt, cst.Assert):
            self.eval(stmt.test, frame)
        elif isinstance(stmt, cst.Del):
            targets = stmt.target.elements if isinstance(stmt.target, cst.Tuple) else [stmt.target]
            for target in targets:
                node = target.value if isinstance(target, cst.Element) else target
                if isinstance(node, cst.Name):
                    frame.names.pop(node.value, None)
        return False

    def bind_target(self, target: cst.CSTNode, value: Any, frame: Frame) -> None:
        if isinstance(target, cst.Name):
            frame.names[target.value] = value
        elif isinstance(target, cst.Tuple | cst.List):
            elements = target.elements
            if any(isinstance(e, cst.StarredElement) for e in elements):
                parts = [UNKNOWN] * len(elements)
            else:
                parts = self.unpack(value, len(elements))
            for element, part in zip(elements, parts, strict=True):
                self.bind_target(element.value, part, frame)
        elif isinstance(target, cst.Attribute):
            self.eval(target.value, frame)
        elif isinstance(target, cst.Subscript):
            self.eval(target.value, frame)
            for element in target.slice:
                if isinstance(element.slice, cst.Index):
                    self.eval(element.slice.value, frame)
        elif isinstance(target, cst.StarredElement):
            self.bind_target(target.value, UNKNOWN, frame)

    def unpack(self, value: Any, count: int) -> list[Any]:
        if isinstance(value, TupleV) and len(value.items) == count:
            return list(value.items)
        if isinstance(value, SeqV):
            return [value.elem] * count
        return [self.d.df_unpack(value, index) for index in range(count)]

    def iter_value(self, value: Any) -> Any:
        if isinstance(value, TupleV):
            result = NONE
            for item in value.items:
                result = self.join(result, item)
            return UNKNOWN if result is NONE else result
        if isinstance(value, SeqV):
            return value.elem
        return self.d.df_iter(value)

    def join(self, a: Any, b: Any) -> Any:
        if a is b or a == b:
            return a
        if a is NONE:
            return b
        if b is NONE:
            return a
        if isinstance(a, TupleV) and isinstance(b, TupleV) and len(a.items) == len(b.items):
            return TupleV(tuple(self.join(x, y) for x, y in zip(a.items, b.items, strict=True)))
        if isinstance(a, SeqV) and isinstance(b, SeqV):
            return SeqV(self.join(a.elem, b.elem))
        return self.d.df_join(a, b)

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
