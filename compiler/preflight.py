"""One preflight, before any side effect: every check a command's configs allow, in one place.

``python -m compiler`` composes, then calls ``preflight``, and only then writes, records, loads,
trains or submits. ``preflight`` checks, in this order and without touching anything (no file,
no directory, no database, no network):

1. the model and feature configs (``compiler.core.validate.validate``);
2. ``output_dir`` (or a sweep point's directory): a local directory that exists or can be
   created, and is writable;
3. ``run`` and ``submit`` are not both selected;
4. the data config, when the command loads data (``run=local``);
5. the run settings (``run=...``) and the submission settings (``submit=...``);
6. the ledger URL.

Each group's check is its owner's pure function (``check_data_config``, ``check_run_config``,
``check_submit_config``, ``check_ledger_url``); each raises a ``ConfigError`` (exit 2) naming
the key. ``objective_metrics`` lists what a run writes, for the sweeps' ``objective`` check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler.cloud.config import check_submit_config
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.core.validate_training import early_stopping_settings
from compiler.data.checks import has_eval_split
from compiler.data.config import check_data_config
from compiler.errors import ConfigError, did_you_mean
from compiler.fragments.contract import written_metrics
from compiler.fragments.registry import Registry, get_registry
from compiler.ledger.urls import check_ledger_url
from compiler.local.config import check_run_config
from compiler.model import ResolvedConfig


@dataclass(frozen=True)
class Checked:
    """What preflight found: every config the command will use, checked."""

    cfg: DictConfig
    config: ResolvedConfig
    output_dir: str
    data: Any | None  # compiler.data.config.DataConfig, when the command loads data
    run: Any | None  # compiler.schema.LocalRunConfig, for run=local
    submit: Any | None  # compiler.cloud.config.VertexSubmitConfig, for submit=vertex
    ledger_url: str
    dry_run: bool

    @property
    def action(self) -> str:
        """What the command does after compiling, in words."""
        if self.submit is not None:
            return "compile, submit to Vertex AI"
        if self.run is not None:
            return "compile, run locally"
        return "compile"

    @property
    def writes_nothing(self) -> bool:
        """A dry run of any kind (``dry_run=true``, ``submit.dry_run=true``)."""
        return self.dry_run or bool(self.submit is not None and self.submit.dry_run)


def preflight(cfg: DictConfig, overrides: Sequence[str] = (), *,
              output_dir: str | None = None, output_key: str = "output_dir",
              registry: Registry | None = None) -> Checked:
    """Check everything the command composed in ``cfg`` will use; raise ``ConfigError``.

    ``output_dir`` replaces ``cfg.output_dir`` (a sweep point's directory, checked under
    ``output_key``).
    """
    del overrides  # part of the interface: errors from composition already name them
    config = validate(cfg, registry)
    target = str(config.output_dir if output_dir is None else output_dir)
    check_output_dir(target, output_key)
    run_node, submit_node = cfg.get("run"), cfg.get("submit")
    if run_node is not None and submit_node is not None:
        raise ConfigError(
            "submit",
            "expected either run=local (train here) or submit=vertex (train on Vertex AI), "
            "got both",
        )
    data = run = submit = None
    if run_node is not None:
        data = check_data_config(cfg.get("data"), config.features)
        run = check_run_config(run_node, config)
        stopping = early_stopping_settings(config.model)
        if stopping is not None and data is not None and not has_eval_split(data):
            raise ConfigError("model.early_stopping",
                              f"expected data with an eval split (early stopping watches "
                              f"{stopping.metric} on it), got a two-way split: add an eval "
                              f"ratio to data.split or set model.early_stopping=null")
    if submit_node is not None:
        submit = check_submit_config(submit_node, config)
    ledger_url = check_ledger_url(cfg.get("ledger"))
    dry_run = check_flag(cfg, "dry_run")
    return Checked(cfg, config, target, data, run, submit, ledger_url, dry_run)


def check_flag(cfg: DictConfig, key: str) -> bool:
    try:
        value = OmegaConf.select(cfg, key, default=False)
    except OmegaConfBaseException as error:
        raise ConfigError(key, f"expected true or false, got an unreadable value ({error})") \
            from None
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def check_output_dir(path: str, key: str = "output_dir") -> Path:
    """``path`` is a local directory that exists and is writable, or can be created.

    Nothing is created: the nearest existing ancestor must be a writable directory.
    """
    if not path.strip():
        raise ConfigError(key, "expected a directory path, got an empty string")
    if "://" in path:
        raise ConfigError(key, f"expected a local directory, got the URI '{path}'")
    target = Path(path).expanduser().absolute()
    name_max = _name_max(target)
    for part in target.parts:
        if len(os.fsencode(part)) > name_max:
            raise ConfigError(key, f"expected path components of at most {name_max} bytes, "
                              f"got one of {len(os.fsencode(part))}")
    existing = target
    while not os.path.exists(existing):  # (Path.exists raises on an over-long name)
        if existing.is_symlink():  # a dangling link cannot hold a directory
            raise ConfigError(key, f"expected a directory, got a broken link at {existing}")
        existing = existing.parent
    if not existing.is_dir():
        where = "a file" if existing == target else f"a path under the file {existing}"
        raise ConfigError(key, f"expected a directory, got {where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "a directory" if existing == target else f"a path under {existing}"
        raise ConfigError(key, f"expected a writable directory, got {what} that this user "
                          "cannot write to")
    return target


def _name_max(path: Path) -> int:
    probe = path
    while not os.path.exists(probe):
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


# --------------------------------------------------------------------------- sweep objective


def objective_metrics(config: ResolvedConfig, data: Any | None = None) -> list[str]:
    """The final metrics a run of ``config`` on ``data`` writes to ``training_metrics.json``.

    Each fragment of the plan declares the metrics it writes (``Fragment.writes``): the
    trainer ``loss``; the Recall@K evaluator ``recall_at_K`` (test split) and
    ``val_recall_at_K`` for each configured K; the regression evaluator ``val_rmse``,
    ``val_mae``, ``test_rmse`` and ``test_mae``; a ScaNN index ``index_recall_at_K``; a
    plugin's evaluator its own (recforge-dcn's ``ndcg_at_K``). A two-way split (``data``
    without an eval split) writes no ``val_*`` metric.
    """
    with_eval = data is None or has_eval_split(data)
    registry = get_registry()
    uses = plan(config, registry).uses  # each fragment declares what it writes (``writes``)
    return written_metrics([(use, registry.fragments[(use.kind, use.name)].cls)
                            for use in uses], config, with_eval)


def check_objective(objective: Any, written: Sequence[str]) -> str:
    """``objective`` is one of the metrics ``written`` (``objective_metrics`` of the configs
    the sweep runs).

    A sweep over model types (``model=hybrid_v1,ranking_v1``) may name a metric only some
    points write; those points report NaN. A name no point writes is a mistake.
    """
    if not isinstance(objective, str) or not objective:
        raise ConfigError("objective", f"expected a metric name, got {objective!r}")
    if objective not in written:
        raise ConfigError(
            "objective",
            f"expected a metric the run writes ({', '.join(written)}), got '{objective}'",
            suggestion=did_you_mean(objective, written),
        )
    return objective


def lower_is_better(metric: str) -> bool:
    """Losses and errors are minimized; recalls are maximized."""
    return metric == "loss" or metric.endswith(("_rmse", "_mae"))
