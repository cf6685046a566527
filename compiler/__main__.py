"""``python -m compiler model=hybrid_v1 features=cherng_v3 [overrides]``

Plain invocations compose with Hydra's compose API, so a bad config becomes one clear message
and exit code 2. ``-m`` sweeps are checked point by point first (``compiler.sweep``), then run
by Hydra's multirun (basic, joblib or Optuna). Hydra's other flags (``--help``, ``--cfg``,
``--info`` ...) go straight to ``hydra.main`` with the same config directory.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from compiler.errors import PassFailure, RecforgeError

#: Flags that only Hydra's application runner understands.
_HYDRA_FLAGS = (
    "-m", "--multirun", "-h", "--help", "--hydra-help", "-c", "--cfg", "-p", "--package",
    "--info", "-i", "--resolve", "--version", "--shell-completion", "-sc", "--config-path",
    "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
)
_MULTIRUN_FLAGS = ("-m", "--multirun")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    _plugin_warnings_as_lines()
    try:
        if any(a in _MULTIRUN_FLAGS for a in args):
            return _sweep(args)
        if any(a.split("=", 1)[0] in _HYDRA_FLAGS for a in args):
            return _hydra_app(args)
        from compiler.compose import compose

        return execute(compose(args), args)
    except RecforgeError as error:
        return report_error(error)
    except KeyboardInterrupt:
        print("interrupted: the run directory is not marked complete", file=sys.stderr)
        return 130


def _plugin_warnings_as_lines() -> None:
    """A skipped plugin is reported as ``warning: ...``, not as Python's warning format."""
    import warnings

    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if category.__name__ == "PluginWarning":
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def execute(cfg: DictConfig, overrides: Sequence[str], *, output_dir: str | None = None,
            sweep_id: int | None = None, in_sweep: bool = False) -> Any:
    """Compile one composed config, record it, then run or submit it if the config asks to.

    Returns 0, or in a sweep the objective metric of the point's run (for Optuna).
    """
    from compiler.pipeline import compile_config

    dry_run = bool(cfg.get("dry_run", False))
    result = compile_config(cfg, overrides=overrides, output_dir=output_dir, write=not dry_run)
    print_compile_summary(result)
    if dry_run:
        print("  dry run: nothing written, run or submitted")
        return 0
    ledger, number = _record_compile(cfg, result, overrides, sweep_id)
    metrics = None
    if cfg.get("run") is not None:
        from compiler.local import run_local

        metrics = _tracked(ledger, number, "local", lambda: run_local(result, cfg))
    elif cfg.get("submit") is not None:
        from compiler.cloud import main_submit

        code = main_submit(result.emitted.output_dir, cfg.submit,
                           result.plan.required_features(), ledger,
                           overrides=list(overrides), experiment_number=number)
        if code and not in_sweep:
            ledger.close()
            return code
        metrics = _ledger_metrics(ledger, number)
    if ledger is not None:
        ledger.close()
    if in_sweep:  # the point's objective, for the sweeper (NaN when it did not run)
        final = (metrics or {}).get("final", {})
        return float(final.get(str(cfg.objective), math.nan))
    return 0


def _record_compile(cfg: DictConfig, result: Any, overrides: Sequence[str],
                    sweep_id: int | None) -> tuple[Any, int | None]:
    """Every compile gets an experiment number in the ledger (see ``compiler.ledger``)."""
    from compiler.ledger import Ledger, LedgerError

    try:
        ledger = Ledger(cfg.get("ledger"))
        artifacts = {"emitted": str(result.emitted.output_dir)} if result.emitted else {}
        number = ledger.record_compile(
            result.config.config_hash, result.config.model.name, result.config.features.name,
            list(overrides), result.config.data, artifacts=artifacts, sweep_id=sweep_id,
        )
    except LedgerError as error:
        raise RecforgeError(f"ledger: {error}") from None
    print(f"  experiment #{number} recorded in {ledger.display_url}")
    return ledger, number


def _ledger_metrics(ledger: Any, number: int | None) -> dict[str, Any] | None:
    """The metrics a submission recorded for ``number`` (the job ran elsewhere)."""
    record = ledger.get(number)
    final = {k: v for k, v in record.metrics.items() if v is not None}
    return {"final": final} if record.status == "completed" else None


def _tracked(ledger: Any, number: int | None, kind: str, work: Any) -> dict[str, Any]:
    """Run ``work`` with its experiment marked running, then completed or failed."""
    ledger.start(number, kind)
    try:
        outcome = work()
    except BaseException as error:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error)
        ledger.fail(number, reason or type(error).__name__)
        raise
    ledger.complete(number, outcome.metrics, artifacts={"run_dir": str(outcome.run_dir)})
    return outcome.metrics


