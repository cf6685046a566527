"""``run=local``: compile, load data, Transform, train, evaluate, print metrics — on one machine.

The run directory (``<runs_root>/<timestamp>-<model>__<features>-<hash>/``) holds:

    transform/            transform_graph/ + transformed_examples/Split-train|eval|test/
    serving_model/        the SavedModel
    model_run/            training_metrics.json, TensorBoard logs and HParams summaries (logs/)
    modules/              copies of the emitted modules and manifest.json
    run.json              this run's manifest; its "status" is written last
    run.log               TensorFlow, absl, Beam and Keras output (unless --verbose)

A run is complete only when ``run.json`` says ``"status": "completed"``; a failure or Ctrl-C
leaves ``failed`` / ``interrupted`` there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from compiler import __version__
from compiler.core.emit import emit
from compiler.core.pipeline import CompileResult
from compiler.data import DataError, as_data_config
from compiler.errors import RecforgeError
from compiler.local.baselines import (
    baseline_columns,
    below_baseline_lines,
    best_baselines,
    compute_baselines,
)
from compiler.local.config import RUN_MANIFEST, _check_run
from compiler.local.run_logging import LOG_FILE, library_output_to, step, verbose_requested
from compiler.local.transform import (
    cached_output_matches,
    check_remote_transform_source,
    check_transform_output,
    recorded_data_hash,
    resolve_transform_source,
)
from compiler.local.workers import run_workers
from compiler.runner.fn_args import fn_args_from_transform
from compiler.runner.hparams import write_hparams
from compiler.runner.product_table import product_columns
from compiler.runner.trainer import read_metrics, run_trainer
from compiler.runner.transform import run_transform
from compiler.runner.transform_digest import DIGEST_FILE, record_text
from compiler.schema import LocalRunConfig

CONTRACT_METRICS = (
    "loss", "val_rmse", "val_mae", "test_rmse", "test_mae",
    "recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100",
)
#: Bumped when the Transform runner's output could change for the same inputs.
#: 2: every entry holds the Transform settings record (recforge_transform.json).
TRANSFORM_CACHE_VERSION = "2"


class RunError(RecforgeError):
    """A local run cannot go on (bad data, incompatible Transform output, ...)."""


@dataclass
class LocalRunResult:
    run_dir: Path
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    transform_reused: str | None = None
    #: content hash of the loaded data (None when a reused Transform output recorded none)
    data_hash: str | None = None


def raw_schema(result: CompileResult) -> dict[str, str]:
    """Raw column -> loader kind, for every column the Transform module reads."""
    features = result.config.features
    schema = {f.name: f.dtype.value for f in [*features.buyer, *features.product]}
    if features.target is not None:
        schema[features.target.column] = "float"
    return schema


def _transform_kinds(schema: Mapping[str, str]) -> dict[str, str]:
    # The Transform reads timestamps as int64 Unix seconds.
    return {name: "int" if kind == "timestamp" else kind for name, kind in schema.items()}


# --------------------------------------------------------------------------- run manifest


def _write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(temporary, path)


@contextlib.contextmanager
def _run_manifest(run_dir: Path, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Keeps ``run.json`` honest: running while the body runs, completed only if it returns."""
    state = {**base, "status": "running", "started": _now()}
    _write_json_atomic(run_dir / RUN_MANIFEST, state)
    try:
        yield state
    except KeyboardInterrupt:
        _write_json_atomic(run_dir / RUN_MANIFEST, {**state, "status": "interrupted",
                                                     "finished": _now()})
        raise
    except BaseException as error:
        _write_json_atomic(run_dir / RUN_MANIFEST, {
            **state, "status": "failed", "error": f"{type(error).__name__}: {error}",
            "finished": _now()})
        raise
    # Written last: everything the manifest points at exists by now.
    _write_json_atomic(run_dir / RUN_MANIFEST, {**state, "status": "completed",
                                                 "finished": _now()})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- transform


def data_fingerprint(splits: Mapping[str, Any]) -> str:
    """Content hash of the loaded splits (row order and values)."""
    # lazy: pandas: loading data for a run only
    import pandas as pd

    digest = hashlib.sha256()
    for name in sorted(splits):
        frame = splits[name]
        digest.update(name.encode())
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def transform_cache_key(splits: Mapping[str, Any], transform_source: str, *,
                        data_hash: str | None = None) -> str:
    """Cache key of a Transform output: the data's content hash (``data_hash`` when the caller
    has it already) and the Transform module's source."""
    digest = hashlib.sha256()
    for part in (TRANSFORM_CACHE_VERSION, data_hash or data_fingerprint(splits),
                 transform_source):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


# --------------------------------------------------------------------------- the run


