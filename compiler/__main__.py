"""``python -m compiler model=hybrid_v1 features=cherng_v3 [overrides]``

Every command composes its configs, then runs one preflight (``compiler.preflight``) over
everything it will use, and only then writes, records, loads, trains or submits. Bad input the
user can cause ends as one line, ``error: <key or file:line>: expected ..., got ...``, and exit
code 2; ``--debug`` (or ``HYDRA_FULL_ERROR=1``) adds the traceback. ``-m`` sweeps are checked
point by point first (``compiler.sweeps.sweep``), then run by Hydra's multirun (basic, joblib or
Optuna). Hydra's other flags (``--help``, ``--cfg``, ``--info`` ...) go to ``hydra.main`` once
their overrides have composed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from compiler.cloud import dataflow, main_submit
from compiler.cloud.dataflow import DataflowTransformConfig
from compiler.cloud.source import application_credentials
from compiler.core.compose import CONF_DIR, VERSION_BASE, compose, register_configs, release
from compiler.core.emit import emit
from compiler.core.pipeline import compile_config, write_result
from compiler.errors import PassFailure, RecforgeError
from compiler.preflight import preflight
from compiler.sweeps import sweep
from compiler.track import track

_MULTIRUN_FLAGS = ("-m", "--multirun")
#: recforge's own flags, taken out before Hydra sees the command line.
DEBUG_FLAG, VERBOSE_FLAG = "--debug", "--verbose"
#: Set by ``--verbose``: the run code shows TensorFlow's and Beam's own logs.
VERBOSE_ENV = "RECFORGE_VERBOSE"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get("HYDRA_FULL_ERROR") == "1"
    if VERBOSE_FLAG in args:
        os.environ[VERBOSE_ENV] = "1"
    args = [a for a in args if a not in (DEBUG_FLAG, VERBOSE_FLAG)]
    _plugin_warnings_as_lines()
    try:
        return _dispatch(args)
    except RecforgeError as error:
        if debug:
            traceback.print_exc()
        return report_error(error)
    except KeyboardInterrupt:
        print("interrupted: the run directory is not marked complete", file=sys.stderr)
        return 130
    except Exception as error:  # a bug in recforge (or a plugin), not bad input
        if debug:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: internal: {type(error).__name__}: {first} "
              f"(run with {DEBUG_FLAG} for the traceback)", file=sys.stderr)
        return 1


@dataclass(frozen=True)
class CommandLine:
    """The command line as Hydra's own argument parser reads it."""

    overrides: list[str]
    config_dir: Path | None
    config_name: str
    multirun: bool
    #: A Hydra flag other than -m/-cp/-cn (--help, --cfg, --info ...): Hydra's app handles it.
    hydra_flags: bool
    #: ``--shell-completion``: its arguments (``install=bash``) are not config overrides.
    shell_completion: bool = False


def parse_command_line(args: list[str]) -> CommandLine:
    """Hydra's parser, with its errors as one ``error:`` line (argparse would print usage)."""

    parser = get_args_parser()

    def fail(message: str) -> None:
        raise RecforgeError(f"command line: {message}")

    parser.error = fail  # type: ignore[method-assign]
    parsed = parser.parse_args(args)
    config_dir = Path(parsed.config_path).expanduser().resolve() if parsed.config_path else None
    hydra_flags = any(getattr(parsed, name, None) for name in (
        "help", "hydra_help", "cfg", "resolve", "package", "run", "shell_completion",
        "config_dir", "experimental_rerun", "info"))
    return CommandLine(list(parsed.overrides), config_dir, parsed.config_name or "config",
                       bool(parsed.multirun), hydra_flags,
                       bool(getattr(parsed, "shell_completion", False)))


def _dispatch(args: list[str]) -> int:
    command = parse_command_line(args)
    if command.multirun:
        return _sweep(args, command)
    if command.shell_completion:
        return _hydra_app(args, command)
    # Hydra's flags print or inspect the config: its overrides compose here first, so a bad
    # one is one error line (Hydra would print its own multi-line report).
    cfg = compose(command.overrides, config_dir=command.config_dir,
                  config_name=command.config_name)
    if command.hydra_flags:
        return _hydra_app(args, command)
    return execute(cfg, command.overrides)


