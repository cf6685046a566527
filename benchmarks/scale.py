"""Scale benchmark (issue #15): Transform, one training epoch, candidates and Recall@K on the
embedded dataset at ×1, ×10 and ×100 (``data.scale``: 15k / 150k / 1.5M lines).

    python benchmarks/scale.py [--scales 1,10,100] [--no-write]

Every step runs in a fresh process (``--step``), so its peak RSS (``getrusage``'s
``ru_maxrss``) is its own and not an earlier step's:

- transform: loads the data (``data.scale``) and runs ``compiler.runner.transform.
  run_transform`` with the emitted Transform module of ``model=hybrid_v1 features=cherng_v3``;
- train: the emitted trainer module (default performance switches, as ``run=local`` trains):
  ``_input_fn``, ``RecommenderModel``, one epoch of ``fit``; the weights are saved;
- candidates and recall: the same model compiled with ``model.performance.cache=false`` (no
  split is kept in memory), its weights loaded. Candidates: the module's candidate function,
  saved to disk; recall: the module's ``_evaluate_recall`` on the test split with the saved
  candidates. At ``--lines-check-scale`` (x10) recall also runs over the train split (8x the
  test lines, the same candidates): whether the evaluation's memory follows lines or products.

The growth exponent between two sizes is ``log(y2 / y1) / log(n2 / n1)``: 1 is linear, 0 flat.
Lines and products both grow tenfold a step, so the exponent alone cannot tell which one memory
follows; the train-split recall run (lines x8, products x1) does. Recall@K's work is test
lines x candidates, so its time is also given against those pairs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import ROOT  # noqa: E402
from results import update_section, write_summary  # noqa: E402

SELECTION = ("model=hybrid_v1", "features=cherng_v3", "data=default")
#: The candidate and evaluation steps keep no split in memory (``CACHE_DATASETS = False``).
STREAMING = ("model.performance.cache=false", "model.performance.steps_per_execution=1")
STEPS = ("transform", "train", "candidates", "recall")
#: Peak RSS goal of the candidate and evaluation steps at ×100 (issue #15).
RSS_GOAL_MB = 4096.0


# --------------------------------------------------------------------------- pure parts


def growth_exponent(n1: float, y1: float, n2: float, y2: float) -> float:
    """``log(y2 / y1) / log(n2 / n1)``: how ``y`` grows with ``n`` between two sizes (1: linear,
    0: flat, 2: quadratic)."""
    if min(n1, n2, y1, y2) <= 0 or n1 == n2:
        raise ValueError(f"growth exponent needs positive values and two sizes, got "
                         f"n={n1}, {n2}, y={y1}, {y2}")
    return math.log(y2 / y1) / math.log(n2 / n1)


def results_table(runs: list[dict[str, Any]]) -> str:
    """One row per (scale, step): seconds, rows/s, peak RSS, the RSS above the process's
    baseline, and the exponents against the previous scale."""
    lines = ["| scale | step | lines | products | rows | seconds | rows/s | peak RSS, MB | "
             "step's own RSS, MB | time exp. (lines) | RSS exp. (lines) | RSS exp. (products) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    previous: dict[str, dict[str, Any]] = {}
    for run in runs:
        for step in STEPS:
            measured = run["steps"].get(step)
            if measured is None:
                continue
            exponents = ["—", "—", "—"]
            before = previous.get(step)
            if before is not None:
                exponents = [
                    f"{growth_exponent(before[n], before[y], run[n], measured[y]):.2f}"
                    for n, y in (("lines", "seconds"), ("lines", "peak_rss_mb"),
                                 ("products", "peak_rss_mb"))
                ]
            lines.append(
                f"| x{run['scale']} | {step} | {run['lines']:,} | {run['products']:,} | "
                f"{measured['rows']:,} | {measured['seconds']:.1f} | "
                f"{measured['rows'] / measured['seconds']:,.0f} | {measured['peak_rss_mb']:,.0f} | "
                f"{measured['peak_rss_mb'] - measured['baseline_rss_mb']:,.0f} | "
                + " | ".join(exponents) + " |")
            previous[step] = {"lines": run["lines"], "products": run["products"], **measured}
    return "\n".join(lines)


# --------------------------------------------------------------------------- one step (child)


def _peak_rss_mb() -> float:
    """This process's peak resident set (Linux reports KiB), its children's included."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _compiled(modules: Path, overrides: tuple[str, ...], *, write: bool = True) -> Any:
    from compiler.core.compose import compose
    from compiler.core.pipeline import compile_config

    selection = [*SELECTION, *overrides]
    return compile_config(compose(selection), output_dir=modules, overrides=selection,
                          write=write)


def _trainer(modules: Path) -> Any:
    from compiler.runner._modules import load_module_from_path

    return load_module_from_path(modules / "trainer_module.py", prefix="scale_trainer")


