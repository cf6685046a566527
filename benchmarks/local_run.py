"""The main job's wall time, cold and warm, and where it goes: ``python -m compiler ... run=local``.

    python benchmarks/local_run.py [--rounds 3]          # hybrid_v1 on the embedded default data
    python benchmarks/local_run.py --online-retail       # hybrid_v1 on the Online Retail log

Each round runs the README's main job twice in fresh processes, as a user does: **cold** (an
empty Transform cache: load, Transform, train, evaluate, export) and then **warm** (the same
command again: the Transform output comes from the cache). Medians over the rounds; the
targets of issue #16 on a 2-core machine are cold <= 15 s and warm <= 8 s.

The breakdown says what the time is spent on: the steps the command itself times (its
``training_metrics.json`` ``timings``), the start-up before them (interpreter, Hydra compose,
compile, ledger), and, inside ``run_fn``, the parts of the emitted trainer timed in one more
process on the warm run's Transform output (the import of TensorFlow and TFRS; ``fit``; the
candidates and Recall@K; the regression metrics; the SavedModel export). Also measured, for
scale: ``import tensorflow, tensorflow_recommenders`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section, write_summary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("loss", "val_rmse", "val_mae", "test_rmse", "test_mae",
           "recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100")
TARGETS = {"cold": 15.0, "warm": 8.0}
TRAINER_PARTS = ("_unique_candidates", "_evaluate_recall", "_evaluate_regression",
                 "_export_serving_model")

#: Run in a fresh process: the emitted trainer's run_fn on a Transform output, each part timed
#: by wrapping the module's own functions (Model.fit by wrapping tf_keras's).
PROBE = """
import json, os, sys, time
started = time.perf_counter()
from compiler.runner._modules import load_module_from_path
from compiler.runner.fn_args import fn_args_from_transform
module_file, transform_dir, output_dir = sys.argv[1:4]
module = load_module_from_path(module_file, prefix="probe_trainer")
seconds = {"import TensorFlow, TFRS and the trainer module": time.perf_counter() - started}
def timed(name, function):
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - begun
    return wrapper
for name in %(parts)r:
    setattr(module, name, timed(name, getattr(module, name)))
import tf_keras
tf_keras.Model.fit = timed("fit", tf_keras.Model.fit)
begun = time.perf_counter()
module.run_fn(fn_args_from_transform(transform_dir, output_dir, {}))
seconds["run_fn"] = time.perf_counter() - begun
print(json.dumps(seconds))
"""


def _job(selection: list[str], scratch: Path, name: str, cache: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "compiler", *selection, "run=local",
               f"run.runs_root={scratch}/runs", f"run.cache_dir={cache}", f"run.name={name}",
               f"output_dir={scratch}/emitted", f"ledger=sqlite:///{scratch}/ledger.db"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    metrics = json.loads((scratch / "runs" / name / "model_run" / "training_metrics.json")
                         .read_text())
    return wall, metrics


def _wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    return time.perf_counter() - started


def _trainer_parts(scratch: Path, run: str) -> dict[str, float]:
    run_dir = scratch / "runs" / run
    done = subprocess.run(
        [sys.executable, "-c", PROBE % {"parts": TRAINER_PARTS},
         str(run_dir / "modules" / "trainer_module.py"), str(run_dir / "transform"),
         str(scratch / "probe")], cwd=ROOT, check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--online-retail", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--summary", help="write the headline figures here (JSON)")
    args = parser.parse_args()
    if args.online_retail:
        name, title = "local-online-retail", "Local run: hybrid_v1 on the Online Retail log"
        selection = ["model=hybrid_v1", "features=online_retail", "data=online_retail"]
    else:
        name, title = "local-default", "The main job: hybrid_v1 on the embedded default data"
        selection = ["model=hybrid_v1", "features=cherng_v3"]
    walls: dict[str, list[float]] = {"cold": [], "warm": []}
    metrics: dict = {}
    steps: dict[str, dict[str, list[float]]] = {"cold": {}, "warm": {}}
    with tempfile.TemporaryDirectory(prefix="recforge_local_run_") as tmp:
        scratch = Path(tmp)
        for round_ in range(args.rounds):
            cache = scratch / f"cache-{round_}"  # empty: the cold run fills it
            for mode in ("cold", "warm"):
                wall, metrics = _job(selection, scratch, f"{mode}-{round_}", cache)
                walls[mode].append(wall)
                steps[mode].setdefault("start-up (interpreter, compose, compile, ledger)",
                                       []).append(wall - sum(metrics["timings"].values()))
                for step, seconds in metrics["timings"].items():
                    steps[mode].setdefault(step, []).append(seconds)
            print(f"round {round_ + 1}: cold {walls['cold'][-1]:.1f} s, "
                  f"warm {walls['warm'][-1]:.1f} s", flush=True)
        parts = _trainer_parts(scratch, "warm-0")
        import_tf = statistics.median(
            _wall("import tensorflow, tensorflow_recommenders") for _ in range(3))
    median = {mode: statistics.median(values) for mode, values in walls.items()}
    lines = ["| run | wall time, median | each round | target | met |", "|---|---|---|---|---|"]
    for mode in ("cold", "warm"):
        met = "yes" if median[mode] <= TARGETS[mode] else "**no**"
        lines.append(f"| {mode} | **{median[mode]:.1f} s** | "
                     f"{', '.join(f'{w:.1f}' for w in walls[mode])} | <= {TARGETS[mode]:.0f} s "
                     f"| {met} |")
    lines += ["", "Where the time goes (medians, seconds):", "",
              "| step | cold | warm |", "|---|---|---|"]
    for step in dict.fromkeys([*steps["cold"], *steps["warm"]]):
        cells = [f"{statistics.median(steps[m][step]):.1f}" if step in steps[m] else "—"
                 for m in ("cold", "warm")]
        lines.append(f"| {step} | {cells[0]} | {cells[1]} |")
    lines += ["", "Inside `run_fn` (one more run on the warm run's Transform output, its "
              "functions timed):", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {part.lstrip('_').replace('_', ' ')} | {seconds:.2f} |"
              for part, seconds in parts.items()]
    lines += ["", f"For scale: `import tensorflow, tensorflow_recommenders` alone takes "
              f"{import_tf:.1f} s in a fresh process.", "",
              "Final metrics of the last run beside the best baseline:", "",
              "| metric | model | best baseline |", "|---|---|---|"]
    best = metrics.get("best_baseline", {})
    lines += [f"| {key} | {metrics['final'][key]:.4f} | "
              + (f"{best[key]['value']:.4f} ({best[key]['name']})" if key in best else "")
              + " |" for key in METRICS if key in metrics["final"]]
    update_section(name, title, "\n".join(lines),
                   "python benchmarks/local_run.py" + (" --online-retail"
                                                       if args.online_retail else ""))
    if args.summary:
        write_summary(args.summary, {"cold_s": median["cold"], "warm_s": median["warm"],
                                     "import_tf_s": import_tf, "trainer_parts": parts,
                                     "steps": {m: {k: statistics.median(v)
                                                   for k, v in steps[m].items()}
                                               for m in steps}})


if __name__ == "__main__":
    main()
