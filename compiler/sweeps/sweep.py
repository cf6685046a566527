"""``-m`` sweeps: every point validated and compiled before any point runs.

Hydra's own multirun would compose and run point after point, so a typo in the last point would
surface after all the others had trained. ``preflight`` expands the sweep with Hydra's override
parser, composes, validates and compiles (in memory) every point first, and refuses the sweep
naming the bad points' overrides. Identical points (same content hash) are compiled and run
once. ``dry_run=true`` prints the plan and stops there.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException
from omegaconf import OmegaConf
from rich.console import Console

from compiler.core.compose import CONF_DIR, compose, translate_error
from compiler.core.pipeline import compile_config
from compiler.errors import ConfigError, RecforgeError, did_you_mean
from compiler.preflight import (
    check_flag,
    check_objective,
    check_output_dir,
    lower_is_better,
    objective_metrics,
)
from compiler.preflight import preflight as preflight_command

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

#: Hydra settings that are not part of a point's config.
_HYDRA_ONLY = ("hydra.", "hydra/", "+hydra.", "~hydra.")


@dataclass
class Point:
    number: int
    overrides: list[str]
    config_hash: str = ""
    output_dir: str = ""
    errors: int = 0
    warnings: int = 0
    problem: str | None = None
    same_as: int | None = None
    action: str = ""
    #: The final metrics this point's run writes (``compiler.preflight.objective_metrics``).
    metrics: list[str] = field(default_factory=list)


@dataclass
class Preflight:
    points: list[Point] = field(default_factory=list)

    @property
    def bad(self) -> list[Point]:
        return [p for p in self.points if p.problem]

    @property
    def unique(self) -> list[Point]:
        return [p for p in self.points if p.same_as is None and not p.problem]


def expand(overrides: Sequence[str]) -> list[list[str]]:
    """The cartesian product of a sweep's overrides, as Hydra's basic sweeper forms it."""
    parsed = parse(overrides)
    axes: list[list[str]] = []
    for override in parsed:
        if override.is_hydra_override():
            continue
        if override.is_sweep_override():
            key = override.get_key_element()
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([override.input_line])
    return [list(combination) for combination in itertools.product(*axes)]


def parse(overrides: Sequence[str]) -> list[Any]:
    """Hydra's parsed overrides; a grammar error is a ``ConfigError`` naming the override."""

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise translate_error(error, overrides, CONF_DIR) from None


def point_output_dir(sweep_root: str, model: str, features: str, config_hash: str) -> str:
    return str(Path(sweep_root) / f"{model}__{features}-{config_hash}")


def preflight(overrides: Sequence[str], *, workers: int | None = None,
              config_dir: Path | None = None) -> Preflight:
    """Compose, validate and compile every point of the sweep without writing anything.

    Points are composed here, in order; identical ones (same ``point_key``) are compiled
    once. Each distinct point is compiled as soon as it is found, by one of ``workers``
    processes (default: one per CPU) forked from this one, so that each starts with Hydra and
    the plugins loaded; with fewer than two workers, or no ``fork``, all in this process.
    """

    points = [Point(number, o) for number, o in enumerate(expand(overrides), start=1)]
    result = Preflight(points)
    with _Compiler(workers, len(points)) as compiler:
        first_of: dict[str, int] = {}
        for point in points:
            try:
                key = point_key(compose(point.overrides, config_dir=config_dir))
            except RecforgeError as error:
                point.problem = str(error)
                continue
            if key in first_of:
                point.same_as = first_of[key]
            else:
                first_of[key] = point.number
                compiler.submit(point, config_dir)
    for point in points:
        if point.same_as is not None:  # the same work as an earlier point: compiled there
            first = points[point.same_as - 1]
            point.config_hash, point.output_dir = first.config_hash, first.output_dir
            point.errors, point.warnings = first.errors, first.warnings
            point.action, point.problem = first.action, first.problem
            point.metrics = first.metrics
    return result