def _plugin_warnings_as_lines() -> None:
    """A skipped plugin is reported as ``warning: ...``, not as Python's warning format."""

    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if category.__name__ == "PluginWarning":
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def execute(cfg: DictConfig, overrides: Sequence[str], *, output_dir: str | None = None,
            sweep_id: int | None = None, in_sweep: bool = False) -> Any:
    """Preflight, compile, then (unless a dry run) emit, record, and run or submit.

    Returns 0, or in a sweep the objective metric of the point's run (for Optuna).
    """

    checked = preflight(cfg, overrides, output_dir=output_dir,
                        output_key="sweep_dir" if in_sweep else "output_dir")
    # Compiled in memory first: a pass error stops here, before anything is written.
    result = compile_config(cfg, overrides=overrides, write=False, config=checked.config)
    if isinstance(checked.submit, DataflowTransformConfig):
        code = _dataflow_transform(checked, result, overrides)
        return math.nan if in_sweep else code
    if checked.writes_nothing:
        if checked.submit is not None and checked.submit.dry_run:
            # stdout carries only the dry run's JSON document, so it can be piped to jq.
            print_compile_summary(result, file=sys.stderr)
            return _submit_dry_run(result, checked)
        print_compile_summary(result)
        print(f"  dry run: would {checked.action} → {checked.output_dir}; nothing written, "
              "run, submitted or recorded")
        return 0
    result = write_result(result, checked.output_dir)
    print_compile_summary(result)
    outcome = track(checked, result, overrides, sweep_id=sweep_id, in_sweep=in_sweep)
    if in_sweep:  # the point's objective, for the sweeper (NaN when it did not run)
        final = (outcome.metrics or {}).get("final", {})
        return float(final.get(str(cfg.objective), math.nan))
    return outcome.code


def _dataflow_transform(checked: Any, result: Any, overrides: Sequence[str]) -> int:
    """``submit=dataflow_transform``: the Transform alone, on Dataflow (see
    ``compiler.cloud.dataflow``). A dry run prints the pipeline options as JSON on stdout."""

    launch_plan = dataflow.prepare(checked, result)
    if checked.writes_nothing:
        print_compile_summary(result, file=sys.stderr)
        print(json.dumps(dataflow.dry_run_document(launch_plan), indent=2, sort_keys=True))
        print("Dry run: nothing was written, recorded or sent (a launch gets its own "
              "submission id in the output folder).", file=sys.stderr)
        return 0
    application_credentials()  # no credentials: one error line before anything is written
    result = write_result(result, checked.output_dir)
    print_compile_summary(result)
    return dataflow.launch(launch_plan, checked, result, list(overrides))


def _submit_dry_run(result: Any, checked: Any) -> int:
    """``submit.dry_run=true``: the staging plan and request, from modules emitted into a
    temporary directory that is removed afterwards; nothing is recorded or sent."""

    with tempfile.TemporaryDirectory(prefix="recforge-dry-run-") as scratch:
        emitted = emit(result.sources, result.manifest, Path(scratch) / "modules")
        return main_submit(emitted.output_dir, checked.cfg.submit,
                           result.plan.required_features(), None)


def print_compile_summary(result: Any, file: Any = None) -> None:
    config = result.config
    print(
        f"recforge: compiled model={config.model.name} features={config.features.name} "
        f"(config-hash {config.config_hash})", file=file,
    )
    for path in result.emitted.files if result.emitted else ():
        print(f"  wrote {path}", file=file)
    passes = result.manifest["passes"]
    print(
        f"  passes: {len(passes['run'])} run, {passes['errors']} error(s), "
        f"{passes['warnings']} warning(s)", file=file,
    )
    for finding in result.warnings:
        print(f"  {_finding_line(finding)}", file=file)


def _finding_line(finding: Any) -> str:
    return f"{finding.path}:{finding.line}:{finding.col}: {finding.rule} {finding.message}"


def report_error(error: RecforgeError) -> int:
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, PassFailure):
        for finding in error.findings:
            print(f"  {_finding_line(finding)}", file=sys.stderr)
    return error.exit_code


# --------------------------------------------------------------------------- sweeps


