"""``python -m compiler model=hybrid_v1 features=cherng_v3 [overrides]``

Plain invocations compose with Hydra's compose API, so a bad config becomes one clear message
and exit code 2. Anything that needs Hydra's own app machinery (``-m`` sweeps, ``--help``,
``--cfg``, ``--info`` ...) goes through ``hydra.main`` with the same config directory.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from omegaconf import DictConfig

from compiler.errors import PassFailure, RecforgeError

#: Flags that only Hydra's application runner understands.
_HYDRA_FLAGS = (
    "-m", "--multirun", "-h", "--help", "--hydra-help", "-c", "--cfg", "-p", "--package",
    "--info", "-i", "--resolve", "--version", "--shell-completion", "-sc", "--config-path",
    "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a.split("=", 1)[0] in _HYDRA_FLAGS for a in args):
        return _hydra_app(args)
    from compiler.compose import compose

    try:
        return execute(compose(args), args)
    except RecforgeError as error:
        return report_error(error)
    except KeyboardInterrupt:
        print("interrupted: the run directory is not marked complete", file=sys.stderr)
        return 130


def execute(cfg: DictConfig, overrides: Sequence[str]) -> int:
    """Compile one composed config, then run or submit it if the config asks to."""
    from compiler.pipeline import compile_config

    result = compile_config(cfg, overrides=overrides)
    print_compile_summary(result)
    if cfg.get("run") is not None:
        from compiler.local import run_local

        run_local(result, cfg)
    return 0


def print_compile_summary(result) -> None:  # noqa: ANN001 - CompileResult, imported lazily
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


def _finding_line(finding) -> str:  # noqa: ANN001
    return f"{finding.path}:{finding.line}:{finding.col}: {finding.rule} {finding.message}"


def report_error(error: RecforgeError) -> int:
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, PassFailure):
        for finding in error.findings:
            print(f"  {_finding_line(finding)}", file=sys.stderr)
    return error.exit_code


def _hydra_app(args: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from compiler.compose import CONF_DIR, VERSION_BASE
    from compiler.schema import register_configs

    register_configs()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=VERSION_BASE)
    def task(cfg: DictConfig) -> None:
        overrides = list(HydraConfig.get().overrides.task)
        try:
            code = execute(cfg, overrides)
        except RecforgeError as error:
            code = report_error(error)
        if code:
            sys.exit(code)

    sys.argv = [sys.argv[0], *args]
    task()
    return 0


if __name__ == "__main__":
    sys.exit(main())