class _Compiler:
    """Compiles points here or in forked worker processes; results land on the points when
    the ``with`` block ends."""

    #: Below this many points per process, forking costs more than it saves.
    POINTS_PER_WORKER = 4

    def __init__(self, workers: int | None, points: int) -> None:
        # lazy: the process pool's modules, only for a sweep that runs one
        import multiprocessing

        self.workers = min(workers or os.cpu_count() or 1, points // self.POINTS_PER_WORKER)
        if "fork" not in multiprocessing.get_all_start_methods():
            self.workers = 1
        if "tensorflow" in sys.modules:
            # TensorFlow is not fork-safe: a forked child that finalizes one of its objects
            # waits forever on threads that were not forked. Compiling never imports it, so
            # this only happens in a process that trained before (a test session).
            self.workers = 1
        self.pool: ProcessPoolExecutor | None = None
        self.pending: list[tuple[Point, Any]] = []

    def submit(self, point: Point, config_dir: Path | None = None) -> None:
        if self.workers < 2 or self.pool is None and not self.pending:
            # The first compile runs here: it loads the plugins and parses the templates,
            # which the workers forked next then inherit instead of each doing it again.
            self.pending.append((point, _compile_point(point.overrides, config_dir)))
            return
        if self.pool is None:
            # lazy: the process pool's modules, only for a sweep that runs one
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("fork"))
        self.pending.append((point, self.pool.submit(_compile_point, point.overrides,
                                                     config_dir)))

    def __enter__(self) -> _Compiler:
        return self

    def __exit__(self, error_type: Any, *exc_info: Any) -> None:
        try:
            for point, outcome in self.pending if error_type is None else ():
                if not isinstance(outcome, dict):
                    outcome = outcome.result()
                for name, value in outcome.items():
                    setattr(point, name, value)
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)


def _compile_point(point_overrides: list[str], config_dir: Path | None = None
                   ) -> dict[str, Any]:
    """Preflight and compile one point in memory: what the sweep's preflight reports of it."""

    try:
        cfg = compose(point_overrides, config_dir=config_dir)
        checked = preflight_command(cfg, point_overrides, output_dir=str(cfg.sweep_dir),
                              output_key="sweep_dir")
        compiled = compile_config(cfg, write=False, overrides=point_overrides,
                                  config=checked.config)
    except RecforgeError as error:
        return {"problem": str(error)}
    config = compiled.config
    return {
        "config_hash": config.config_hash,
        "errors": len(compiled.errors),
        "warnings": len(compiled.warnings),
        "output_dir": point_output_dir(str(cfg.sweep_dir), config.model.name,
                                       config.features.name, config.config_hash),
        "action": checked.action,
        "metrics": objective_metrics(config, checked.data),
    }


def point_key(cfg) -> str:  # noqa: ANN001 - DictConfig
    """Identity of a whole point (compiled config, data, run and submit settings): points with
    the same key are the same work. The config hash alone names the compiled code."""

    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def print_preflight(report: Preflight, *, dry_run: bool) -> None:
    # lazy: rich tables: printed only at the end of a run or sweep
    from rich.table import Table

    console = Console()
    common = [o for o in report.points[0].overrides
              if all(o in p.overrides for p in report.points)] if report.points else []
    table = Table(title="sweep dry run: nothing was run" if dry_run else "sweep points")
    for column in ("#", "swept overrides", "config hash", "passes", "would" if dry_run
                   else "does"):
        table.add_column(column, overflow="fold")
    for point in report.points:
        swept = " ".join(o for o in point.overrides if o not in common) or "(none)"
        if point.problem:
            table.add_row(str(point.number), swept, "-", "-", f"[red]invalid: {point.problem}[/]")
            continue
        action = (f"same as #{point.same_as}: done once" if point.same_as
                  else f"{point.action} → {point.output_dir}")
        table.add_row(str(point.number), swept, point.config_hash,
                      f"{point.errors} err, {point.warnings} warn", action)
    if common:
        console.print(f"every point: {' '.join(common)}", soft_wrap=True)
    console.print(table)
    console.print(f"{len(report.points)} point(s), {len(report.unique)} distinct")


