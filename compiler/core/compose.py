"""Stage 1 — compose: Hydra config groups + overrides -> one ``DictConfig``.

Hydra and OmegaConf report problems as exceptions written for their own developers; this stage
turns each into a ``ConfigError`` that names the config key, says what was expected, and
suggests the closest valid name.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
import re
import typing
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationKeyError,
    OmegaConfBaseException,
    ValidationError,
)
from omegaconf.nodes import BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode

from compiler import schema
from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.dataflow import DataflowTransformConfig
from compiler.core.disk_cache import cached_composition
from compiler.data.schema import DataConfig
from compiler.errors import ConfigError, did_you_mean
from compiler.schema import FeaturesConfig, LocalRunConfig, ModelConfig

#: Hydra's behaviour set: pinned so an upgrade cannot silently change composition.
VERSION_BASE = "1.3"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


def compose(
    overrides: Sequence[str] = (),
    *,
    config_dir: Path | str | None = None,
    config_name: str = "config",
    with_hydra: bool = False,
) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (``["model=ranking_v1", ...]``).

    ``with_hydra``: keep the ``hydra`` node (sweeper, launcher), as ``hydra.main`` sees it.
    Every composition problem is raised as one ``ConfigError``: unknown keys and options,
    wrong types, YAML syntax (``file:line:col``), non-UTF-8 files and override grammar.
    """
    conf_dir = Path(config_dir or CONF_DIR).resolve()
    try:
        if with_hydra:
            _ensure_initialized(conf_dir)
            return hydra_compose(config_name, overrides=list(overrides),
                                 return_hydra_config=True)
        groups, values = _split_overrides(overrides)
        base = _fresh_copy(_compose_groups(conf_dir, config_name, tuple(groups)))
        return _apply_values(base, values) if values else base
    except (HydraException, OmegaConfBaseException) as error:
        raise translate_error(error, overrides, conf_dir) from None
    except yaml.YAMLError as error:
        raise yaml_error(error) from None
    except UnicodeDecodeError as error:
        raise encoding_error(error, conf_dir) from None


# A sweep composes the same group selection (model=..., features=...) with many value
# overrides (model.learning_rate=...). Hydra re-reads every file per compose; here the group
# selection is composed once and each point applies its value overrides with Hydra's own
# override logic, which gives the same config (tests/test_compose.py checks).
_ROOT_VALUE_KEYS = ("output_dir", "sweep_dir", "dry_run", "ledger", "objective")


def _split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[Any]]:
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
def _compose_groups(conf_dir: Path, config_name: str, groups: tuple[str, ...]) -> bytes:
    """The group selection composed by Hydra, pickled: each compose unpickles its own copy,
    about ten times faster than ``copy.deepcopy`` of the ``DictConfig`` (OmegaConf pickles
    nodes, flags and structured types alike, so the copy is the same config). Kept on disk
    between commands too (``disk_cache``); Hydra is initialized only when it composes."""

    def with_hydra() -> bytes:
        _ensure_initialized(conf_dir)
        return pickle.dumps(hydra_compose(config_name, overrides=list(groups)),
                            protocol=pickle.HIGHEST_PROTOCOL)

    return cached_composition(conf_dir, config_name, groups, with_hydra)


def _fresh_copy(composed: bytes) -> DictConfig:
    return pickle.loads(composed)  # noqa: S301 - bytes this process pickled itself, above


def _apply_values(cfg: DictConfig, values: list[Any]) -> DictConfig:
    """Apply value overrides to ``cfg`` (a fresh copy, changed in place)."""
    for override in values:
        if override.value() is not None:
            _give_null_groups_their_defaults(cfg, override.key_or_group)
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg


