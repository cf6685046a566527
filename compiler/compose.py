"""Stage 1 — compose: Hydra config groups + overrides -> one ``DictConfig``.

Hydra and OmegaConf report problems as exceptions written for their own developers; this stage
turns each into a ``ConfigError`` that names the config key, says what was expected, and
suggests the closest valid name.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException, ValidationError

from compiler import schema
from compiler.errors import ConfigError, did_you_mean

#: Hydra's behaviour set: pinned so an upgrade cannot silently change composition.
VERSION_BASE = "1.3"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"


def compose(
    overrides: Sequence[str] = (),
    *,
    config_dir: Path | str | None = None,
    config_name: str = "config",
) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (``["model=ranking_v1", ...]``)."""
    conf_dir = Path(config_dir or CONF_DIR).resolve()
    try:
        _ensure_initialized(conf_dir)
        groups, values = _split_overrides(overrides)
        base = _compose_groups(conf_dir, config_name, tuple(groups))
        if not values:
            return copy.deepcopy(base)
        return _apply_values(base, values)
    except (HydraException, OmegaConfBaseException) as error:
        raise translate_error(error, overrides, conf_dir) from None


# A sweep composes the same group selection (model=..., features=...) with many value
# overrides (model.learning_rate=...). Hydra re-reads every file per compose; here the group
# selection is composed once and each point applies its value overrides with Hydra's own
# override logic, which gives the same config (tests/test_compose.py checks).
_ROOT_VALUE_KEYS = ("output_dir", "sweep_dir", "dry_run", "ledger", "objective")


def _split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[Any]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups: list[str] = []
    values: list[Any] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        is_value = ("." in key or key in _ROOT_VALUE_KEYS) and not override.is_hydra_override()
        if is_value and override.package is None and not override.is_sweep_override():
            values.append(override)
        else:
            groups.append(override.input_line)
    return groups, values


@functools.lru_cache(maxsize=64)
def _compose_groups(conf_dir: Path, config_name: str, groups: tuple[str, ...]) -> DictConfig:
    del conf_dir  # part of the cache key only: Hydra is initialized for it
    return hydra_compose(config_name, overrides=list(groups))


def _apply_values(base: DictConfig, values: list[Any]) -> DictConfig:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg


_initialized_dir: Path | None = None


def release() -> None:
    """Give Hydra's global state back (before ``hydra.main`` initializes it itself)."""
    global _initialized_dir
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    _initialized_dir = None
    _compose_groups.cache_clear()


def _ensure_initialized(conf_dir: Path) -> None:
    """Initialize Hydra for ``conf_dir`` once and keep it: a sweep composes hundreds of
    points, and initializing (search path, config repository) costs more than composing."""
    global _initialized_dir
    hydra = GlobalHydra.instance()
    if hydra.is_initialized() and _initialized_dir == conf_dir:
        return
    if hydra.is_initialized():
        hydra.clear()
    _compose_groups.cache_clear()
    schema.register_configs()
    initialize_config_dir(version_base=VERSION_BASE, config_dir=str(conf_dir),
                          job_name="recforge")
    _initialized_dir = conf_dir


# --------------------------------------------------------------------------- error translation

_FILE_ERROR = re.compile(
    r"In '(?P<file>[^']+)': \w+ raised while composing config:\n(?P<msg>.*?)\n\s+full_key: "
    r"(?P<key>\S+)(?:.*?object_type=(?P<type>\w+))?",
    re.S,
)
_MISSING_OPTION = re.compile(r"Could not find '(?P<group>[\w/]+)/(?P<option>[^']+)'")