def run_local(result: CompileResult, cfg: DictConfig, *, console: Any = None) -> LocalRunResult:
    """Run the compiled modules end to end; see the module docstring for the layout.

    Library output goes to ``<run_dir>/run.log`` unless ``run.verbose`` or ``--verbose``.
    """
    config = result.config
    # The preflight ran this already; again here because it is cheap and the settings that
    # could not be verified are printed below.
    settings, unverified = _check_run(cfg.run, config)
    verbose = verbose_requested(settings.verbose)
    started = datetime.now(timezone.utc)
    name = settings.name or (
        f"{started:%Y%m%d-%H%M%S}-{config.model.name}__{config.features.name}-"
        f"{config.config_hash[:8]}"
    )
    runs_root = Path(settings.runs_root).expanduser().resolve()
    run_dir = runs_root / name
    if settings.name is None:  # two runs started in the same second get distinct directories
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = runs_root / f"{name}-{suffix}"
    run_dir.mkdir(parents=True, exist_ok=True)
    _copy_modules(result, run_dir / "modules")
    log_path = None if verbose else run_dir / LOG_FILE
    with library_output_to(log_path) as stream:
        console = console or Console(file=stream, soft_wrap=True)
        if log_path is not None:
            console.print(f"  library logs (TensorFlow, Beam, Keras): {log_path} "
                          "(--verbose shows them here)", highlight=False)
        run = _Run(result, cfg, settings, run_dir, console, partial_lines=not verbose)
        outcome = run.execute(unverified)
    return outcome


class _Run:
    """One local run's steps, sharing the console, timings and settings."""

    def __init__(self, result: CompileResult, cfg: DictConfig, settings: LocalRunConfig,
                 run_dir: Path, console: Any, *, partial_lines: bool) -> None:
        self.result, self.cfg, self.settings = result, cfg, settings
        self.run_dir, self.console = run_dir, console
        self.partial_lines = partial_lines
        self.timings: dict[str, float] = {}

    def step(self, label: str) -> contextlib.AbstractContextManager[None]:
        return step(self.console, label, self.timings, partial_lines=self.partial_lines)

    def execute(self, unverified: list[str]) -> LocalRunResult:
        result, config, run_dir = self.result, self.result.config, self.run_dir
        base = {"config_hash": config.config_hash, "model": config.model.name,
                "features": config.features.name, "run_dir": str(run_dir)}
        with _run_manifest(run_dir, base) as state:
            transform_dir, reused, data_hash = self._transform(unverified)
            state["transform"] = {"dir": transform_dir, "reused": reused}
            state["data_hash"] = data_hash
            metrics = self._train(transform_dir)
            if self.settings.baselines:
                with self.step("baselines"):
                    required = result.plan.required_features()
                    metrics["baselines"] = compute_baselines(
                        transform_dir, required, baseline_columns(config, required),
                        config.model.top_k, retrieval=config.has_retrieval,
                        regression=config.has_ranking,
                        protocol=config.model.eval_protocol)
                metrics["best_baseline"] = best_baselines(metrics["baselines"])
            metrics["timings"] = self.timings
            _write_json_atomic(run_dir / "model_run" / "training_metrics.json", metrics)
            if self.settings.workers == 1:  # with workers, the chief's job wrote them
                write_hparams(str(run_dir / "model_run"), result.manifest, metrics,
                              {"epochs": self.settings.epochs,
                               "batch_size": self.settings.batch_size})
            state["metrics"] = {k: metrics["final"].get(k) for k in CONTRACT_METRICS
                                if k in metrics["final"]}
            state["timings"] = self.timings
        print_metrics_table(self.console, metrics, run_dir)
        return LocalRunResult(run_dir, metrics, self.timings, reused, data_hash)

    def _transform(self, unverified: list[str]) -> tuple[str, str | None, str | None]:
        """(Transform output directory, what was reused or None, content hash of the data)."""
        result, settings, console = self.result, self.settings, self.console
        required = result.plan.required_features()
        if settings.transform_from:
            source = resolve_transform_source(str(Path(settings.transform_from).expanduser())
                                              if "://" not in settings.transform_from
                                              else settings.transform_from)
            with self.step(f"check Transform output at {source}"):
                if "://" in source:
                    unverified = check_remote_transform_source(source, result.config)
                check_transform_output(source, required)
            if unverified:
                console.print(f"  not verifiable without a {DIGEST_FILE} (a platform "
                              f"Transform output): {', '.join(unverified)}", highlight=False)
            console.print(f"  reusing Transform output: {source} (Transform skipped)",
                          highlight=False)
            return source, source, (recorded_data_hash(source) if "://" not in source
                                    else None)

        if self.cfg.get("data") is None:
            raise RunError("data: no data config selected (use data=default or data=<name>)")
        try:
            with self.step("load data"):
                from compiler.data.load import load_data  # lazy: pandas and pyarrow

                loaded = load_data(as_data_config(self.cfg.data), raw_schema(result),
                                   result.config.features.target.column
                                   if result.config.features.target else None)
        except DataError as error:
            raise RunError(str(error)) from None
        console.print(f"  {loaded.summary()}", highlight=False)

        data_hash = data_fingerprint(loaded.splits)
        transform_source = result.sources["transform_module.py"]
        key = transform_cache_key(loaded.splits, transform_source, data_hash=data_hash)
        cache_root = Path(settings.cache_dir or ".recforge/transform_cache").expanduser()
        cached = cache_root.resolve() / key
        target = self.run_dir / "transform"
        if settings.transform_cache and (cached / "DONE").exists() \
                and cached_output_matches(cached, result.config):
            with self.step("reuse cached Transform output"):
                shutil.copytree(cached, target, ignore=shutil.ignore_patterns("DONE"))
            console.print(f"  Transform cache hit ({key}): same data and feature config, "
                          "Transform skipped", highlight=False)
            return str(target), str(cached), data_hash

        record = record_text(
            result.config.features, data_hash=data_hash, recforge_version=__version__,
            transform_module_sha256=hashlib.sha256(transform_source.encode()).hexdigest())
        module = self.run_dir / "modules" / "transform_module.py"
        beam = settings.beam
        with self.step(f"Transform (tensorflow-transform on Beam {beam.runner})"):
            run_transform(loaded.splits, _transform_kinds(raw_schema(result)), module,
                          str(target), record=record, runner=beam.runner,
                          pipeline_options=beam.options,
                          product_columns=product_columns(result.plan,
                                                          result.config.features.product_id))
        if settings.transform_cache:
            _store_in_cache(target, cached)
        return str(target), None, data_hash

    def _train(self, transform_dir: str) -> dict[str, Any]:
        custom_config: dict[str, Any] = {}
        if self.settings.epochs is not None:
            custom_config["epochs"] = self.settings.epochs
        if self.settings.batch_size is not None:
            custom_config["batch_size"] = self.settings.batch_size
        module = self.run_dir / "modules" / "trainer_module.py"
        if self.settings.workers > 1:  # one cluster of processes; the chief writes the metrics
            with self.step(f"train and evaluate (run_fn, {self.settings.workers} workers)"):
                fn_args = fn_args_from_transform(transform_dir, str(self.run_dir),
                                                 custom_config)
                run_workers(["--trainer-module", str(module), "--transform-dir", transform_dir,
                             "--output-dir", str(self.run_dir),
                             "--custom-config", json.dumps(custom_config)],
                            self.settings.workers, self.run_dir)
                return read_metrics(fn_args.model_run_dir)
        # fn_args inside the step: finding the split files imports TensorFlow, part of the
        # training's time on a run that reuses the Transform output.
        with self.step("train and evaluate (run_fn)"):
            fn_args = fn_args_from_transform(transform_dir, str(self.run_dir), custom_config)
            return run_trainer(module, fn_args)