def _sweep(args: list[str], command: CommandLine) -> int:
    """Check the whole sweep (Hydra's sweeper and launcher settings, every point or the search
    space, the objective), then create the sweep in the ledger and let Hydra run it."""

    setup = sweep.check_setup(command.overrides, config_dir=command.config_dir)
    if setup.search:
        sweep.check_search_space(setup, command.overrides, config_dir=command.config_dir)
        if setup.dry_run:
            sweep.print_search_space(setup)
            return 0
        # Each trial is composed from the search space by the sweeper; its values were
        # checked above, and a trial that still fails fails alone.
        print("sweep: the search space is sampled by the configured sweeper; each trial is "
              "checked as it is composed")
    else:
        report = sweep.preflight(command.overrides, config_dir=command.config_dir)
        if report.bad:
            raise RecforgeError(sweep.describe_bad_points(report))
        sweep.check_point_objective(setup, report)
        sweep.print_preflight(report, dry_run=setup.dry_run)
        if setup.dry_run:
            return 0
    # lazy: the ledger imports SQLAlchemy at module top
    from compiler.ledger import Ledger

    ledger_url = setup.ledger_url
    with Ledger(ledger_url) as ledger:
        sweep_id = ledger.next_sweep_id(" ".join(command.overrides))
    print(f"sweep #{sweep_id}")
    _hydra_app(args, command, sweep_id=sweep_id)
    # lazy: the runs CLI imports the ledger (SQLAlchemy)
    from compiler.runs.leaderboard import print_sweep_leaderboard

    with Ledger(ledger_url) as ledger:
        failed = ledger.list(sweep_id=sweep_id, status="failed")
        print_sweep_leaderboard(ledger, sweep_id)
    if failed:
        print(f"sweep #{sweep_id}: {len(failed)} point(s) failed: "
              + ", ".join(f"#{e.number}" for e in failed), file=sys.stderr)
        return 1
    return 0


class PointFailed(Exception):
    """A sweep point failed; raised only for search sweepers (Optuna marks the trial failed)."""


def _sweep_job(cfg: DictConfig, overrides: list[str], *, search: bool,
               sweep_id: int | None) -> Any:
    """One point of a multirun: compile into its own directory; run once per distinct point.

    A failing point is recorded and reported but does not stop the sweep: with Hydra's basic
    sweeper it returns NaN; a search sweeper (Optuna) gets an exception, which marks that
    trial failed and lets the study go on.
    """

    label = " ".join(overrides)
    try:
        checked = preflight(cfg, overrides, output_dir=str(cfg.sweep_dir), output_key="sweep_dir")
        config = checked.config
        point_dir = sweep.point_output_dir(str(cfg.sweep_dir), config.model.name,
                                          config.features.name, config.config_hash)
        if not sweep.claim(point_dir, sweep_id, sweep.point_key(cfg)):
            raise PointFailed(f"identical to an earlier point ({config.config_hash}), which "
                              "was compiled and run once")
        return execute(cfg, overrides, output_dir=point_dir, sweep_id=sweep_id, in_sweep=True)
    except RecforgeError as error:
        problem = str(error)
    except Exception as error:  # noqa: BLE001 - one failing point must not stop the sweep
        problem = f"{type(error).__name__}: {error}"
    print(f"point {label}: {problem}", file=sys.stderr)
    if search:
        raise PointFailed(problem)
    return math.nan


def _hydra_app(args: list[str], command: CommandLine, sweep_id: int | None = None) -> int:
    """Run the command as a Hydra app. ``sweep_id`` reaches each point through the task's
    closure, which the joblib launcher pickles into its worker processes."""
    register_configs()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=VERSION_BASE)
    def task(cfg: DictConfig) -> Any:
        hydra_config = HydraConfig.get()
        overrides = list(hydra_config.overrides.task)
        if hydra_config.mode == RunMode.MULTIRUN:
            search = "BasicSweeper" not in str(hydra_config.sweeper.get("_target_", ""))
            return _sweep_job(cfg, overrides, search=search, sweep_id=sweep_id)
        try:
            code = execute(cfg, overrides)
        except RecforgeError as error:
            code = report_error(error)
        if code:
            sys.exit(code)
        return None

    release()  # hydra.main initializes Hydra itself
    saved = sys.argv
    sys.argv = [saved[0], *_absolute_config_path(args, command)]
    try:
        task()
    finally:
        sys.argv = saved
    return 0


def _absolute_config_path(args: list[str], command: CommandLine) -> list[str]:
    """``-cp DIR`` relative to the current directory, as the plain commands read it (Hydra
    would read it relative to this file)."""
    if command.config_dir is None:
        return args
    result: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-cp", "--config-path"):
            skip = True
            continue
        if arg.startswith("--config-path="):
            continue
        result.append(arg)
    return ["--config-path", str(command.config_dir), *result]


if __name__ == "__main__":
    sys.exit(main())
