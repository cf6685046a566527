"""Compile speed (issue #8, figure 1): in-process compile of hybrid_v1, cold and warm; the CLI
wall time; a 100-point sweep's preflight throughput.

    python benchmarks/compile_speed.py [--runs 20] [--cold-runs 5] [--cli-runs 5]
                                       [--sweep-runs 3]

- cold: the first compile in a fresh process, after ``import compiler.core.pipeline`` (median of
  ``--cold-runs`` processes; the import is reported apart);
- warm: the same compile again in that process (median of ``--runs``);
- CLI: ``python -m compiler model=hybrid_v1 features=cherng_v3`` as a user runs it (compile,
  write, record in the ledger), wall time;
- sweep: ``compiler.sweeps.sweep.preflight`` over the 100 points of ``SWEEP`` (4 model configs x 5
  learning rates x 5 batch sizes: every point composed, validated, built and checked by the
  passes, nothing written), in configs per second.

Targets: warm <= 50 ms, CLI <= 1.0 s, sweep >= 20 configs/s.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section, write_summary  # noqa: E402

OVERRIDES = ["model=hybrid_v1", "features=cherng_v3"]
SWEEP = ["model=hybrid_v1,retrieval_v1,ranking_v1,hybrid_v1",
         "model.learning_rate=0.001,0.002,0.005,0.01,0.02",
         "model.batch_size=256,512,1024,2048,4096"]


def cold_worker(out: str) -> dict[str, float]:
    started = time.perf_counter()
    from compiler.core.pipeline import compile_overrides

    imported = time.perf_counter()
    compile_overrides(OVERRIDES, output_dir=out)
    done = time.perf_counter()
    return {"import": imported - started, "cold": done - imported}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--sweep-runs", type=int, default=3)
    parser.add_argument("--summary", help="also write the figures as JSON here")
    parser.add_argument("--cold-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_worker:
        print(json.dumps(cold_worker(args.cold_worker)))
        return 0

    with tempfile.TemporaryDirectory() as out:
        ledger = f"ledger=sqlite:///{out}/ledger.db"
        colds = []
        for _ in range(args.cold_runs):
            completed = subprocess.run([sys.executable, __file__, "--cold-worker", out],
                                       cwd=ROOT, check=True, capture_output=True, text=True)
            colds.append(json.loads(completed.stdout.strip().splitlines()[-1]))
        from compiler.core.pipeline import compile_overrides
        from compiler.sweeps.sweep import preflight

        compile_overrides(OVERRIDES, output_dir=out)
        warm = []
        for _ in range(args.runs):
            started = time.perf_counter()
            compile_overrides(OVERRIDES, output_dir=out)
            warm.append(time.perf_counter() - started)
        cli = []
        for _ in range(args.cli_runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "compiler", *OVERRIDES, f"output_dir={out}",
                            ledger], cwd=ROOT, check=True, capture_output=True)
            cli.append(time.perf_counter() - started)
        sweeps = []
        for _ in range(args.sweep_runs):
            started = time.perf_counter()
            report = preflight(SWEEP)
            sweeps.append(time.perf_counter() - started)
            assert len(report.points) == 100 and not report.bad, "the sweep must be valid"

    figures = {
        "import_ms": statistics.median(c["import"] for c in colds) * 1000,
        "cold_ms": statistics.median(c["cold"] for c in colds) * 1000,
        "warm_ms": statistics.median(warm) * 1000,
        "cli_ms": statistics.median(cli) * 1000,
        "sweep_configs_per_s": 100 / statistics.median(sweeps),
    }
    rows = [
        ("import compiler.core.pipeline", f"{figures['import_ms']:.0f} ms", args.cold_runs, "—"),
        ("in-process compile, cold (first in a process)", f"{figures['cold_ms']:.0f} ms",
         args.cold_runs, "—"),
        ("in-process compile, warm", f"**{figures['warm_ms']:.0f} ms**", args.runs, "<= 50 ms"),
        ("CLI `python -m compiler model=hybrid_v1 features=cherng_v3`",
         f"**{figures['cli_ms']:.0f} ms**", args.cli_runs, "<= 1000 ms"),
        ("100-point sweep preflight (`compiler.sweeps.sweep.preflight`)",
         f"**{figures['sweep_configs_per_s']:.1f} configs/s** "
         f"({statistics.median(sweeps):.1f} s)", args.sweep_runs, ">= 20 configs/s"),
    ]
    lines = ["| figure | median | runs | target |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {runs} | {target} |" for name, value, runs, target in rows]
    lines += ["", f"Sweep: `{' '.join(SWEEP)}` (100 points, 75 distinct; every point is "
              "compiled, duplicates included)."]
    update_section("compile-speed", "Compile speed (issue #8, figure 1)", "\n".join(lines),
                   "python benchmarks/compile_speed.py")
    if args.summary:
        write_summary(args.summary, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
