"""The statement half of the dataflow interpreter: blocks, branches (forked and joined),
loops, ``try``/``with``/``match``, assignment targets and unpacking.

``Interpreter`` (``engine``) mixes this in; the expression half lives there.
"""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import libcst as cst

from compiler.passes.dataflow.values import (
    _AUG_OPS,
    NONE,
    UNKNOWN,
    ClassV,
    Frame,
    FuncV,
    ModuleV,
    SeqV,
    TupleV,
    _body,
)
from compiler.passes.source import dotted_name


class StatementInterpreter:
    """Statement execution for ``Interpreter``; it uses the expression methods defined there."""

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