def _give_null_groups_their_defaults(cfg: DictConfig, key: str) -> None:
    """An override under an optional group that is null (``model.purchase_history.date=day``,
    ``model.early_stopping={patience: 2}``) first gives the group its schema's defaults:
    OmegaConf cannot merge into None, and the user asked for the group to be on."""
    parts = key.split(".")
    if len(parts) < 2:
        return  # root keys (output_dir, ledger, ...) are values, never groups
    for depth in range(1, len(parts) + 1):
        child = OmegaConf.select(cfg, ".".join(parts[:depth]), throw_on_missing=False,
                                 throw_on_resolution_failure=False)
        if isinstance(child, DictConfig):
            continue
        if child is not None:
            return
        parent = OmegaConf.select(cfg, ".".join(parts[:depth - 1])) if depth > 1 else cfg
        if not isinstance(parent, DictConfig) or parts[depth - 1] not in parent:
            return  # not a null group: a new key, which Hydra's own rules handle
        node = parent._get_node(parts[depth - 1])
        declared = getattr(getattr(node, "_metadata", None), "ref_type", None)
        schema = next((t for t in (*typing.get_args(declared), declared)
                       if dataclasses.is_dataclass(t)), None)
        if schema is None:
            return
        parent[parts[depth - 1]] = OmegaConf.structured(schema)


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
    register_configs()
    initialize_config_dir(version_base=VERSION_BASE, config_dir=str(conf_dir),
                          job_name="recforge")
    _initialized_dir = conf_dir


# --------------------------------------------------------------------------- error translation
# Read from the exceptions' attributes: OmegaConf's ``full_key``, ``key``, ``value``,
# ``object_type``, ``ref_type``, ``child_node`` and ``parent_node``, Hydra's
# ``OverrideParseException.override``/``message`` and ``MissingConfigException.
# missing_cfg_file``/``options``. Two things Hydra puts only in its message text are parsed
# from it: the file a merge failed in (``In 'model/x': ...``) and the target of an override the
# defaults list never used (``Could not override 'x'``).

_MERGING_FILE = re.compile(r"^In '(?P<file>[^']+)': \w+ raised while composing config:")
_NO_OVERRIDE = re.compile(r"Could not override '(?P<target>[^']+)'")


def translate_error(
    error: Exception, overrides: Sequence[str], conf_dir: Path
) -> ConfigError:
    """Map a Hydra/OmegaConf composition error onto a ``ConfigError`` naming the key."""
    if isinstance(error, OverrideParseException):
        return _grammar_error(error, overrides)
    if isinstance(error, MissingConfigException) and "/" in (error.missing_cfg_file or ""):
        return _missing_option(error, conf_dir)
    cause = _omegaconf_cause(error)
    if cause is not None and cause.full_key:
        key = str(cause.full_key)
        merging = _MERGING_FILE.match(str(error)) if cause is not error else None
        if merging:  # a value in a YAML file: point at its line
            location = _locate_in_file(conf_dir / f"{merging['file']}.yaml", key)
        else:
            location = _override_for(key, overrides)
        root = key == str(cause.key) and _schema_type(cause.object_type) is None
        if _is_missing_key(cause) and root and not merging:
            return _unknown_root_name(key, overrides, conf_dir, location)
        return _from_omegaconf(cause, key, location)
    text = str(error)
    if isinstance(error, ConfigCompositionException) and (m := _NO_OVERRIDE.match(text)):
        return _unknown_override(m["target"], overrides, conf_dir)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return ConfigError("overrides", first_line)


def _omegaconf_cause(error: BaseException) -> OmegaConfBaseException | None:
    """The OmegaConf error behind ``error``: itself, the one Hydra raised it ``from``, or (a
    merge of a config file, which Hydra re-raises without ``from``) the one it was handling."""
    for candidate in (error, error.__cause__, error.__context__):
        if isinstance(candidate, OmegaConfBaseException):
            return candidate
    return None


def _is_missing_key(cause: OmegaConfBaseException) -> bool:
    return isinstance(cause, (ConfigAttributeError, ConfigKeyError))


def _missing_option(error: MissingConfigException, conf_dir: Path) -> ConfigError:
    """``model=hybird_v1``: an option its group does not have."""
    group, option = str(error.missing_cfg_file).rsplit("/", 1)
    options = [o for o in (error.options or _group_options(conf_dir, group))
               if not o.endswith("_schema")]
    where = f"conf/{group}/" if (conf_dir / group).is_dir() else f"Hydra's {group}"
    return ConfigError(
        group.replace("/", ".") if not group.startswith("hydra/") else group,
        f"expected one of {', '.join(options) or 'no options'} ({where}), got '{option}'",
        suggestion=did_you_mean(option, options),
    )


