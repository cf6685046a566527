"""Wall time and metrics of the main job: ``python -m compiler ... run=local``.

    python benchmarks/local_run.py                      # hybrid_v1 on the embedded default data
    python benchmarks/local_run.py --online-retail      # hybrid_v1-style on the Online Retail log

Runs the real command in a subprocess (cold: a fresh Transform cache) and records the wall
time, each step's time and the final metrics beside the baselines in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("loss", "val_rmse", "val_mae", "test_rmse", "test_mae",
           "recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--online-retail", action="store_true")
    args = parser.parse_args()
    if args.online_retail:
        name, title = "local-online-retail", "Local run: hybrid_v1 on the Online Retail log"
        selection = ["model=hybrid_v1", "features=online_retail", "data=online_retail"]
    else:
        name, title = "local-default", "Local run: hybrid_v1 on the embedded default dataset"
        selection = ["model=hybrid_v1", "features=cherng_v3"]
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "compiler", *selection, "run=local",
                   f"run.runs_root={scratch}/runs", f"run.cache_dir={scratch}/cache",
                   "run.name=bench", f"output_dir={scratch}/emitted"]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        metrics = json.loads(
            (Path(scratch) / "runs" / "bench" / "model_run" / "training_metrics.json").read_text())
    lines = [f"Wall time, whole command (cold Transform cache): **{wall:.1f} s**", ""]
    lines += ["| step | seconds |", "|---|---|"]
    lines += [f"| {step} | {seconds:.1f} |" for step, seconds in metrics["timings"].items()]
    baselines = metrics.get("baselines", {})
    lines += ["", "| metric | model | baseline |", "|---|---|---|"]
    for key in METRICS:
        if key in metrics["final"]:
            base = next((f"{v[key]:.4f} ({n})" for n, v in baselines.items() if key in v), "")
            lines.append(f"| {key} | {metrics['final'][key]:.4f} | {base} |")
    if "candidates" in metrics:
        c = metrics["candidates"]
        lines.append(f"\nCandidates: {c['unique_products']} unique products from "
                     f"{c['rows_read']} rows of the {c['source'].replace('_', ' ')}.")
    display = "python benchmarks/local_run.py" + (" --online-retail" if args.online_retail
                                                  else "")
    update_section(name, title, "\n".join(lines), display)


if __name__ == "__main__":
    main()
