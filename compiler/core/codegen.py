"""Module text from a built libcst tree, remembering the text of statements built before.

libcst writes a tree out node by node in Python (``Module.code``): for the ~900 lines a compile
emits, about half of a warm compile. Most of a build's nodes are the same objects in every
compile of a process (``compiler.fragments.statements`` keeps each filled template, and libcst
nodes are immutable), but the top-level statements around them are new objects each time (the
builder spaces and fills them). So ``module_code`` keys each top-level statement by its
structure, stopping at nodes it has written out before (an object seen before has the same
code, since nodes are immutable; they are kept alive here, so an id stays theirs), and writes
out with libcst only statements whose key it has not met.

The text is what ``Module.code`` gives: the module's header lines, then each top-level
statement written out on its own (at the top level a statement's code does not depend on its
neighbours), for modules that end with a newline and have no footer (every built module);
any other module is written out by libcst directly. ``tests/test_compile_cache.py`` checks both
give the same text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import libcst as cst

from compiler.passes.source import walk

#: id -> node of every node written out so far (the reference keeps the id the node's own).
_SEEN: dict[int, cst.CSTNode] = {}
#: (structure key, indent, newline) -> code of a top-level statement.
_TEXTS: dict[tuple[Any, ...], str] = {}
#: Start again past this many remembered nodes (a long sweep of very different configs).
_SEEN_MAX = 500_000
_FIELDS: dict[type, tuple[str, ...]] = {}
_armed = False


def module_codes(modules: Mapping[str, cst.Module]) -> dict[str, str]:
    """``{name: module.code}``. The first call in a process writes out with libcst alone (a
    one-compile command gains nothing from remembering); later calls remember and reuse."""
    global _armed
    if not _armed:
        _armed = True
        return {name: module.code for name, module in modules.items()}
    return {name: module_code(module) for name, module in modules.items()}


def module_code(module: cst.Module) -> str:
    """``module.code``, reusing the code of statements met in earlier calls."""
    if module.footer or not module.has_trailing_newline:
        return module.code
    if len(_SEEN) > _SEEN_MAX:
        clear()
    parts = [module.code_for_node(line) for line in module.header]
    for statement in module.body:
        key = (_key(statement), module.default_indent, module.default_newline)
        text = _TEXTS.get(key)
        if text is None:
            text = _TEXTS[key] = module.code_for_node(statement)
            for node in walk(statement):
                _SEEN[id(node)] = node
        parts.append(text)
    return "".join(parts)


def clear() -> None:
    _SEEN.clear()
    _TEXTS.clear()


def _key(node: cst.CSTNode) -> tuple[Any, ...]:
    if _SEEN.get(id(node)) is node:
        return ("seen", id(node))
    tp = type(node)
    names = _FIELDS.get(tp)
    if names is None:
        names = _FIELDS[tp] = tuple(field.name for field in dataclasses.fields(node))
    return (tp, *(_value_key(getattr(node, name)) for name in names))


def _value_key(value: Any) -> Any:
    tp = type(value)
    if tp is tuple or tp is list:
        return tuple(_value_key(item) for item in value)
    if isinstance(value, cst.CSTNode):
        return _key(value)
    # The type too: True == 1, but they are not written out alike.
    return (tp, value)