def translate_error(
    error: Exception, overrides: Sequence[str], conf_dir: Path
) -> ConfigError:
    """Map a Hydra/OmegaConf composition error onto a ``ConfigError`` naming the key."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else None
    if isinstance(error, OmegaConfBaseException):
        cause = error
    if cause is not None and getattr(cause, "full_key", None):
        key = str(cause.full_key)
        location = _override_for(key, overrides)
        return _from_omegaconf(cause, key, getattr(cause, "object_type", None), location)

    text = str(error)
    if isinstance(error, MissingConfigException) and (m := _MISSING_OPTION.search(text)):
        group, option = m["group"], m["option"]
        options = _group_options(conf_dir, group)
        return ConfigError(
            group.replace("/", "."),
            f"no config '{option}' in conf/{group}/ (available: {', '.join(options) or 'none'})",
            suggestion=did_you_mean(option, options),
        )
    if m := _FILE_ERROR.search(text):
        key, object_type = m["key"], _schema_class(m["type"])
        location = _locate_in_file(conf_dir / f"{m['file']}.yaml", key)
        problem = m["msg"].strip()
        if problem.startswith("Key '") and "not in" in problem:
            return _unknown_key(key, object_type, location)
        return ConfigError(key, _rephrase(problem), location=location)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return ConfigError("overrides", first_line)


def _from_omegaconf(
    cause: OmegaConfBaseException, key: str, object_type: type | None, location: str | None
) -> ConfigError:
    msg = str(getattr(cause, "msg", cause)).strip()
    if isinstance(cause, ValidationError):
        enum_match = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", msg)
        if enum_match:
            value, choices = enum_match[1], [c.strip() for c in enum_match[2].split(",")]
            return ConfigError(
                key,
                f"expected one of {', '.join(choices)}, got '{value}'",
                suggestion=did_you_mean(value, choices),
                location=location,
            )
        return ConfigError(key, _rephrase(msg), location=location)
    if msg.startswith("Key '") and ("not in" in msg or "is not in struct" in msg):
        return _unknown_key(key, object_type, location)
    return ConfigError(key, _rephrase(msg), location=location)


def _unknown_key(key: str, object_type: type | None, location: str | None) -> ConfigError:
    leaf = re.split(r"[.\[]", key)[-1]
    known = _field_names(object_type)
    where = f" of {object_type.__name__}" if object_type else ""
    return ConfigError(
        key,
        f"unknown key '{leaf}'{where}"
        + (f" (expected one of: {', '.join(known)})" if known else ""),
        suggestion=did_you_mean(leaf, known),
        location=location,
    )


_CONVERT = re.compile(r"Value '(?P<value>.*)' of type '(?P<got>\w+)' could not be converted to "
                      r"(?P<want>\w+)")


def _rephrase(msg: str) -> str:
    if m := _CONVERT.search(msg):
        return f"expected {m['want'].lower()}, got '{m['value']}' ({m['got']})"
    return msg.splitlines()[0]


def _field_names(object_type: type | None) -> list[str]:
    if object_type is not None and dataclasses.is_dataclass(object_type):
        return [f.name for f in dataclasses.fields(object_type)]
    return []


def _schema_class(name: str | None) -> type | None:
    candidate = getattr(schema, name, None) if name else None
    return candidate if isinstance(candidate, type) and not issubclass(candidate, Enum) else None


def _override_for(key: str, overrides: Sequence[str]) -> str | None:
    for override in overrides:
        target = override.lstrip("+~").split("=", 1)[0]
        if target == key or key.startswith(target + ".") or _dotted(key) == target:
            return f"override '{override}'"
    return None


def _dotted(key: str) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _locate_in_file(path: Path, key: str) -> str | None:
    """``conf/model/x.yaml:7`` for the line that sets ``key``'s last component, when found."""
    leaf = re.split(r"[.\[]", key)[-1]
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    pattern = re.compile(rf"^\s*-?\s*{re.escape(leaf)}\s*:")
    for number, line in enumerate(lines, start=1):
        if pattern.match(line):
            return f"{_relative(path)}:{number}"
    return _relative(path)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _group_options(conf_dir: Path, group: str) -> list[str]:
    folder = conf_dir / group
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return [n for n in names if not n.endswith("_schema")]
