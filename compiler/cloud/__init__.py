"""Vertex AI submission: stage a compiled trainer, run it as a CustomJob, read its metrics.

Never imports TensorFlow (the job does, in its own process). Google client libraries are
imported lazily, so ``import compiler.cloud`` stays cheap for the CLI.

    from compiler.cloud import VertexSubmitConfig, check_submit_config, submit, main_submit
"""

from compiler.cloud.config import (
    VertexSubmitConfig,
    check_required,
    check_submit_config,
    from_omegaconf,
)
from compiler.cloud.errors import SubmitConfigError, SubmitError
from compiler.cloud.job_spec import SubmitResult
from compiler.cloud.submit import main_submit, submit

__all__ = [
    "SubmitConfigError",
    "SubmitError",
    "SubmitResult",
    "VertexSubmitConfig",
    "check_required",
    "check_submit_config",
    "from_omegaconf",
    "main_submit",
    "submit",
]
