"""Flattening resolved configs and finding what a sweep varied."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from compiler.ledger import Experiment

_MISSING = object()


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested config data into dotted keys.

    Lists of scalars (``layers: [128, 64, 32]``) stay one value: they are read as a whole.
    Lists of objects that all carry a distinct ``name`` (the feature lists) are keyed by that
    name, ``buyer[customer_id].embedding.dim``, so inserting a feature does not make every
    later index look changed; other lists of objects are keyed by index, ``crosses.buyer[0]``.
    """
    out: dict[str, Any] = {}
    if isinstance(config, Mapping):
        if not config and prefix:
            out[prefix] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(config, Sequence) and not isinstance(config, str) and _has_objects(config):
        names = [item.get("name") if isinstance(item, Mapping) else None for item in config]
        by_name = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        for index, item in enumerate(config):
            if by_name:  # the name is in the key; repeating it as a leaf adds nothing
                rest = {k: v for k, v in item.items() if k != "name"}
                out.update(flatten(rest, f"{prefix}[{names[index]}]"))
            else:
                out.update(flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix] = config
    return out


def _has_objects(items: Sequence[Any]) -> bool:
    return any(isinstance(item, (Mapping, list)) for item in items)


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every key whose values differ.

    A key present on one side only has ``MISSING`` on the other (see ``is_missing``).
    """
    flat_a, flat_b = flatten(a), flatten(b)
    keys = list(flat_a) + [k for k in flat_b if k not in flat_a]
    return [
        (k, flat_a.get(k, _MISSING), flat_b.get(k, _MISSING))
        for k in keys
        if flat_a.get(k, _MISSING) != flat_b.get(k, _MISSING)
    ]


def is_missing(value: Any) -> bool:
    return value is _MISSING


def format_value(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse_override(override: str) -> tuple[str, Any] | None:
    """``"model.learning_rate=0.01"`` -> ``("model.learning_rate", 0.01)`` (Hydra syntax).

    ``+key=v`` / ``++key=v`` (add / force-add) read like ``key=v``; ``~key`` (delete) gives
    ``(key, None)``; anything without ``=`` is not a parameter setting.
    """
    text = override.strip()
    if text.startswith("~"):
        return text[1:].split("=", 1)[0].strip(), None
    text = text.lstrip("+")
    if "=" not in text:
        return None
    key, raw = text.split("=", 1)
    return key.strip(), parse_scalar(raw.strip())


def parse_scalar(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def swept_parameters(experiments: Sequence[Experiment]) -> dict[str, dict[int, Any]]:
    """The override keys whose value differs between ``experiments``: key -> {number: value}.

    A run's value is read from its resolved config (so a run that did not override a key still
    shows the default it ran with); a config-group choice (``model=ranking_v1``) resolves to a
    whole section, which is shown by its ``name`` or, failing that, the override's text.
    """
    keys: list[str] = []
    literal: dict[tuple[int, str], Any] = {}
    for exp in experiments:
        for override in exp.overrides:
            parsed = parse_override(override)
            if parsed is None:
                continue
            key, value = parsed
            literal[(exp.number, key)] = value
            if key not in keys:
                keys.append(key)
    swept: dict[str, dict[int, Any]] = {}
    for key in keys:
        values: dict[int, Any] = {}
        for exp in experiments:
            value = _lookup(exp.resolved_config, key)
            if isinstance(value, Mapping):
                value = value.get("name", literal.get((exp.number, key), _MISSING))
            elif value is _MISSING:
                value = literal.get((exp.number, key), _MISSING)
            if value is not _MISSING and not isinstance(value, (Mapping, list)):
                values[exp.number] = value
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            swept[key] = values
    return swept


def _lookup(config: Any, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


#: Provenance rows ``runs show`` and ``runs compare`` report, beside the stored config.
PROVENANCE_KEYS = (
    "effective epochs",
    "effective batch size",
    "data hash",
    "source digest",
    "compiler version",
)


def provenance(exp: Experiment) -> dict[str, Any]:
    """What the record says, beyond its config, about what ran (``None``: not recorded)."""
    effective = exp.effective or {}
    return {
        "effective epochs": effective.get("epochs"),
        "effective batch size": effective.get("batch_size"),
        "data hash": exp.data_hash,
        "source digest": exp.source_digest,
        "compiler version": exp.compiler_version,
    }


def provenance_diff(a: Experiment, b: Experiment) -> list[tuple[str, Any, Any]]:
    """``(label, value in a, value in b)`` for every provenance row that differs."""
    left, right = provenance(a), provenance(b)
    return [(key, left[key], right[key]) for key in PROVENANCE_KEYS if left[key] != right[key]]


def has_provenance(exp: Experiment) -> bool:
    """False for records written before the ledger stored data, run settings and source."""
    return exp.compiler_version is not None


def effective_note(exp: Experiment, name: str = "epochs") -> str | None:
    """``"2 (run.epochs; model.epochs says 20)"`` when ``run.*`` overrode the model's value."""
    effective = exp.effective or {}
    source = effective.get(f"{name}_from")
    if effective.get(name) is None or source is None or source == f"model.{name}":
        return None
    configured = _lookup(exp.resolved_config, f"model.{name}")
    said = "" if configured is _MISSING else f"; model.{name} says {format_value(configured)}"
    return f"{format_value(effective[name])} (from {source}{said})"