def step_transform(scale: int, work: Path) -> dict[str, Any]:
    from compiler.core.compose import compose
    from compiler.data import as_data_config, load_data
    from compiler.local.run import _transform_kinds, raw_schema
    from compiler.runner.transform import run_transform

    result = _compiled(work / "modules", (f"data.scale={scale}",), write=False)
    # lazy: what run_transform imports first, so the baseline holds the libraries, not the data
    import apache_beam  # noqa: F401
    import tensorflow_transform  # noqa: F401

    baseline = _current_rss_mb()
    started = time.perf_counter()
    data = compose([*SELECTION, f"data.scale={scale}"]).data
    target = result.config.features.target.column
    loaded = load_data(as_data_config(data), raw_schema(result), target)
    load_seconds = time.perf_counter() - started
    keywords: dict[str, Any] = {}
    if "product_columns" in inspect.signature(run_transform).parameters:
        # As run=local asks for it: the per-product table the candidates are read from.
        from compiler.runner.product_table import product_columns

        keywords["product_columns"] = product_columns(result.plan,
                                                      result.config.features.product_id)
    artifacts = run_transform(loaded.splits, _transform_kinds(raw_schema(result)),
                              work / "modules" / "transform_module.py",
                              str(work / "transform"), **keywords)
    products = set().union(*(set(split["product_id"]) for split in loaded.splits.values()))
    sizes = {"split_rows": artifacts.rows, "products": len(products)}
    (work / "sizes.json").write_text(json.dumps(sizes))
    return {"rows": sum(artifacts.rows.values()), "seconds": artifacts.wall_seconds,
            "load_seconds": load_seconds, "baseline_rss_mb": baseline,
            "product_table": "product_columns" in keywords}


def _datasets(trainer: Any, work: Path) -> tuple[Any, Any, dict[str, list[str]]]:
    from compiler.runner.fn_args import fn_args_from_transform

    fn_args = fn_args_from_transform(str(work / "transform"), str(work / "run"))
    output = trainer.tft.TFTransformOutput(fn_args.transform_output)
    files = {"train": fn_args.train_files, "eval": fn_args.eval_files,
             "test": trainer._test_split_files(fn_args.train_files)}
    return fn_args, output, files