def _unknown_root_name(key: str, overrides: Sequence[str], conf_dir: Path,
                       location: str | None) -> ConfigError:
    """A root name the config lacks: not a group or key at all, or a group nothing selected
    (``run.epochs=2`` without ``run=local``)."""
    known = _root_names(conf_dir)
    options = _group_options(conf_dir, key)
    under = next((o for o in overrides if o.lstrip("+~").startswith(key + ".")), None)
    if options and under is not None:
        return ConfigError(
            key, f"expected an option of group '{key}' selected ({key}=<{'|'.join(options)}>) "
                 f"before its keys are set, got override '{under}' with none selected")
    return ConfigError(key, f"expected a config group or key ({', '.join(known)}), got '{key}'",
                       suggestion=did_you_mean(key, known), location=location)


def _grammar_error(error: OverrideParseException, overrides: Sequence[str]) -> ConfigError:
    """An override Hydra's grammar cannot parse: name it, say what the grammar expected."""
    override = error.override or next(iter(overrides), "")
    reason = str(error.message).strip().splitlines()[0]
    return ConfigError(
        f"override '{override}'",
        f"expected Hydra override syntax (key=value, key=a,b, key=range(1,5)), got {reason}",
    )


def _unknown_override(target: str, overrides: Sequence[str], conf_dir: Path) -> ConfigError:
    """``Could not override 'x'``: a group or key that the composed config does not have."""
    override = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] == target), target)
    if "." in target:  # a key: list its siblings from a compose without this override
        parent, _, leaf = target.rpartition(".")
        try:
            others = [o for o in overrides if o != override]
            cfg = hydra_compose("config", overrides=others, return_hydra_config=True)
            node = OmegaConf.select(cfg, parent)
            known = sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []
        except Exception:  # noqa: BLE001 - the suggestion is optional; the error is not
            known = []
        listed = f" (expected one of: {', '.join(known)})" if known else ""
        return ConfigError(target, f"unknown key '{leaf}'{listed}",
                           suggestion=did_you_mean(leaf, known))
    if "/" in target:
        return ConfigError(
            target,
            f"expected a config group of the composed config, got '{target}', which the "
            f"selected options do not use (to add it anyway: '+{override.lstrip('+~')}')",
        )
    known = _root_names(conf_dir)
    return ConfigError(
        target,
        f"expected a config group or key ({', '.join(known)}), got '{target}'",
        suggestion=did_you_mean(target, known),
    )


def _root_names(conf_dir: Path) -> list[str]:
    groups = sorted(p.name for p in conf_dir.iterdir() if p.is_dir()) if conf_dir.is_dir() else []
    keys = [f.name for f in dataclasses.fields(schema.RecforgeConfig)]
    return groups + [k for k in keys if k not in groups]


# --------------------------------------------------------------------------- file errors