def _copy_modules(result: CompileResult, target: Path) -> None:
    emit(result.sources, result.manifest, target)


def _store_in_cache(source: Path, cached: Path) -> None:
    staging = cached.with_name(f".{cached.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    (staging / "DONE").write_text("")
    if cached.exists() and not (cached / DIGEST_FILE).exists():
        # An entry stored without a settings record (an older recforge, a benchmark) can
        # never be reused; make room for this one.
        shutil.rmtree(cached, ignore_errors=True)
    try:
        os.replace(staging, cached)
    except OSError:  # another run stored the same key first; theirs is as good as ours
        shutil.rmtree(staging, ignore_errors=True)


def print_metrics_table(console: Any, metrics: Mapping[str, Any], run_dir: Path) -> None:
    """Every final metric the model wrote beside the best baseline for it (``best_baseline``,
    else computed from ``baselines``), then one ``below baseline:`` line per metric where the
    model is worse than that baseline."""
    # lazy: rich tables: printed only at the end of a run or sweep
    from rich.table import Table

    final = {key: value for key, value in metrics.get("final", {}).items()
             if isinstance(value, (int, float))}
    # The contract's nine first, in their order; then the rest with K in numeric order.
    final = {key: final[key] for key in sorted(final, key=_metric_order)}
    best = metrics.get("best_baseline") or best_baselines(metrics.get("baselines", {}))
    table = Table(title=f"{metrics.get('model_type', '')} — final metrics")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("best baseline", justify="right")
    table.add_column("baseline is", style="dim")
    for key, value in final.items():
        baseline = best.get(key)
        table.add_row(key, f"{value:.4f}",
                      "" if baseline is None else f"{baseline['value']:.4f}",
                      "" if baseline is None else baseline["name"])
    console.print(table)
    for line in below_baseline_lines(final, best):
        console.print(line, style="bold yellow", highlight=False)
    if metrics.get("test_split") != "found":
        console.print("[bold red]No test split: test metrics were not computed.[/]")
    if metrics.get("eval_split") == "absent":  # a two-way split: val_* are absent, not zero
        console.print("No eval split (two-way split): val_* metrics were not computed.")
    console.print(f"run directory: {run_dir}")


def _metric_order(key: str) -> tuple[int, list[Any]]:
    if key in CONTRACT_METRICS:
        return CONTRACT_METRICS.index(key), []
    return len(CONTRACT_METRICS), [int(part) if part.isdigit() else part
                                   for part in re.split(r"(\d+)", key)]
