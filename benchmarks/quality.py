"""Quality against strong baselines: hybrid_v1 and hybrid_v2 beside every baseline.

    python benchmarks/quality.py                    # default synthetic data and Online Retail
    python benchmarks/quality.py --datasets default --seeds 1 2 3

Each model runs the real command, ``python -m compiler model=<m> features=<f> data=<d>
run=local model.seed=<s>``, once per seed; the baselines come from the same runs (they are
computed on the same splits, see ``compiler/local/baselines.py``) and do not depend on the
seed. The section of ``benchmarks/RESULTS.md`` it writes has one table per dataset (mean ± sd
over the seeds) and says, for Online Retail, whether hybrid_v2 beats the best baseline on
Recall@10 and Recall@100 by at least 10% relative, and the per-product mean on RMSE.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: dataset -> (feature config, data config, title)
DATASETS = {
    "default": ("cherng_v3", "default", "embedded synthetic default data"),
    "online_retail": ("online_retail", "online_retail", "Online Retail log"),
}
MODELS = ("hybrid_v1", "hybrid_v2")
#: metric -> (column title, higher is better)
METRICS = {
    "recall_at_10": ("Recall@10", True),
    "recall_at_100": ("Recall@100", True),
    "ndcg_at_10": ("NDCG@10", True),
    "test_rmse": ("RMSE", False),
}
#: Both models also run the NDCG and MRR evaluators (they change nothing in training).
EVALUATORS = "model.evaluators=[recall_at_k,ndcg,mrr,regression]"
#: The bar of issue #14 on Online Retail: relative gain over the best baseline.
REQUIRED_GAIN = 0.10


def run_model(model: str, dataset: str, seed: int, scratch: Path) -> dict:
    features, data, _ = DATASETS[dataset]
    name = f"{model}-{dataset}-{seed}"
    command = [sys.executable, "-m", "compiler", f"model={model}", f"features={features}",
               f"data={data}", "run=local", f"model.seed={seed}", EVALUATORS,
               f"run.runs_root={scratch}/runs", f"run.cache_dir={scratch}/cache",
               f"run.name={name}", f"output_dir={scratch}/emitted/{name}",
               f"ledger=sqlite:///{scratch}/ledger.db"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((scratch / "runs" / name / "model_run" / "training_metrics.json")
                         .read_text())
    metrics["wall_seconds"] = time.perf_counter() - started
    return metrics


def summary(values: list[float]) -> str:
    if not values:
        return ""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def dataset_section(dataset: str, runs: dict[str, list[dict]]) -> tuple[list[str], list[str]]:
    """(table lines, verdict lines) for one dataset's runs (model -> one metrics per seed)."""
    first = runs[MODELS[0]][0]
    baselines: dict[str, dict[str, float]] = first.get("baselines", {})
    header = "| | " + " | ".join(title for title, _ in METRICS.values()) + " |"
    lines = [header, "|---" * (len(METRICS) + 1) + "|"]
    for name, values in baselines.items():
        cells = [f"{values[m]:.4f} ± 0.0000" if m in values else "" for m in METRICS]
        lines.append(f"| baseline: {name} | " + " | ".join(cells) + " |")
    for model in MODELS:
        cells = [summary([r["final"][m] for r in runs[model] if m in r["final"]])
                 for m in METRICS]
        lines.append(f"| **{model}** | " + " | ".join(cells) + " |")
    verdicts = []
    for metric, (title, higher) in METRICS.items():
        scored = {n: v[metric] for n, v in baselines.items() if metric in v}
        if not scored:
            continue
        best = (max if higher else min)(scored, key=scored.get)
        model_mean = statistics.mean(r["final"][metric] for r in runs["hybrid_v2"])
        gain = (model_mean / scored[best] - 1) if higher else (1 - model_mean / scored[best])
        verdicts.append(f"- {title}: hybrid_v2 {model_mean:.4f} against the best baseline, "
                        f"{best} {scored[best]:.4f}: {gain:+.1%}")
    return lines, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = parser.parse_args()
    body: list[str] = [
        f"Seeds {', '.join(map(str, args.seeds))} (`model.seed`); each run is the real "
        "`python -m compiler ... run=local` command. Baselines are fitted on the train split "
        "and scored on the same test lines and candidates as the models (deterministic: sd 0). "
        "Recall and NDCG over all test interactions; RMSE on the transformed target.", "",
    ]
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for dataset in args.datasets:
            runs = {model: [run_model(model, dataset, seed, scratch) for seed in args.seeds]
                    for model in MODELS}
            lines, verdicts = dataset_section(dataset, runs)
            seconds = {m: statistics.mean(r["wall_seconds"] for r in runs[m]) for m in MODELS}
            baseline_share = max(r["timings"]["baselines"] / sum(r["timings"].values())
                                 for model_runs in runs.values() for r in model_runs)
            body += [f"### {DATASETS[dataset][2]} (`data={DATASETS[dataset][1]}`)", "", *lines,
                     "", *verdicts,
                     "- mean wall time per run: " + ", ".join(
                         f"{m} {s:.0f} s" for m, s in seconds.items()),
                     f"- the baselines' share of a run's time: at most {baseline_share:.1%}", ""]
            if dataset == "online_retail":
                body += [_online_retail_verdict(runs), ""]
    update_section("quality", "Quality against baselines (issue #14)", "\n".join(body),
                   "python benchmarks/quality.py " + " ".join(
                       ["--datasets", *args.datasets, "--seeds", *map(str, args.seeds)]))


def _online_retail_verdict(runs: dict[str, list[dict]]) -> str:
    baselines = runs[MODELS[0]][0].get("baselines", {})
    checks = []
    for metric in ("recall_at_10", "recall_at_100"):
        best = max(v[metric] for v in baselines.values() if metric in v)
        mean = statistics.mean(r["final"][metric] for r in runs["hybrid_v2"])
        checks.append(mean >= best * (1 + REQUIRED_GAIN))
    rmse = statistics.mean(r["final"]["test_rmse"] for r in runs["hybrid_v2"])
    checks.append(rmse < baselines["per_product_mean"]["test_rmse"])
    verdict = "holds" if all(checks) else "does NOT hold"
    return (f"**Bar of issue #14** (hybrid_v2 >= best baseline x {1 + REQUIRED_GAIN:.2f} on "
            f"Recall@10 and Recall@100, and RMSE below per_product_mean): {verdict}.")


if __name__ == "__main__":
    main()
