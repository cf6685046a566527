"""``run=local``: compile, load data, Transform, train, evaluate, print metrics — on one machine.

The run directory (``<runs_root>/<timestamp>-<model>__<features>-<hash>/``) holds:

    transform/            transform_graph/ + transformed_examples/Split-train|eval|test/
    serving_model/        the SavedModel
    model_run/            training_metrics.json, TensorBoard logs (logs/)
    modules/              copies of the emitted modules and manifest.json
    run.json              this run's manifest; its "status" is written last

A run is complete only when ``run.json`` says ``"status": "completed"``; a failure or Ctrl-C
leaves ``failed`` / ``interrupted`` there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from compiler.errors import RecforgeError
from compiler.pipeline import CompileResult
from compiler.schema import LocalRunConfig

RUN_MANIFEST = "run.json"
CONTRACT_METRICS = (
    "loss", "val_rmse", "val_mae", "test_rmse", "test_mae",
    "recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100",
)
#: Bumped when the Transform runner's output could change for the same inputs.
TRANSFORM_CACHE_VERSION = "1"


class RunError(RecforgeError):
    """A local run cannot go on (bad data, incompatible Transform output, ...)."""


@dataclass
class LocalRunResult:
    run_dir: Path
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    transform_reused: str | None = None


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
    import pandas as pd

    digest = hashlib.sha256()
    for name in sorted(splits):
        frame = splits[name]
        digest.update(name.encode())
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def transform_cache_key(splits: Mapping[str, Any], transform_source: str) -> str:
    digest = hashlib.sha256()
    for part in (TRANSFORM_CACHE_VERSION, data_fingerprint(splits), transform_source):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def check_transform_output(transform_dir: str, required: Mapping[str, str]) -> None:
    """Refuse a Transform output that lacks a feature the trainer reads, or has another dtype."""
    from compiler.runner._tf import import_tf

    import_tf()
    import tensorflow_transform as tft

    from compiler.runner.fn_args import fn_args_from_transform

    try:
        graph = fn_args_from_transform(transform_dir, "/unused").transform_output
        spec = tft.TFTransformOutput(graph).transformed_feature_spec()
    except (FileNotFoundError, OSError, ValueError) as error:
        raise RunError(
            f"run.transform_from: no usable Transform output under {transform_dir} ({error}); "
            "expected transform_graph/ and transformed_examples/Split-train|eval|test/"
        ) from None
    problems = []
    for name, dtype in required.items():
        if name not in spec:
            problems.append(f"'{name}' is missing")
        elif spec[name].dtype.name != dtype:
            problems.append(f"'{name}' is {spec[name].dtype.name}, the trainer expects {dtype}")
    if problems:
        raise RunError(
            f"run.transform_from: the Transform output at {transform_dir} does not match the "
            f"feature config: {'; '.join(problems)}"
        )


# --------------------------------------------------------------------------- baselines


def compute_baselines(transform_dir: str, plan_required: Mapping[str, str],
                      product_key: str | None, target_key: str | None,
                      top_k: list[int]) -> dict[str, dict[str, float]]:
    """Simple baselines on the same transformed data the model saw:

    - most popular: the K most frequent training products, recommended to everyone;
    - train mean: the mean transformed target of the training split, predicted for everyone.
    """
    import numpy as np

    from compiler.runner._tf import import_tf
    from compiler.runner.fn_args import fn_args_from_transform, split_file_pattern

    tf = import_tf()
    fn_args = fn_args_from_transform(transform_dir, "/unused")
    examples = fn_args.train_files[0].rsplit("/", 2)[0]
    columns = [c for c in (product_key, target_key) if c]
    spec = {c: tf.io.FixedLenFeature([], tf.int64 if plan_required[c] == "int64"
                                     else tf.float32) for c in columns}

    def read(split: str) -> dict[str, np.ndarray]:
        pattern = split_file_pattern(examples, split)
        dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
        dataset = dataset.batch(4096).map(lambda batch: tf.io.parse_example(batch, spec))
        parts = list(dataset.as_numpy_iterator())
        return {c: np.concatenate([p[c] for p in parts]) for c in columns}

    train, test = read("train"), read("test")
    baselines: dict[str, dict[str, float]] = {}
    if product_key:
        ids, counts = np.unique(train[product_key], return_counts=True)
        ranked = ids[np.argsort(-counts, kind="stable")]
        baselines["most_popular"] = {
            f"recall_at_{k}": float(np.isin(test[product_key], ranked[:k]).mean()) for k in top_k
        }
    if target_key:
        mean = float(train[target_key].mean())
        errors = test[target_key] - mean
        baselines["train_mean"] = {
            "test_rmse": float(np.sqrt(np.mean(errors ** 2))),
            "test_mae": float(np.mean(np.abs(errors))),
        }
    return baselines


# --------------------------------------------------------------------------- the run


def run_config(cfg: DictConfig) -> LocalRunConfig:
    merged = OmegaConf.merge(OmegaConf.structured(LocalRunConfig), cfg.run)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def check_run_config(node: Any, config: Any = None) -> LocalRunConfig:
    """Preflight for the ``run`` group: every run setting checked before anything is written.
    ``config`` is the validated ``ResolvedConfig``. Raises ``ConfigError`` naming ``run.<key>``."""
    merged = OmegaConf.merge(OmegaConf.structured(LocalRunConfig), node)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def run_local(result: CompileResult, cfg: DictConfig, *, console: Any = None) -> LocalRunResult:
    """Run the compiled modules end to end; see the module docstring for the layout."""
    from rich.console import Console

    console = console or Console(soft_wrap=True)
    settings = run_config(cfg)
    config = result.config
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
    elif (run_dir / RUN_MANIFEST).exists():
        raise RunError(f"run.name: {run_dir} already holds a run; choose another name")
    run_dir.mkdir(parents=True, exist_ok=True)
    _copy_modules(result, run_dir / "modules")
    timings: dict[str, float] = {}
    base = {"config_hash": config.config_hash, "model": config.model.name,
            "features": config.features.name, "run_dir": str(run_dir)}
    with _run_manifest(run_dir, base) as state:
        transform_dir, reused = _transform_step(result, cfg, settings, run_dir, console, timings)
        state["transform"] = {"dir": transform_dir, "reused": reused}
        metrics = _train_step(result, settings, transform_dir, run_dir, console, timings)
        if settings.baselines:
            with _step(console, "baselines", timings):
                plan_features = result.plan.required_features()
                target = next((f.name for f in result.plan.transformed_features
                               if f.side == "target"), None)
                product = f"{config.features.product_id}_id" if config.has_retrieval else None
                metrics["baselines"] = compute_baselines(
                    transform_dir, plan_features, product,
                    target if config.has_ranking else None, list(config.model.top_k))
        metrics["timings"] = timings
        _write_json_atomic(run_dir / "model_run" / "training_metrics.json", metrics)
        state["metrics"] = {k: metrics["final"].get(k) for k in CONTRACT_METRICS
                            if k in metrics["final"]}
        state["timings"] = timings
    print_metrics_table(console, metrics, run_dir)
    return LocalRunResult(run_dir, metrics, timings, reused)


@contextlib.contextmanager
def _step(console: Any, label: str, timings: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    with console.status(f"[bold]{label}[/]…"):
        yield
    timings[label] = round(time.perf_counter() - started, 2)
    console.print(f"[green]✓[/] {label} [dim]({timings[label]:.1f} s)[/]")


def _copy_modules(result: CompileResult, target: Path) -> None:
    from compiler.emit import emit

    emit(result.sources, result.manifest, target)


def _transform_step(result: CompileResult, cfg: DictConfig, settings: LocalRunConfig,
                    run_dir: Path, console: Any, timings: dict[str, float]
                    ) -> tuple[str, str | None]:
    required = result.plan.required_features()
    if settings.transform_from:
        source = settings.transform_from
        if "://" not in source and not Path(source).exists():
            raise RunError(f"run.transform_from: {source} does not exist")
        if "://" not in source and (Path(source) / "transform").is_dir():
            source = str(Path(source) / "transform")  # a recforge run directory
        with _step(console, f"check Transform output at {source}", timings):
            check_transform_output(source, required)
        console.print(f"  reusing Transform output: {source} (Transform skipped)")
        return source, source

    from compiler.data import DataError, as_data_config, load_data

    if cfg.get("data") is None:
        raise RunError("data: no data config selected (use data=default or data=<name>)")
    try:
        with _step(console, "load data", timings):
            loaded = load_data(as_data_config(cfg.data), raw_schema(result),
                               result.config.features.target.column
                               if result.config.features.target else None)
    except DataError as error:
        raise RunError(str(error)) from None
    console.print(f"  {loaded.summary()}")

    transform_source = result.sources["transform_module.py"]
    key = transform_cache_key(loaded.splits, transform_source)
    cache_root = Path(settings.cache_dir or ".recforge/transform_cache").expanduser().resolve()
    cached = cache_root / key
    target = run_dir / "transform"
    if settings.transform_cache and (cached / "DONE").exists():
        with _step(console, "reuse cached Transform output", timings):
            shutil.copytree(cached, target, ignore=shutil.ignore_patterns("DONE"))
        console.print(f"  Transform cache hit ({key}): same data and feature config, "
                      "Transform skipped")
        return str(target), str(cached)

    from compiler.runner.transform import run_transform

    module = run_dir / "modules" / "transform_module.py"
    with _step(console, "Transform (tensorflow-transform on Beam DirectRunner)", timings):
        run_transform(loaded.splits, _transform_kinds(raw_schema(result)), module, str(target))
    if settings.transform_cache:
        _store_in_cache(target, cached)
    return str(target), None


def _store_in_cache(source: Path, cached: Path) -> None:
    staging = cached.with_name(f".{cached.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    (staging / "DONE").write_text("")
    try:
        os.replace(staging, cached)
    except OSError:  # another run stored the same key first; theirs is as good as ours
        shutil.rmtree(staging, ignore_errors=True)


def _train_step(result: CompileResult, settings: LocalRunConfig, transform_dir: str,
                run_dir: Path, console: Any, timings: dict[str, float]) -> dict[str, Any]:
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer

    custom_config: dict[str, Any] = {}
    if settings.epochs is not None:
        custom_config["epochs"] = settings.epochs
    if settings.batch_size is not None:
        custom_config["batch_size"] = settings.batch_size
    fn_args = fn_args_from_transform(transform_dir, str(run_dir), custom_config)
    with _step(console, "train and evaluate (run_fn)", timings):
        return run_trainer(run_dir / "modules" / "trainer_module.py", fn_args)


def print_metrics_table(console: Any, metrics: Mapping[str, Any], run_dir: Path) -> None:
    from rich.table import Table

    final = metrics.get("final", {})
    baselines = metrics.get("baselines", {})
    table = Table(title=f"{metrics.get('model_type', '')} — final metrics")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("baseline is", style="dim")
    for key in CONTRACT_METRICS:
        if key not in final:
            continue
        baseline_name, baseline_value = next(
            ((name, values[key]) for name, values in baselines.items() if key in values),
            ("", None),
        )
        table.add_row(key, f"{final[key]:.4f}",
                      "" if baseline_value is None else f"{baseline_value:.4f}", baseline_name)
    console.print(table)
    if metrics.get("test_split") != "found":
        console.print("[bold red]No test split: test metrics were not computed.[/]")
    console.print(f"run directory: {run_dir}")
