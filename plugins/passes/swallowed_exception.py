"""swallowed-exception: ``except Exception`` that logs and carries on inside run_fn."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler.passes import Pass, Severity
from compiler.passes.source import dotted_name, iter_children, walk

_ENTRY_POINTS = ("run_fn", "trainer_fn")
_BROAD = frozenset({"Exception", "BaseException", "builtins.Exception", "builtins.BaseException"})
_EXITS = frozenset({"sys.exit", "os._exit", "builtins.exit", "builtins.quit"})


class SwallowedException(Pass):
    """A broad ``except`` in ``run_fn`` (or a helper it calls) that carries on.

    ``except Exception:`` / ``except BaseException:`` / a bare ``except:`` whose handler neither
    re-raises nor exits turns a failure into a log line: the job "succeeds" with missing
    metrics or a missing model, which is exactly what a test job exists to catch. The official
    TFRS+TFX tutorial wraps its ``run_fn`` work this way. So does
    ``contextlib.suppress(Exception)``.

    Checked: the body of ``run_fn``/``trainer_fn`` and every function of the module it calls,
    directly or through other helpers. A handler containing a ``raise`` (anywhere in it) or a
    ``sys.exit`` is fine; so is catching a specific exception type.
    """

    name: ClassVar[str] = "swallowed-exception"
    severity: ClassVar[Severity] = Severity.WARNING
    MESSAGE: ClassVar[str] = "run_fn swallows a broad exception and carries on"
    HAZARD: ClassVar[str] = "except Exception / except BaseException that logs and carries on"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import logging


def _evaluate(model, ds):
    try:
        return model.evaluate(ds)
    except Exception:
        logging.exception("evaluation failed")
        raise


def run_fn(fn_args):
    try:
        import scann  # noqa: F401
    except ImportError:
        logging.warning("ScaNN not installed; using brute force")
    return _evaluate(None, None)
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import contextlib
import logging


def _test_metrics(model, ds):
    try:
        return model.evaluate(ds, return_dict=True)
    except Exception as e:  # <-
        logging.warning("test evaluation failed: %s", e)
        return {}


def run_fn(fn_args):
    metrics = _test_metrics(None, None)
    with contextlib.suppress(Exception):  # <-
        metrics.update(recall=0.0)
    try:
        print(metrics)
    except:  # <-
        pass
''',
    )

    def finish(self) -> None:
        sf = self.file
        assert sf is not None
        functions = sf.top_level_functions()
        roots = [functions[name] for name in _ENTRY_POINTS if name in functions]
        if not roots:
            return
        # Module-level functions reachable from run_fn through calls by name; each is walked
        # once, collecting its calls, handlers and with-items.
        reachable: set[cst.FunctionDef] = set()
        handlers: list[cst.ExceptHandler] = []
        with_items: list[cst.WithItem] = []
        todo = list(roots)
        while todo:
            fn = todo.pop()
            if fn in reachable:
                continue
            reachable.add(fn)
            for node in walk(fn.body):
                if isinstance(node, cst.Call):
                    if isinstance(node.func, cst.Name) and node.func.value in functions:
                        todo.append(functions[node.func.value])
                elif isinstance(node, cst.ExceptHandler):
                    handlers.append(node)
                elif isinstance(node, cst.WithItem):
                    with_items.append(node)
        for handler in handlers:
            if self._swallows(handler):
                self.report(
                    handler,
                    f"`{self._caught(handler)}` caught and not re-raised in code run_fn runs: "
                    "the failure becomes a log line and the job still succeeds; catch the "
                    "specific exception, or re-raise",
                )
        for item in with_items:
            call = item.item
            if (
                isinstance(call, cst.Call)
                and sf.qualname(call.func) == "contextlib.suppress"
                and any(self._is_broad(a.value) for a in call.args)
            ):
                self.report(
                    item,
                    "contextlib.suppress of a broad exception in code run_fn runs: failures "
                    "vanish silently; suppress the specific exception",
                )

    def _is_broad(self, expr: cst.BaseExpression | None) -> bool:
        if expr is None:
            return True
        if isinstance(expr, cst.Tuple):
            return any(self._is_broad(e.value) for e in expr.elements)
        assert self.file is not None
        name = self.file.qualname(expr) or dotted_name(expr) or ""
        return name in _BROAD

    def _caught(self, handler: cst.ExceptHandler) -> str:
        assert self.file is not None
        if handler.type is None:
            return "except:"
        return f"except {self.file.code(handler.type)}"

    def _swallows(self, handler: cst.ExceptHandler) -> bool:
        if not self._is_broad(handler.type):
            return False
        sf = self.file
        assert sf is not None
        for node in _walk_handler(handler):
            if isinstance(node, cst.Raise):
                return False
            if isinstance(node, cst.Call) and sf.qualname(node.func) in _EXITS:
                return False
        return True


def _walk_handler(handler: cst.ExceptHandler) -> list[cst.CSTNode]:
    """Nodes of the handler body, not descending into nested functions."""
    out: list[cst.CSTNode] = []
    stack: list[cst.CSTNode] = [handler.body]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, cst.FunctionDef | cst.Lambda | cst.ClassDef):
            continue
        stack.extend(iter_children(node))
    return out
