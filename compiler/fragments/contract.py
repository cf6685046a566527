"""The provide/require contract between fragments, checked before any code is built.

Fragments meet through named values (``target_key``, ``candidates``, ``index`` …, listed with
what they stand for in ``compiler.model.VALUES``) and through named ``run_fn`` slots
(``compiler.model.RUN_FN_SLOTS``). Each fragment class declares, as class attributes:

* ``provides``: the values it defines; ``requires``: the values it uses, which another
  selected fragment must provide. ``{role}`` in a name is the use's role (a tower of role
  ``buyer`` declaring ``{role}_tower`` provides ``buyer_tower``).
* ``slots``: the ``run_fn`` slots it opens (the trainer skeleton); ``fills``: the slots it adds
  code to. A fragment may instead define ``declare(use, config) -> dict`` (a classmethod) when
  what it uses depends on the config (the serving export needs ``index`` only with retrieval).

``check_contract`` runs at the start of the build: a value nobody provides, a value two
fragments provide, a slot nobody opens is a ``PluginError`` naming the fragments (and a
registered but unselected fragment that would provide the value). This module imports no
other part of the fragment API, so both the registry and the build can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from compiler.errors import PluginError
from compiler.model import RUN_FN_SLOTS, FragmentUse, ResolvedConfig

#: The declaration attributes of a fragment class, in the order messages list them.
FIELDS = ("provides", "requires", "slots", "fills")
#: A declared name: an identifier, optionally with ``{role}`` in it.
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\{k\}[a-z0-9_]*)*$")
DECLARED_NAME = re.compile(r"^(?:[A-Za-z_]|\{role\})(?:[A-Za-z0-9_]|\{role\})*$")


@dataclass(frozen=True)
class Declared:
    """What one fragment use provides, requires, opens and fills (``{role}`` filled in)."""

    provides: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    slots: tuple[str, ...] = ()
    fills: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selected:
    """A fragment use with its class and who provides it, as the check sees it."""

    use: FragmentUse
    cls: type
    label: str  # "evaluator/ndcg (recforge-dcn 0.1.0)"


def declaration_problem(cls: Any) -> str | None:
    """What is malformed in a fragment class's declarations, or None."""
    for attribute in FIELDS:
        value = getattr(cls, attribute, ())
        if isinstance(value, str) or not isinstance(value, Sequence) \
                or not all(isinstance(item, str) for item in value):
            return (f"{cls.__qualname__}.{attribute} must be a tuple of names, got "
                    f"{value!r}")
        bad = next((item for item in value if not DECLARED_NAME.match(item)), None)
        if bad is not None:
            return f"{cls.__qualname__}.{attribute}: expected identifiers, got {bad!r}"
    for attribute in ("slots", "fills"):
        unknown = [s for s in getattr(cls, attribute, ()) if s not in RUN_FN_SLOTS]
        if unknown:
            return (f"{cls.__qualname__}.{attribute}: expected run_fn slots "
                    f"({', '.join(RUN_FN_SLOTS)}), got {unknown[0]!r}")
    writes = getattr(cls, "writes", ())
    if isinstance(writes, str) or not isinstance(writes, Sequence) or not all(
            isinstance(item, str) and METRIC_NAME.match(item) for item in writes):
        return (f"{cls.__qualname__}.writes must be a tuple of metric names ({{k}}: each K), "
                f"got {writes!r}")
    declare = getattr(cls, "declare", None)
    if declare is not None and not callable(declare):
        return f"{cls.__qualname__}.declare must be a classmethod (use, config) -> dict"
    return None


def declarations(cls: Any, use: FragmentUse, config: ResolvedConfig) -> Declared:
    """The declarations of one use of ``cls``."""
    declared: Mapping[str, Iterable[str]]
    if callable(getattr(cls, "declare", None)):
        declared = cls.declare(use, config)
    else:
        declared = {attribute: getattr(cls, attribute, ()) for attribute in FIELDS}
    role = use.role or ""
    return Declared(**{
        attribute: tuple(name.replace("{role}", role) for name in declared.get(attribute, ()))
        for attribute in FIELDS
    })


def check_contract(selected: Sequence[Selected], config: ResolvedConfig,
                   candidates: Iterable[tuple[type, str]] = ()) -> dict[int, Declared]:
    """Check the declarations of the selected fragments against each other.

    ``candidates`` are all registered ``(class, "kind 'name' (distribution)")`` pairs: where
    nothing selected provides a value, the message names the ones that would. Returns each
    use's declarations by its position in ``selected``.
    """
    declared = {position: declarations(s.cls, s.use, config)
                for position, s in enumerate(selected)}
    providers: dict[str, int] = {}
    openers: dict[str, int] = {}
    for position, item in declared.items():
        for value in item.provides:
            if value in providers:
                first = selected[providers[value]].label
                raise PluginError(
                    f"{value!r} is provided by two selected fragments: {first} and "
                    f"{selected[position].label}; select only one of them"
                )
            providers[value] = position
        for slot in item.slots:
            if slot in openers:
                raise PluginError(f"run_fn slot {slot!r} is opened by two selected fragments: "
                                  f"{selected[openers[slot]].label} and "
                                  f"{selected[position].label}")
            openers[slot] = position
    for position, item in declared.items():
        needer = selected[position]
        for value in item.requires:
            provider = providers.get(value)
            if provider is None:
                raise PluginError(
                    f"{needer.label} requires {value!r}, which no selected fragment provides"
                    + _would_provide(value, candidates)
                )
            if selected[provider].cls.target != needer.cls.target:
                raise PluginError(
                    f"{needer.label} requires {value!r} in {needer.cls.target}, but "
                    f"{selected[provider].label} provides it in {selected[provider].cls.target}"
                )
        for slot in item.fills:
            if slot not in openers:
                raise PluginError(f"{needer.label} adds code to run_fn slot {slot!r}, which no "
                                  "selected fragment opens (the trainer skeleton opens "
                                  f"{', '.join(RUN_FN_SLOTS)})")
    return declared


def written_metrics(selected: Iterable[tuple[FragmentUse, type]], config: ResolvedConfig,
                    with_eval: bool = True) -> list[str]:
    """The final metric names the selected fragments declare they write (``writes``), in plan
    order: ``{k}`` expanded for each of ``model.top_k``, ``val_*`` only ``with_eval``."""
    names: list[str] = []
    for _, cls in selected:
        for pattern in getattr(cls, "writes", ()):
            if pattern.startswith("val_") and not with_eval:
                continue
            expanded = [pattern.replace("{k}", str(k)) for k in config.model.top_k] \
                if "{k}" in pattern else [pattern]
            names += [name for name in expanded if name not in names]
    return names


def _would_provide(value: str, candidates: Iterable[tuple[type, str]]) -> str:
    """``; evaluator 'recall_at_k' (recforge) provides it but is not selected`` or ''."""
    names = []
    for cls, label in candidates:
        for declared in getattr(cls, "provides", ()):
            pattern = "^" + re.escape(declared).replace(re.escape("{role}"), "[a-z_]+") + "$"
            if re.match(pattern, value):
                names.append(label)
                break
    if not names:
        return ""
    verb = "provides" if len(names) == 1 else "provide"
    return f"; {', '.join(names)} {verb} it but {'is' if len(names) == 1 else 'are'} not selected"