def describe_bad_points(report: Preflight) -> str:
    """One line: the first bad point with its overrides and problem, and how many are bad."""
    first = report.bad[0]
    others = [f"#{p.number}" for p in report.bad[1:]]
    more = f"; also invalid: point {', '.join(others)}" if others else ""
    return (f"sweep point #{first.number} [{' '.join(first.overrides)}]: {first.problem} "
            f"({len(report.bad)} of {len(report.points)} point(s) invalid{more}; nothing was "
            "run)")


def claim(point_dir: str, sweep_id: int | None, key: str) -> bool:
    """True for the first job of this sweep with this point key (identical points run once)."""
    os.makedirs(point_dir, exist_ok=True)
    marker = Path(point_dir) / f".sweep-{sweep_id}-{key}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


# --------------------------------------------------------------------------- sweep settings


@dataclass(frozen=True)
class SweepSetup:
    """The sweep as a whole, checked: Hydra's sweeper and launcher, and the root settings."""

    sweeper: Any  # DictConfig: hydra.sweeper
    launcher: Any  # DictConfig: hydra.launcher
    base: Any  # DictConfig: the config composed from the sweep's fixed overrides
    fixed: list[str]
    search: bool
    dry_run: bool
    ledger_url: str


#: Optuna's directions (one objective: a sweep point returns one number).
DIRECTIONS = ("minimize", "maximize")


