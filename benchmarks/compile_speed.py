"""Compile speed: in-process compile of hybrid_v1 (median of 20) and CLI wall time.

    python benchmarks/compile_speed.py [--runs 20] [--cli-runs 5]

Prints medians; targets: in-process <= 100 ms (warm <= 50 ms), CLI <= 1.5 s (<= 1.0 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    from compiler.pipeline import compile_overrides

    import_seconds = time.perf_counter() - started
    overrides = ["model=hybrid_v1", "features=cherng_v3"]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        compile_overrides(overrides, output_dir=out)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(args.runs):
            started = time.perf_counter()
            compile_overrides(overrides, output_dir=out)
            warm.append(time.perf_counter() - started)
        cli = []
        for _ in range(args.cli_runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "compiler", *overrides, f"output_dir={out}"],
                           cwd=ROOT, check=True, capture_output=True)
            cli.append(time.perf_counter() - started)
    print(f"import compiler.pipeline:        {import_seconds * 1000:8.1f} ms")
    print(f"in-process compile, cold:        {cold * 1000:8.1f} ms")
    print(f"in-process compile, warm median: {statistics.median(warm) * 1000:8.1f} ms "
          f"(of {args.runs}; target <= 100 ms, issue #8: <= 50 ms)")
    print(f"CLI wall time, median:           {statistics.median(cli) * 1000:8.1f} ms "
          f"(of {args.cli_runs}; target <= 1500 ms, issue #8: <= 1000 ms)")


if __name__ == "__main__":
    main()
