"""The whole compiler in one place: compose -> validate -> plan -> build -> passes -> emit.

Each stage is its own module and can be called alone; ``compile_config`` only chains them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from compiler import __version__
from compiler.core.build import build
from compiler.core.codegen import module_codes
from compiler.core.compose import compose
from compiler.core.disk_cache import cached_findings
from compiler.core.emit import EmitResult, emit
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.errors import ConfigError, PassFailure, PluginError
from compiler.fragments import block_origin, unique
from compiler.fragments.registry import Registry, get_registry
from compiler.model import Plan, ResolvedConfig
from compiler.passes import PassCache, SourceError
from compiler.passes import run_passes as run_all


@dataclass(frozen=True)
class CompileResult:
    config: ResolvedConfig
    plan: Plan
    sources: dict[str, str]
    findings: tuple[Any, ...]
    manifest: dict[str, Any]
    emitted: EmitResult | None

    @property
    def errors(self) -> list[Any]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Any]:
        return [f for f in self.findings if f.severity != "error"]


#: The findings of this process's compiles, by text (``compiler.passes.runner.PassCache``):
#: a sweep's points share their unchanged files, and compiling a config again skips the passes.
PASS_CACHE = PassCache()


def run_passes(sources: dict[str, str], registry: Registry, the_plan: Plan | None = None
               ) -> list[Any]:
    """Stage 5 — the static passes over every built file: all registered ones, or with a plan,
    those that apply to it (``Registry.passes_for``: a plugin's passes run where it is used).
    Results are reused from ``PASS_CACHE`` for texts and passes this process saw before, and
    from the disk cache (``core.disk_cache``) for those an earlier command saw."""

    passes = registry.passes_for(the_plan.uses) if the_plan else registry.passes
    ordered = sorted(passes.items())
    classes = [r.cls for _, r in ordered]
    try:
        if PASS_CACHE.has(sources, classes):  # this process ran them: skip the disk
            return run_all(sources, classes, cache=PASS_CACHE)
        return cached_findings(sources, [(name, r.cls, r.provider) for name, r in ordered],
                               lambda: run_all(sources, classes, cache=PASS_CACHE))
    except SourceError:
        raise
    except Exception as error:  # a pass is plugin code: find which one crashed, and name it
        for name, registered in ordered:
            try:
                run_all(sources, [registered.cls])
            except Exception as own_error:  # noqa: BLE001 - reported below with its plugin
                provider = registered.provider
                raise PluginError(
                    f"pass '{name}' ({provider.distribution} {provider.version}) crashed: "
                    f"{type(own_error).__name__}: {own_error}"
                ) from own_error
        raise error


def compile_config(
    cfg: DictConfig,
    *,
    output_dir: Path | str | None = None,
    write: bool = True,
    overrides: Sequence[str] = (),
    registry: Registry | None = None,
    config: ResolvedConfig | None = None,
) -> CompileResult:
    """Validate, plan, build, check and (unless ``write=False``) emit one composed config.

    ``config`` is ``cfg`` already validated (by ``compiler.preflight``), so it is not
    validated twice. Raises ``ConfigError``/``PluginError`` for bad input and ``PassFailure``
    when a pass finds an error; in every failure case nothing is written.
    """
    registry = registry or get_registry()
    config = config or validate(cfg, registry)
    the_plan = plan(config, registry)
    modules = build(the_plan, registry)
    sources = module_codes(modules)
    findings = tuple(run_passes(sources, registry, the_plan))
    manifest = make_manifest(the_plan, registry, sources, findings, overrides)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        # Name the fragments (and so the plugins) whose blocks hold the errors.
        origins = unique(o for f in errors if (o := block_origin(sources.get(f.path, ""),
                                                                   f.line)))
        where = f" (in code from {'; '.join(origins)})" if origins else ""
        raise PassFailure(
            f"{len(errors)} static pass error(s) in the built modules{where}; "
            "nothing was written",
            errors,
        )
    result = CompileResult(config, the_plan, sources, findings, manifest, None)
    return write_result(result, output_dir or config.output_dir) if write else result


def write_result(result: CompileResult, output_dir: Path | str) -> CompileResult:
    """Stage 6 — emit a compiled result's files into ``output_dir`` (atomically)."""
    try:
        emitted = emit(result.sources, result.manifest, output_dir)
    except OSError as error:  # the preflight checked the directory; the disk can still refuse
        raise ConfigError("output_dir", f"expected a writable directory, got "
                          f"{error.strerror or error} ({error.filename or output_dir})") from None
    return dataclasses.replace(result, emitted=emitted)


def compile_overrides(overrides: Sequence[str] = (), **kwargs: Any) -> CompileResult:
    """Compose from ``conf/`` with Hydra overrides, then ``compile_config``."""

    return compile_config(compose(overrides), overrides=overrides, **kwargs)


def make_manifest(the_plan: Plan, registry: Registry, sources: dict[str, str],
                  findings: Sequence[Any], overrides: Sequence[str]) -> dict[str, Any]:
    config = the_plan.config
    fragments = []
    for use in the_plan.uses:
        provider = registry.fragments[(use.kind, use.name)].provider
        fragments.append({**use.to_dict(), "plugin": provider.plugin,
                          "distribution": provider.distribution, "version": provider.version})
    passes = {name: {"distribution": r.provider.distribution, "version": r.provider.version}
              for name, r in registry.passes_for(the_plan.uses).items()}
    return {
        "compiler_version": __version__,
        "config_hash": config.config_hash,
        "model": config.model.name,
        "features": config.features.name,
        "resolved_config": config.data,
        "fragments": fragments,
        "transformed_features": [
            {"name": f.name, "dtype": f.dtype, "side": f.side, "source": f.source}
            for f in the_plan.transformed_features
        ],
        "files": {name: hashlib.sha256(text.encode()).hexdigest()
                  for name, text in sorted(sources.items())},
        "passes": {
            "run": passes,
            "errors": sum(1 for f in findings if f.severity == "error"),
            "warnings": sum(1 for f in findings if f.severity != "error"),
            "findings": [f.to_dict() for f in findings],
        },
    }
