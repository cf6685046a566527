"""What a ledger record holds beside the code's config hash: everything that can change a result.

- ``record_config(cfg, resolved)``: the stored config -- ``model`` and ``features`` (validated),
  ``data``, ``run`` and ``submit`` as composed, and the sweep ``objective``. In those three
  groups, values whose key looks like a secret and passwords inside URLs become ``***``.
- ``compiler_version()`` and ``source_digest()``: which recforge compiled it. The digest is a
  sha256 over the sorted relative paths and texts of ``compiler/**/*.py`` and
  ``plugins/**/*.py``, computed once per process (about 90 files).
- ``seeds(config)`` and ``effective_settings(config)``: the seeds, and the epochs and batch
  size the trainer is given (``run.epochs`` / ``run.batch_size`` override the model's).

Never imports TensorFlow; imports OmegaConf only to read a composed config.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import compiler
from compiler import __version__

#: Config groups stored beside ``model`` and ``features`` (which the config hash covers).
RECORDED_GROUPS = ("data", "run", "submit")
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|api[_-]?key)", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]+):[^@/\s]+@")
REDACTED = "***"


def compiler_version() -> str:
    return __version__


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over recforge's own Python sources (``compiler/`` and ``plugins/``), sorted by
    path: two runs with the same digest ran the same compiler and fragments."""
    # lazy: the built-in plugins import compiler's APIs; reached at call time, after both load
    import plugins

    digest = hashlib.sha256()
    for package in (compiler, plugins):
        root = Path(package.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root).as_posix()}".encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def record_config(cfg: Any, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The config a ledger record stores: ``resolved`` (model and features, as validated) plus
    the composed ``data``, ``run`` and ``submit`` groups (``None`` when not selected) and the
    ``objective``. ``cfg`` is the composed ``DictConfig`` (or a plain mapping)."""
    stored: dict[str, Any] = dict(resolved)
    for group in RECORDED_GROUPS:
        # Only these groups can carry credentials (a source URL, a custom_config entry); the
        # model and feature configs are identifiers and numbers the emitted code is built from.
        stored[group] = redact(_plain(_get(cfg, group)))
    objective = _get(cfg, "objective")
    if objective is not None:
        stored["objective"] = str(objective)
    return stored


def seeds(config: Mapping[str, Any]) -> dict[str, Any]:
    """The random seeds of a stored config: ``model.seed`` and ``data.split.seed``."""
    found = {"model.seed": _dig(config, "model", "seed"),
             "data.split.seed": _dig(config, "data", "split", "seed")}
    return {key: value for key, value in found.items() if value is not None}


def effective_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The epochs and batch size the trainer gets, with where each value came from: a local
    run's ``run.*`` or a submission's ``submit.custom_config.*`` (both reach the trainer as
    ``fn_args.custom_config``) when set, else the model's."""
    settings: dict[str, Any] = {}
    for name in ("epochs", "batch_size"):
        for source in (("run", name), ("submit", "custom_config", name)):
            override = _dig(config, *source)
            if override is not None:
                settings[name] = override
                settings[f"{name}_from"] = ".".join(source)
                break
        else:
            if _dig(config, "model", name) is None:
                continue
            settings[name] = _dig(config, "model", name)
            settings[f"{name}_from"] = f"model.{name}"
    return settings


def redact(value: Any, key: str = "") -> Any:
    """A copy with secret-looking keys' values and URL passwords replaced by ``***``."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if value is not None and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", value)
    return value


def _get(cfg: Any, key: str) -> Any:
    getter = getattr(cfg, "get", None)
    return getter(key) if callable(getter) else None


def _plain(node: Any) -> Any:
    if node is None or not type(node).__module__.startswith("omegaconf"):
        return node

    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def _dig(config: Any, *keys: str) -> Any:
    node = config
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def record_fields(cfg: Any, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """``Ledger.record_compile`` keyword arguments for a composed config: the stored config
    and its provenance (compiler version, source digest, seeds, effective settings)."""
    stored = record_config(cfg, resolved)
    return {
        "resolved_config": stored,
        "compiler_version": compiler_version(),
        "source_digest": source_digest(),
        "seeds": seeds(stored),
        "effective": effective_settings(stored),
    }