def step_train(scale: int, work: Path) -> dict[str, Any]:
    del scale
    trainer = _trainer(work / "modules")
    tf = trainer.tf
    _, output, files = _datasets(trainer, work)
    tf.keras.utils.set_random_seed(trainer.SEED)
    baseline = _current_rss_mb()
    started = time.perf_counter()
    # As run_fn trains (model.distribution none): the model, its optimizer, every variable
    # created before fit, then one epoch.
    train = trainer._input_fn(files["train"], output, trainer.BATCH_SIZE, shuffle=True)
    model = trainer.RecommenderModel(output)
    model.compile(optimizer=trainer._make_optimizer(),
                  steps_per_execution=trainer.STEPS_PER_EXECUTION,
                  jit_compile=trainer.JIT_COMPILE)
    model.compute_loss(next(iter(train)))
    model.optimizer.build(model.trainable_variables)
    fit_started = time.perf_counter()
    history = model.fit(train, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    model.save_weights(str(work / "weights" / "model"))
    # What the restored model must reproduce (checked by the candidate step).
    probe = _probe_batch(trainer, output, files)
    np.save(work / "probe.npy", model.product_tower(probe, training=False).numpy())
    rows = json.loads((work / "sizes.json").read_text())["split_rows"]["train"]
    return {"rows": rows, "seconds": seconds, "fit_seconds": time.perf_counter() - fit_started,
            "loss": float(history.history["loss"][-1]), "baseline_rss_mb": baseline}


def _probe_batch(trainer: Any, output: Any, files: dict[str, list[str]]) -> Any:
    """The first 256 test examples in file order (read apart from ``_input_fn``, whose cache
    would hold the whole split)."""
    tf = trainer.tf
    paths = sorted(path for pattern in files["test"] for path in tf.io.gfile.glob(pattern))
    records = tf.data.TFRecordDataset(paths, compression_type="GZIP").take(256).batch(256)
    return tf.io.parse_example(next(iter(records)), output.transformed_feature_spec())


def _restored_model(trainer: Any, output: Any, files: dict[str, list[str]], work: Path) -> Any:
    """The trained model in a fresh process: built on a probe batch, weights loaded, and
    checked to embed the probe as the trained model did."""
    model = trainer.RecommenderModel(output)
    probe = _probe_batch(trainer, output, files)
    model.compute_loss(probe)
    model.load_weights(str(work / "weights" / "model")).expect_partial()
    restored = model.product_tower(probe, training=False).numpy()
    if not np.allclose(restored, np.load(work / "probe.npy"), atol=1e-5):
        raise RuntimeError("the restored weights do not reproduce the trained model")
    return model


def step_candidates(scale: int, work: Path) -> dict[str, Any]:
    del scale
    trainer = _trainer(work / "modules_streaming")
    assert not trainer.CACHE_DATASETS
    fn_args, output, files = _datasets(trainer, work)
    model = _restored_model(trainer, output, files, work)
    baseline = _current_rss_mb()
    started = time.perf_counter()
    # The splits are read only where the Transform wrote no product table (datasets are lazy).
    datasets = [trainer._input_fn(files[split], output, trainer.BATCH_SIZE)
                for split in ("train", "eval", "test")]
    candidates = trainer._unique_candidates(model, datasets, output)
    seconds = time.perf_counter() - started
    del fn_args
    if "rows_read" in candidates:
        rows = candidates["rows_read"]
        source = {"product_table": "the Transform's product table",
                  "splits": "every split's lines"}.get(candidates["source"], candidates["source"])
    else:  # before the product table (issue #15): every split's lines, concatenated
        rows, source = candidates["transactions"], "every split's lines"
    saved = {key: value.numpy() if hasattr(value, "numpy") else value
             for key, value in candidates.items()}
    with open(work / "candidates.pkl", "wb") as handle:
        pickle.dump(saved, handle)
    return {"rows": int(rows), "seconds": seconds, "candidates": int(candidates["count"]),
            "source": source, "baseline_rss_mb": baseline}


def step_recall(scale: int, work: Path, split: str = "test") -> dict[str, Any]:
    del scale
    trainer = _trainer(work / "modules_streaming")
    tf = trainer.tf
    assert not trainer.CACHE_DATASETS
    _, output, files = _datasets(trainer, work)
    model = _restored_model(trainer, output, files, work)
    with open(work / "candidates.pkl", "rb") as handle:
        saved = pickle.load(handle)
    candidates = {key: tf.constant(value) if hasattr(value, "dtype") else value
                  for key, value in saved.items()}
    dataset = trainer._input_fn(files[split], output, trainer.BATCH_SIZE)
    baseline = _current_rss_mb()
    started = time.perf_counter()
    recall = trainer._evaluate_recall(model, dataset, candidates)
    seconds = time.perf_counter() - started
    rows = json.loads((work / "sizes.json").read_text())["split_rows"][split]
    return {"rows": rows, "seconds": seconds, "recall": recall, "split": split,
            "baseline_rss_mb": baseline}


def run_child(argv: list[str]) -> None:
    """``--step NAME --scale N --work DIR [--split S]``: one step; its figures as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", choices=STEPS, required=True)
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # Beam's PipelineOptions would parse this script's flags
    step = {"transform": step_transform, "train": step_train,
            "candidates": step_candidates}.get(args.step)
    figures = (step(args.scale, args.work) if step is not None
               else step_recall(args.scale, args.work, args.split))
    figures["peak_rss_mb"] = _peak_rss_mb()
    print("SCALE-RESULT " + json.dumps(figures, default=str))


# --------------------------------------------------------------------------- orchestration


def _child(step: str, scale: int, work: Path, *extra: str) -> dict[str, Any]:
    environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--step", step, "--scale", str(scale), "--work", str(work),
         *extra], cwd=ROOT, capture_output=True, text=True, env=environment)
    marked = [line for line in completed.stdout.splitlines()
              if line.startswith("SCALE-RESULT ")]
    if completed.returncode != 0 or not marked:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-30:])
        raise RuntimeError(f"step {step} at x{scale} failed ({completed.returncode}):\n{tail}")
    figures = json.loads(marked[-1].removeprefix("SCALE-RESULT "))
    figures["process_seconds"] = time.perf_counter() - started
    print(f"x{scale} {step}{' ' + ' '.join(extra) if extra else ''}: "
          f"{figures['seconds']:.1f} s, peak {figures['peak_rss_mb']:.0f} MB", flush=True)
    return figures


def measure(scale: int, scratch: Path, *, with_train_split: bool) -> dict[str, Any]:
    from compiler.data import synthetic

    work = scratch / f"x{scale}"
    _compiled(work / "modules", ())
    _compiled(work / "modules_streaming", STREAMING)
    synthetic.ensure_cached(scale=scale)  # generating the data is not a step being measured
    steps = {"transform": _child("transform", scale, work)}
    sizes = json.loads((work / "sizes.json").read_text())
    steps["train"] = _child("train", scale, work)
    steps["candidates"] = _child("candidates", scale, work)
    steps["recall"] = _child("recall", scale, work)
    extra = _child("recall", scale, work, "--split", "train") if with_train_split else None
    return {"scale": scale, "lines": sum(sizes["split_rows"].values()),
            "products": sizes["products"], "steps": steps, "recall_on_train": extra}


def _pairs(run: dict[str, Any]) -> float:
    """(test line, candidate) pairs Recall@K scores at one scale: its work."""
    return run["steps"]["recall"]["rows"] * run["steps"]["candidates"]["candidates"]


def verdicts(runs: list[dict[str, Any]]) -> list[str]:
    """The issue's goals, each stated as met or not, from the measured runs."""
    lines = []
    pairs = list(zip(runs, runs[1:], strict=False))
    worst = {step: max(growth_exponent(a["lines"], a["steps"][step]["seconds"], b["lines"],
                                       b["steps"][step]["seconds"]) for a, b in pairs)
             for step in STEPS} if pairs else {}
    if worst:
        slow = [step for step, value in worst.items() if value > 1.1]
        by_pairs = max(growth_exponent(_pairs(a), a["steps"]["recall"]["seconds"], _pairs(b),
                                       b["steps"]["recall"]["seconds"]) for a, b in pairs)
        lines.append(
            "- **Time at most linear in the rows**: "
            + ("met" if not slow else f"NOT met for {', '.join(slow)}")
            + " (largest exponent against the lines, per step: "
            + ", ".join(f"{step} {value:.2f}" for step, value in worst.items())
            + "; above 1.1 counts as worse than linear). Recall@K ranks every test line "
            f"against every candidate, so its work is lines x products, which both grow "
            f"tenfold a step: against (test line, candidate) pairs its exponent is "
            f"{by_pairs:.2f}.")
    checked = next((run for run in runs if run.get("recall_on_train")), None)
    if checked is not None:
        extra, test = checked["recall_on_train"], checked["steps"]["recall"]
        ratio_lines = extra["rows"] / test["rows"]
        ratio_rss = extra["peak_rss_mb"] / test["peak_rss_mb"]
        # Met when the peak grows by less than a tenth of the lines' growth.
        follows = ratio_rss < 1.0 + 0.1 * (ratio_lines - 1.0)
        lines.append(
            f"- **Evaluation memory follows products, not lines**: "
            f"{'met' if follows else 'NOT met'} at x{checked['scale']}: Recall@K over the train "
            f"split ({extra['rows']:,} lines, x{ratio_lines:.1f} the test split's) peaks at "
            f"{extra['peak_rss_mb']:,.0f} MB against {test['peak_rss_mb']:,.0f} MB "
            f"(x{ratio_rss:.2f}) with the same {checked['products']:,} products "
            f"({extra['seconds']:.0f} s against {test['seconds']:.0f} s).")
    largest = runs[-1]
    candidates = largest["steps"]["candidates"]
    lines.append(
        f"- **Candidates follow products, not lines**: candidates read "
        f"{candidates['source']} ({candidates['rows']:,} rows for "
        f"{candidates['candidates']:,} candidates)"
        + (": their work grows with the log, NOT met." if candidates["rows"] > 2 *
           candidates["candidates"] else ", met."))
    peak = max(largest["steps"][step]["peak_rss_mb"] for step in ("candidates", "recall"))
    lines.append(
        f"- **Candidate and evaluation peak RSS under {RSS_GOAL_MB / 1024:.0f} GB at "
        f"x{largest['scale']}**: {'met' if peak < RSS_GOAL_MB else 'NOT met'} "
        f"({peak:,.0f} MB).")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--step" in argv:
        run_child(argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--lines-check-scale", type=int, default=10,
                        help="the scale whose Recall@K also runs over the train split (x100: "
                             "~20 min on 2 cores, as it scores every line against every "
                             "candidate)")
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md")
    parser.add_argument("--summary", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="recforge_scale_") as scratch:
        runs = [measure(scale, Path(scratch), with_train_split=scale == args.lines_check_scale)
                for scale in scales]
    body = [
        "Each step in a fresh process; peak RSS is the process's `ru_maxrss` (imports, "
        "TensorFlow and the model included); the step's own RSS is that peak less the RSS "
        "just before the step's work. Rows: transform all splits, train the train split (one "
        "epoch, its reading included), candidates the rows the candidate function reads, "
        "recall the test split. Candidates and recall run the model compiled with "
        "`model.performance.cache=false`. Exponents: log(y2/y1)/log(n2/n1) against the "
        "previous scale.", "", results_table(runs), ""]
    recalls = ", ".join(
        f"x{run['scale']} " + " / ".join(f"{v:.3f}" for v in run["steps"]["recall"]["recall"]
                                        .values()) for run in runs)
    body += [f"Recall@5/10/50/100 after one epoch (a sanity check, not a quality figure): "
             f"{recalls}.", "", *verdicts(runs)]
    text = "\n".join(body)
    if args.no_write:
        print(text)
    else:
        update_section("scale", "Scale (issue #15): x1, x10, x100", text,
                       "python benchmarks/scale.py")
    if args.summary:
        write_summary(args.summary, {"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
