"""``-m`` sweeps: every point validated and compiled before any point runs.

Hydra's own multirun would compose and run point after point, so a typo in the last point would
surface after all the others had trained. ``preflight`` expands the sweep with Hydra's override
parser, composes, validates and compiles (in memory) every point first, and refuses the sweep
naming the bad points' overrides. Identical points (same content hash) are compiled and run
once. ``dry_run=true`` prints the plan and stops there.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import RecforgeError

#: Set for the jobs of a sweep, so each records its experiment under the sweep's id.
SWEEP_ID_ENV = "RECFORGE_SWEEP_ID"
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
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
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


def point_output_dir(sweep_root: str, model: str, features: str, config_hash: str) -> str:
    return str(Path(sweep_root) / f"{model}__{features}-{config_hash}")


def preflight(overrides: Sequence[str], *, workers: int | None = None) -> Preflight:
    """Compose, validate and compile every point of the sweep without writing anything.

    Points are composed here, in order; identical ones (same ``point_key``) are compiled
    once. Each distinct point is compiled as soon as it is found, by one of ``workers``
    processes (default: one per CPU) forked from this one, so that each starts with Hydra and
    the plugins loaded; with fewer than two workers, or no ``fork``, all in this process.
    """
    from compiler.compose import compose

    points = [Point(number, o) for number, o in enumerate(expand(overrides), start=1)]
    result = Preflight(points)
    with _Compiler(workers, len(points)) as compiler:
        first_of: dict[str, int] = {}
        for point in points:
            try:
                key = point_key(compose(point.overrides))
            except RecforgeError as error:
                point.problem = str(error)
                continue
            if key in first_of:
                point.same_as = first_of[key]
            else:
                first_of[key] = point.number
                compiler.submit(point)
    for point in points:
        if point.same_as is not None:  # the same work as an earlier point: compiled there
            first = points[point.same_as - 1]
            point.config_hash, point.output_dir = first.config_hash, first.output_dir
            point.errors, point.warnings = first.errors, first.warnings
            point.action, point.problem = first.action, first.problem
    return result


class _Compiler:
    """Compiles points here or in forked worker processes; results land on the points when
    the ``with`` block ends."""

    #: Below this many points per process, forking costs more than it saves.
    POINTS_PER_WORKER = 4

    def __init__(self, workers: int | None, points: int) -> None:
        self.workers = min(workers or os.cpu_count() or 1, points // self.POINTS_PER_WORKER)
        if "fork" not in multiprocessing.get_all_start_methods():
            self.workers = 1
        self.pool: ProcessPoolExecutor | None = None
        self.pending: list[tuple[Point, Any]] = []

    def submit(self, point: Point) -> None:
        if self.workers < 2 or self.pool is None and not self.pending:
            # The first compile runs here: it loads the plugins and parses the templates,
            # which the workers forked next then inherit instead of each doing it again.
            self.pending.append((point, _compile_point(point.overrides)))
            return
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("fork"))
        self.pending.append((point, self.pool.submit(_compile_point, point.overrides)))

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


def _compile_point(point_overrides: list[str]) -> dict[str, Any]:
    """Compile one point in memory: what the preflight reports of it."""
    from compiler.compose import compose
    from compiler.pipeline import compile_config

    try:
        cfg = compose(point_overrides)
        compiled = compile_config(cfg, write=False, overrides=point_overrides)
    except RecforgeError as error:
        return {"problem": str(error)}
    config = compiled.config
    return {
        "config_hash": config.config_hash,
        "errors": len(compiled.errors),
        "warnings": len(compiled.warnings),
        "output_dir": point_output_dir(str(cfg.sweep_dir), config.model.name,
                                       config.features.name, config.config_hash),
        "action": _action(cfg),
    }


def point_key(cfg) -> str:  # noqa: ANN001 - DictConfig
    """Identity of a whole point (compiled config, data, run and submit settings): points with
    the same key are the same work. The config hash alone names the compiled code."""
    import hashlib
    import json

    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _action(cfg) -> str:  # noqa: ANN001 - DictConfig
    if cfg.get("submit") is not None:
        return "compile, submit to Vertex AI"
    if cfg.get("run") is not None:
        return "compile, run locally"
    return "compile"


def print_preflight(report: Preflight, *, dry_run: bool) -> None:
    from rich.console import Console
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
    lines = [f"{len(report.bad)} of {len(report.points)} sweep point(s) are invalid; "
             "nothing was run:"]
    for point in report.bad:
        lines.append(f"  point #{point.number} [{' '.join(point.overrides)}]: {point.problem}")
    return "\n".join(lines)


def claim(point_dir: str, sweep_id: int | None, key: str) -> bool:
    """True for the first job of this sweep with this point key (identical points run once)."""
    os.makedirs(point_dir, exist_ok=True)
    marker = Path(point_dir) / f".sweep-{sweep_id}-{key}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