def yaml_error(error: yaml.YAMLError) -> ConfigError:
    """``conf/model/x.yaml:7:1: expected ',' or ']', got '<stream end>'``."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = str(getattr(error, "problem", None) or error).strip()
    if problem.startswith("expected "):
        for but in (", but found ", " but found ", ", but got ", " but got "):
            problem = problem.replace(but, ", got ")
    else:
        problem = "expected valid YAML, got " + problem.removeprefix("found ")
    if mark is None:
        return ConfigError("YAML", problem)
    location = f"{_relative(Path(mark.name))}:{mark.line + 1}:{mark.column + 1}"
    return ConfigError(location, problem)


def encoding_error(error: UnicodeDecodeError, conf_dir: Path) -> ConfigError:
    """``conf/model/x.yaml:4: expected UTF-8 text, got byte 0xe9 at offset 47``.

    Hydra does not say which file it was reading; the file is found by its bytes."""
    data = bytes(error.object)
    files = sorted(conf_dir.rglob("*.yaml"))
    path = next((f for f in files if f.read_bytes() == data), None) or next(
        (f for f in files if not _is_utf8(f.read_bytes())), None)
    byte = data[error.start] if error.start < len(data) else 0
    line = data.count(b"\n", 0, error.start) + 1
    where = f"{_relative(path)}:{line}" if path else "conf"
    return ConfigError(where, f"expected UTF-8 text, got byte 0x{byte:02x} at offset "
                       f"{error.start}")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _from_omegaconf(cause: OmegaConfBaseException, key: str, location: str | None
                    ) -> ConfigError:
    if _is_missing_key(cause):
        return _unknown_key(key, _schema_type(cause.object_type), location)
    if isinstance(cause, ValidationError) and (enum := _enum_type(cause)) is not None:
        choices = list(enum.__members__)
        return ConfigError(key, f"expected one of {', '.join(choices)}, got '{cause.value}'",
                           suggestion=did_you_mean(str(cause.value), choices),
                           location=location)
    if isinstance(cause, ValidationError) and (wanted := _scalar_name(cause)):
        return ConfigError(key, f"expected {wanted}, got '{cause.value}' "
                                f"({type(cause.value).__name__})", location=location)
    if isinstance(cause, InterpolationKeyError) and isinstance(cause.parent_node, DictConfig):
        raw = OmegaConf.to_container(cause.parent_node, resolve=False).get(cause.key)
        return ConfigError(key, f"expected an interpolation of an existing key, got '{raw}'",
                           location=location)
    return ConfigError(key, str(cause.msg).strip().splitlines()[0], location=location)


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


_SCALAR_NODES = {IntegerNode: "integer", FloatNode: "float", BooleanNode: "boolean",
                 StringNode: "string"}
_SCALAR_TYPES = {int: "integer", float: "float", bool: "boolean", str: "string"}


def _scalar_name(cause: OmegaConfBaseException) -> str | None:
    """What a value that failed conversion should have been: from its node (``batch_size``),
    or from the element type of the list it was going into (``top_k[1]``)."""
    for node_type, name in _SCALAR_NODES.items():
        if isinstance(cause.child_node, node_type):
            return name
    if isinstance(cause.parent_node, ListConfig):
        element = next(iter(typing.get_args(cause.ref_type)), None)
        return _SCALAR_TYPES.get(element) if isinstance(element, type) else None
    return None


def _enum_type(cause: OmegaConfBaseException) -> type[Enum] | None:
    """The Enum a value failed to be one of: the node's, else the schema field's."""
    if isinstance(cause.child_node, EnumNode):
        return cause.child_node.enum_type
    owner = cause.object_type
    if owner is not None and dataclasses.is_dataclass(owner) and isinstance(cause.key, str):
        try:
            hint = typing.get_type_hints(owner).get(cause.key)
        except (NameError, TypeError):
            return None
        if isinstance(hint, type) and issubclass(hint, Enum):
            return hint
    return None


def _field_names(object_type: type | None) -> list[str]:
    if object_type is not None and dataclasses.is_dataclass(object_type):
        return [f.name for f in dataclasses.fields(object_type)]
    return []


def _schema_type(object_type: Any) -> type | None:
    """A config's dataclass (whose fields are the keys it allows); ``dict`` and friends: none."""
    return object_type if dataclasses.is_dataclass(object_type) else None


def _override_for(key: str, overrides: Sequence[str]) -> str | None:
    """The override that set ``key``, the most specific one (``run.epochs=x``, not ``run=x``)."""
    matches = []
    for override in overrides:
        target = override.lstrip("+~").split("=", 1)[0]
        if target == key or key.startswith(target + ".") or _dotted(key) == target:
            matches.append((len(target), override))
    return f"override '{max(matches)[1]}'" if matches else None


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


def register_configs() -> None:
    """Store every group schema in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(group="features", name="features_schema", node=FeaturesConfig)
    store.store(group="model", name="model_schema", node=ModelConfig)
    store.store(group="run", name="run_schema", node=LocalRunConfig)
    store.store(group="data", name="data_schema", node=DataConfig)
    store.store(group="submit", name="submit_schema", node=VertexSubmitConfig)
    store.store(group="submit", name="dataflow_transform_schema", node=DataflowTransformConfig)
