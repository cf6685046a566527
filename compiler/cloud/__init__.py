"""Vertex AI submission: stage a compiled trainer, run it as a CustomJob, read its metrics.

Never imports TensorFlow (the job does, in its own process). Google client libraries are
imported lazily, so ``import compiler.cloud`` stays cheap for the CLI.

    from compiler.cloud import VertexSubmitConfig, submit, dry_run_request, main_submit
"""

from compiler.cloud.config import VertexSubmitConfig, check_required, from_omegaconf
from compiler.cloud.errors import SubmitError
from compiler.cloud.submit import (
    DryRun,
    SubmitResult,
    dry_run_request,
    main_submit,
    print_dry_run,
    submit,
)

__all__ = [
    "DryRun",
    "SubmitError",
    "SubmitResult",
    "VertexSubmitConfig",
    "check_required",
    "dry_run_request",
    "from_omegaconf",
    "main_submit",
    "print_dry_run",
    "submit",
]