def print_compile_summary(result: Any) -> None:
    config = result.config
    print(
        f"recforge: compiled model={config.model.name} features={config.features.name} "
        f"(config-hash {config.config_hash})"
    )
    for path in result.emitted.files if result.emitted else ():
        print(f"  wrote {path}")
    passes = result.manifest["passes"]
    print(
        f"  passes: {len(passes['run'])} run, {passes['errors']} error(s), "
        f"{passes['warnings']} warning(s)"
    )
    for finding in result.warnings:
        print(f"  {_finding_line(finding)}")


def _finding_line(finding: Any) -> str:
    return f"{finding.path}:{finding.line}:{finding.col}: {finding.rule} {finding.message}"


def report_error(error: RecforgeError) -> int:
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, PassFailure):
        for finding in error.findings:
            print(f"  {_finding_line(finding)}", file=sys.stderr)
    return error.exit_code


# --------------------------------------------------------------------------- sweeps


def _sweep(args: list[str]) -> int:
    from compiler import sweep

    point_args = [a for a in args if a not in _MULTIRUN_FLAGS]
    if _uses_search_sweeper(point_args):
        # A search space (Optuna) has no fixed points to check up front; each trial is
        # validated when it is composed, and a bad trial fails alone.
        print("sweep: the search space is sampled by the configured sweeper; each trial is "
              "validated as it is composed")
    else:
        report = sweep.preflight(point_args)
        dry_run = any(a in ("dry_run=true", "dry_run=True", "+dry_run=true")
                      for a in point_args)
        if report.bad:
            print(f"error: {sweep.describe_bad_points(report)}", file=sys.stderr)
            return 2
        sweep.print_preflight(report, dry_run=dry_run)
        if dry_run:
            return 0
    from compiler.ledger import Ledger

    ledger_url = next((a.split("=", 1)[1] for a in point_args if a.startswith("ledger=")), None)
    with Ledger(ledger_url) as ledger:
        sweep_id = ledger.next_sweep_id(" ".join(point_args))
    os.environ[sweep.SWEEP_ID_ENV] = str(sweep_id)
    print(f"sweep #{sweep_id}")
    try:
        _hydra_app(args)
    finally:
        del os.environ[sweep.SWEEP_ID_ENV]
    with Ledger(ledger_url) as ledger:
        failed = ledger.list(sweep_id=sweep_id, status="failed")
    if failed:
        print(f"sweep #{sweep_id}: {len(failed)} point(s) failed: "
              + ", ".join(f"#{e.number}" for e in failed), file=sys.stderr)
        return 1
    return 0


def _uses_search_sweeper(point_args: list[str]) -> bool:
    """True when the sweep is driven by a sweeper other than Hydra's basic one (Optuna)."""
    from hydra import compose as hydra_compose
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from compiler.compose import CONF_DIR, _ensure_initialized

    try:
        parsed = OverridesParser.create().parse_overrides(point_args)
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        _ensure_initialized(CONF_DIR)
        cfg = hydra_compose("config", overrides=fixed, return_hydra_config=True)
    except Exception:  # noqa: BLE001 - the preflight reports composition errors itself
        return False
    return "BasicSweeper" not in str(cfg.hydra.sweeper.get("_target_", ""))


class PointFailed(Exception):
    """A sweep point failed; raised only for search sweepers (Optuna marks the trial failed)."""


def _sweep_job(cfg: DictConfig, overrides: list[str], *, search: bool) -> Any:
    """One point of a multirun: compile into its own directory; run once per distinct point.

    A failing point is recorded and reported but does not stop the sweep: with Hydra's basic
    sweeper it returns NaN; a search sweeper (Optuna) gets an exception, which marks that
    trial failed and lets the study go on.
    """
    from compiler import sweep
    from compiler.validate import validate

    sweep_id = int(os.environ[sweep.SWEEP_ID_ENV]) if sweep.SWEEP_ID_ENV in os.environ else None
    label = " ".join(overrides)
    try:
        config = validate(cfg)
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


def _hydra_app(args: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from compiler.compose import CONF_DIR, VERSION_BASE
    from compiler.schema import register_configs

    register_configs()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=VERSION_BASE)
    def task(cfg: DictConfig) -> Any:
        hydra_config = HydraConfig.get()
        overrides = list(hydra_config.overrides.task)
        if hydra_config.mode == RunMode.MULTIRUN:
            search = "BasicSweeper" not in str(hydra_config.sweeper.get("_target_", ""))
            return _sweep_job(cfg, overrides, search=search)
        try:
            code = execute(cfg, overrides)
        except RecforgeError as error:
            code = report_error(error)
        if code:
            sys.exit(code)
        return None

    from compiler.compose import release

    release()  # hydra.main initializes Hydra itself
    saved = sys.argv
    sys.argv = [saved[0], *args]
    try:
        task()
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
