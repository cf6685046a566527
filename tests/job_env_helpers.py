"""Running recforge's runners under the job's locked versions (``RECFORGE_JOB_PYTHON``).

``.ci/run`` builds that environment (``.venv-job``: CPython 3.11 with exactly
``compiler/cloud/job-requirements.lock``) and points ``RECFORGE_JOB_PYTHON`` at its
interpreter. recforge itself is taken from this checkout (``PYTHONPATH``), as the job would
import it from the installed sdist.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB_PYTHON_VARIABLE = "RECFORGE_JOB_PYTHON"


def job_python() -> str:
    """The job environment's interpreter, or skip saying why (CI never skips: .ci/run fails)."""
    import pytest  # this module is also imported inside the job environment, without pytest

    path = os.environ.get(JOB_PYTHON_VARIABLE)
    if not path:
        pytest.skip(f"{JOB_PYTHON_VARIABLE} is not set: no environment with the job's locked "
                    "versions (.ci/run builds one; see README, Development)")
    if not Path(path).is_file():
        pytest.fail(f"{JOB_PYTHON_VARIABLE}={path}: no such interpreter")
    return path


def run_in_job_env(args: list[str], *, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([job_python(), *args], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT, env=env)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


TRANSFORM_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from compiler.runner.transform import run_transform
from tests.tiny_data import RAW_SCHEMA, split
import tests.job_env_helpers as helpers
frame = helpers.transactions({rows}, {products})
run_transform(split(frame), RAW_SCHEMA, Path({module!r}), {output!r})
"""


def transactions(rows: int, products: int, seed: int = 3):  # noqa: ANN201 - pandas optional
    """tests.tiny_data's shape of data with a chosen number of products."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    customers = max(60, rows // 20)
    segment = rng.integers(0, 3, customers)
    value = rng.lognormal(3.0, 0.6, customers).astype(np.float32)
    category = np.arange(products) % 3
    sub = category * 4 + rng.integers(0, 4, products)
    price = rng.lognormal(1.0, 0.5, products)
    buyer = rng.integers(0, customers, rows)
    # Each customer prefers a few products of their segment, so retrieval has signal.
    favourites = [rng.choice(np.flatnonzero(category == segment[c]), 5) for c in range(customers)]
    same = rng.random(rows) < 0.8
    product = np.where(same, [rng.choice(favourites[b]) for b in buyer],
                       rng.integers(0, products, rows))
    start = 1_672_531_200  # 2023-01-01
    date = start + rng.integers(0, 730, rows) * 86_400
    sales = price[product] * np.sqrt(value[buyer]) * rng.lognormal(0.0, 0.2, rows)
    return pd.DataFrame({
        "customer_id": [f"C{b:03d}" for b in buyer],
        "date": date.astype(np.int64),
        "cust_value": value[buyer],
        "product_id": [f"P{p:04d}" for p in product],
        "category": [f"cat{c}" for c in category[product]],
        "sub_category": [f"sub{s:02d}" for s in sub[product]],
        "sales": sales.astype(np.float32),
    })


def transform_in_job_env(module: Path, output: Path, rows: int = 1500,
                         products: int = 90) -> None:
    """tf.Transform (Beam DirectRunner) under the job's versions, on data made here."""
    run_in_job_env(["-c", TRANSFORM_SCRIPT.format(
        root=str(ROOT), rows=rows, products=products, module=str(module), output=str(output))])


def train_in_job_env(trainer: Path, transform_dir: Path, output_dir: Path,
                     custom_config: dict) -> dict:
    """``python -m compiler.runner.job`` under the job's versions; the metrics it wrote."""
    run_in_job_env(["-m", "compiler.runner.job", "--trainer-module", str(trainer),
                    "--transform-dir", str(transform_dir), "--output-dir", str(output_dir),
                    "--custom-config", json.dumps(custom_config)])
    return json.loads((output_dir / "model_run" / "training_metrics.json").read_text())


def serve_in_job_env(serving_model: Path, preload: tuple[str, ...] = ()) -> dict:
    """Load the SavedModel in a fresh job-env process and call every signature.

    ``preload``: modules a server must import first to register custom ops (``scann``: its
    ``Scann>*`` ops are not in TensorFlow, and loading fails without them).
    """
    probe = str(ROOT / "tests" / "serving_probe.py")
    script = (f"import runpy, sys\n{''.join(f'import {name}' + chr(10) for name in preload)}"
              f"sys.argv = [{probe!r}, {str(serving_model)!r}]\n"
              f"runpy.run_path({probe!r}, run_name='__main__')\n")
    result = run_in_job_env(["-c", script], timeout=300)
    return json.loads(result.stdout.strip().splitlines()[-1])


def job_versions() -> dict[str, str]:
    script = ("import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
              "['tensorflow', 'tf-keras', 'tensorflow-recommenders', 'tensorflow-transform', "
              "'tfx-bsl', 'scann']}))")
    out = run_in_job_env(["-c", script], timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


__all__ = ["job_python", "job_versions", "serve_in_job_env", "train_in_job_env",
           "transform_in_job_env", "transactions"]
