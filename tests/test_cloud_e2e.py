"""The whole Vertex AI loop from the command line, against loopback servers:

compile hybrid_v1 -> find the source run's Transform output in "GCS" -> stage -> create the
CustomJob -> the fake Vertex runs the staged job entry point with the real emitted trainer,
which reads and writes gs:// through the TLS proxy -> wait -> fetch training_metrics.json ->
record the experiment in the ledger.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cloud.fixtures import CloudStack, cloud, fake_service_account_key, gcs_tls_proxy

from compiler.__main__ import main
from compiler.core.pipeline import compile_overrides
from compiler.ledger import Ledger
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

__all__ = ["cloud", "fake_service_account_key", "gcs_tls_proxy"]  # fixtures used by name

pytestmark = pytest.mark.slow

CONTRACT = ("loss", "val_rmse", "val_mae", "test_rmse", "test_mae",
            "recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100")


def test_submit_wait_fetch_and_record(cloud: CloudStack, tmp_path: Path, capsys) -> None:
    from compiler.runner.transform import run_transform

    # A finished experiment's Transform output, as the platform's pipeline leaves it.
    emitted = tmp_path / "emitted"
    compile_overrides(["model=hybrid_v1", "features=cherng_v3"], output_dir=emitted)
    artifacts = run_transform(split(tiny_transactions()), RAW_SCHEMA,
                              emitted / "transform_module.py", str(tmp_path / "transform"))
    cloud.upload_dir(artifacts.root, f"{cloud.pipeline_root}/qt-97-test/Transform_7")

    config = cloud.submit_config()
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    code = main([
        "model=hybrid_v1", "features=cherng_v3", "submit=vertex",
        "submit.source_exp=qt-97-test", "submit.wait=true",
        f"submit.project={config.project}", f"submit.region={config.region}",
        f"submit.staging_bucket={config.staging_bucket}",
        f"submit.pipeline_root={config.pipeline_root}",
        f"submit.api_endpoint={config.api_endpoint}",
        f"submit.executor_image={config.executor_image}", "submit.packages=[]",
        "submit.poll_initial_seconds=0.2", "submit.poll_max_seconds=1",
        "submit.timeout_minutes=8", "+submit.custom_config.epochs=1",
        "+submit.custom_config.batch_size=256",
        f"output_dir={tmp_path / 'out'}", f"ledger={ledger}",
    ])
    out = capsys.readouterr()
    jobs = list(cloud.vertex.jobs.values())
    assert code == 0, out.err + "".join(job.log[-3000:] for job in jobs)
    assert len(jobs) == 1
    with Ledger(ledger) as records:
        (experiment,) = records.list()
    assert experiment.status == "completed" and experiment.kind == "vertex"
    assert experiment.job_id
    missing = [key for key in CONTRACT if experiment.metrics.get(key) is None]
    assert not missing, missing
    assert experiment.extra["test_split"] == "found"
