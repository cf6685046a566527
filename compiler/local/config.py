"""The ``run`` config group's preflight: ``check_run_config`` merges the node onto
``LocalRunConfig`` and checks it (directories, the run name, a reused Transform's source)
without writing anything, and without importing the runners.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler.errors import ConfigError, did_you_mean
from compiler.local.transform import (
    check_transform_source,
)
from compiler.runner.beam_options import DIRECT_RUNNER, RUNNERS, check_pipeline_options
from compiler.schema import BeamConfig, Distribution, LocalRunConfig

#: The run manifest in each run directory; its "status" is written last.
RUN_MANIFEST = "run.json"


#: A run name is one path segment: letters, digits and ``._=+-``, not starting with a dot.
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=+-]{0,199}")


def check_run_config(node: Any, config: Any = None) -> LocalRunConfig:
    """Preflight for the ``run`` group: every run setting checked before anything is written.

    ``config`` is the validated ``ResolvedConfig``; with it, a local ``run.transform_from`` is
    checked against the feature config (see ``compiler.local.transform``). Pure: reads files,
    writes nothing. Raises ``ConfigError`` naming ``run.<key>``.
    """
    return _check_run(node, config)[0]


def _merge_run_node(node: Any) -> LocalRunConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(LocalRunConfig), node)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = str(getattr(error, "full_key", "") or getattr(error, "key", "") or "")
        key = key.removeprefix("run.")
        if key.startswith("beam."):  # the nested run.beam node
            _raise_beam_error(key.removeprefix("beam."), node)
        fields = [f.name for f in dataclasses.fields(LocalRunConfig)]
        if key and key not in fields:
            raise ConfigError(f"run.{key}", f"expected one of {', '.join(fields)}, got "
                              f"'{key}'", suggestion=did_you_mean(key, fields)) from None
        wanted = {f.name: f.type for f in dataclasses.fields(LocalRunConfig)}.get(key, "")
        value = node.get(key) if key and isinstance(node, (Mapping, DictConfig)) else None
        raise ConfigError(f"run.{key or '?'}", f"expected {_describe_type(str(wanted))}, got "
                          f"{value!r}") from None


def _raise_beam_error(key: str, node: Any) -> None:
    fields = [f.name for f in dataclasses.fields(BeamConfig)]
    if key not in fields:
        raise ConfigError(f"run.beam.{key}", f"expected one of {', '.join(fields)}, got "
                          f"'{key}'", suggestion=did_you_mean(key, fields)) from None
    beam = node.get("beam") if isinstance(node, (Mapping, DictConfig)) else None
    value = beam.get(key) if isinstance(beam, (Mapping, DictConfig)) else None
    wanted = "a list of Beam flags like ['--name=value']" if key == "options" else "a string"
    raise ConfigError(f"run.beam.{key}", f"expected {wanted}, got {value!r}") from None


def _describe_type(annotation: str) -> str:
    if "int" in annotation:
        return "an integer"
    if "bool" in annotation:
        return "true or false"
    return "a string"


def _check_directory(key: str, path: str) -> None:
    """``path`` is a directory or can become one: neither it nor an ancestor is a file."""
    existing = Path(path).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "a file" if existing == Path(path).expanduser().absolute() else \
            f"a path under the file {existing}"
        raise ConfigError(key, f"expected a directory, got {where} ({path})")


def _check_beam(settings: LocalRunConfig) -> None:
    """``run.beam``: a runner and flags Beam accepts. ``run=local`` keeps to the DirectRunner:
    its Transform output goes under the local run directory (and the local Transform cache),
    which Dataflow's workers cannot write; a Dataflow Transform is ``submit=dataflow_transform``
    and its gs:// output a later run's ``run.transform_from``."""
    if settings.beam.runner in RUNNERS and settings.beam.runner != DIRECT_RUNNER:
        raise ConfigError("run.beam.runner", f"expected {DIRECT_RUNNER} with run=local (its "
                          "Transform output is written under the local run directory, which "
                          f"{settings.beam.runner}'s workers cannot write), got "
                          f"{settings.beam.runner}; use submit=dataflow_transform, then "
                          "run.transform_from=<its gs:// output>")
    check_pipeline_options(settings.beam.runner, settings.beam.options, key="run.beam")


def _check_run(node: Any, config: Any) -> tuple[LocalRunConfig, list[str]]:
    """(the run settings, settings of a reused Transform that could not be verified)."""
    settings = _merge_run_node(node)
    for key in ("epochs", "batch_size", "workers"):
        value = getattr(settings, key)
        if value is not None and value <= 0:
            raise ConfigError(f"run.{key}", f"expected a positive integer, got {value}")
    if settings.workers > 1 and config is not None \
            and config.model.distribution is not Distribution.multi_worker:
        raise ConfigError("run.workers", "expected 1 unless model.distribution=multi_worker "
                          f"(N workers train one model together), got {settings.workers} with "
                          f"model.distribution={config.model.distribution.value}")
    _check_beam(settings)
    _check_directory("run.runs_root", settings.runs_root)
    if settings.cache_dir:
        _check_directory("run.cache_dir", settings.cache_dir)
    if settings.name is not None:
        if not _RUN_NAME.fullmatch(settings.name):
            raise ConfigError("run.name", "expected one directory name (letters, digits and "
                              f"._=+-, not starting with a dot), got {settings.name!r}")
        existing = Path(settings.runs_root).expanduser() / settings.name / RUN_MANIFEST
        if existing.exists():
            raise ConfigError("run.name", f"expected a new run name, got '{settings.name}', "
                              f"which already holds a run ({existing.parent})")
    unverified: list[str] = []
    source = settings.transform_from
    if source is not None and "://" not in source:  # gs:// is read when the run starts
        if config is None:
            if not Path(source).expanduser().exists():
                raise ConfigError("run.transform_from", "expected a run directory or a "
                                  f"Transform output, got {source}, which does not exist")
        else:
            unverified = check_transform_source(str(Path(source).expanduser()), config)
    return settings, unverified