def check_setup(overrides: Sequence[str], *, config_dir: Path | None = None) -> SweepSetup:
    """Compose the sweep's fixed overrides with Hydra's own config and check what only the
    sweep uses: the sweeper and launcher options, ``dry_run`` and ``sweep_dir``, the ledger."""
    # lazy: the ledger imports SQLAlchemy at module top
    from compiler.ledger.store import check_ledger_url

    parsed = parse(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    for override in parsed:
        if override.is_sweep_override() and override.is_hydra_override():
            key, _, spec = override.input_line.partition("=")
            raise ConfigError(key, f"expected one value, got the sweep {spec} (Hydra's own "
                              "settings are not swept; a search sweeper takes a dimension on "
                              "the command line as model.<key>=interval(a,b) or choice(...))")
        if override.is_sweep_override() and override.get_key_element().lstrip("+~") in (
                "dry_run", "ledger", "sweep_dir", "objective"):
            raise ConfigError(override.get_key_element().lstrip("+~"),
                              f"expected one value for the whole sweep, got "
                              f"'{override.input_line}'")
    full = compose(fixed, config_dir=config_dir, with_hydra=True)
    sweeper, launcher = full.hydra.sweeper, full.hydra.launcher
    base = compose(fixed, config_dir=config_dir)
    search = "BasicSweeper" not in str(sweeper.get("_target_", ""))
    _check_launcher(launcher)
    if search:
        _check_optuna(sweeper)
    dry_run = check_flag(base, "dry_run")
    check_output_dir(str(base.sweep_dir), "sweep_dir")
    ledger_url = check_ledger_url(base.get("ledger"))
    return SweepSetup(sweeper, launcher, base, fixed, search, dry_run, ledger_url)


def _check_launcher(launcher: Any) -> None:
    n_jobs = launcher.get("n_jobs")
    if "joblib" in str(launcher.get("_target_", "")) and (
            not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0):
        raise ConfigError("hydra.launcher.n_jobs",
                          f"expected a non-zero number of processes (-1: one per CPU), "
                          f"got {n_jobs!r}")


def _check_optuna(sweeper: Any) -> None:
    n_trials = sweeper.get("n_trials")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials <= 0:
        raise ConfigError("hydra.sweeper.n_trials",
                          f"expected a positive number of trials, got {n_trials!r}")
    direction = _direction(sweeper)
    if direction not in DIRECTIONS:
        raise ConfigError("hydra.sweeper.direction",
                          f"expected one of {', '.join(DIRECTIONS)}, got {direction!r}",
                          suggestion=did_you_mean(str(direction), DIRECTIONS))


def _direction(sweeper: Any) -> Any:
    direction = sweeper.get("direction")
    if isinstance(direction, (str, int, float)) or direction is None:
        return direction
    name = getattr(direction, "name", None)  # Optuna sweeper's Direction enum
    return name if name is not None else list(direction)


def check_search_space(setup: SweepSetup, overrides: Sequence[str], *,
                       config_dir: Path | None = None) -> None:
    """A search sweeper (Optuna): the base config, every value of every search dimension
    (each choice; an interval's bounds), and the objective with its direction, checked."""

    space = dict(setup.sweeper.get("params") or {})
    for override in parse(overrides):  # the sweeper adds command-line sweeps to the space
        if override.is_sweep_override() and not override.is_hydra_override():
            key, _, spec = override.input_line.partition("=")
            space[key.lstrip("+")] = spec
    if not space:
        raise ConfigError("hydra.sweeper.params",
                          "expected a search space (key: choice(...) / interval(...)), got none")
    checked = preflight_command(setup.base, setup.fixed, output_dir=str(setup.base.sweep_dir),
                           output_key="sweep_dir")
    written = objective_metrics(checked.config, checked.data)
    objective = check_objective(setup.base.get("objective"), written)
    direction = _direction(setup.sweeper)
    wanted = "minimize" if lower_is_better(objective) else "maximize"
    if direction != wanted:
        raise ConfigError("hydra.sweeper.direction",
                          f"expected {wanted} for objective {objective}, got {direction}")
    for key, values in search_values(space).items():
        for value in values:
            try:
                cfg = compose([*setup.fixed, f"{key}={value}"], config_dir=config_dir)
                preflight_command(cfg, output_dir=str(cfg.sweep_dir), output_key="sweep_dir")
            except RecforgeError as error:
                raise ConfigError(f"hydra.sweeper.params.{key}",
                                  f"expected values that give a valid config, got {value}, "
                                  f"which gives {error}") from None


def search_values(params: Any) -> dict[str, list[str]]:
    """The values of each search dimension worth checking: every choice, an interval's or a
    range's bounds."""

    values: dict[str, list[str]] = {}
    for key, spec in (params or {}).items():
        line = f"{key}={spec}"
        try:
            override = parse([line])[0]
        except ConfigError as error:
            raise ConfigError(f"hydra.sweeper.params.{key}", error.problem) from None
        element = override.value()
        if isinstance(element, IntervalSweep):
            values[key] = [str(element.start), str(element.end)]
        elif isinstance(element, RangeSweep):
            steps = list(override.sweep_string_iterator())
            values[key] = list(dict.fromkeys(steps[:1] + steps[-1:]))
        elif isinstance(element, ChoiceSweep):
            values[key] = list(override.sweep_string_iterator())
        else:
            values[key] = [override.get_value_element_as_str()]
    return values


def check_point_objective(setup: SweepSetup, report: Preflight) -> None:
    """The objective is a metric that at least one point's run writes."""

    written: list[str] = []
    for point in report.points:
        written += [m for m in point.metrics if m not in written]
    check_objective(setup.base.get("objective"), written)


def print_search_space(setup: SweepSetup) -> None:
    """An Optuna dry run: what the study would search; nothing is created or recorded."""
    sweeper = setup.sweeper
    print(f"sweep dry run: {sweeper.get('n_trials')} trial(s), {_direction(sweeper)} "
          f"'{setup.base.get('objective')}', sampler "
          f"{str(sweeper.sampler.get('_target_', '?')).rsplit('.', 1)[-1]}; nothing was run "
          "or recorded")
    if setup.fixed:
        print(f"every trial: {' '.join(setup.fixed)}")
    for key, spec in sweeper.params.items():
        print(f"  {key}: {spec}")
