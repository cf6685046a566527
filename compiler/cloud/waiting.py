"""Waiting for a submitted job: progress, timeout, Ctrl-C, the metrics it wrote, the ledger."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console

from compiler.cloud import gcs, vertex
from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.errors import SubmitError, api_errors
from compiler.cloud.job_spec import SubmitResult
from compiler.cloud.ledger_adapter import LedgerAdapter

SUCCEEDED = "JOB_STATE_SUCCEEDED"


def wait_and_read(jobs: Any, job: Any, cfg: VertexSubmitConfig, console: Console, storage: Any,
          adapter: LedgerAdapter, result: SubmitResult) -> SubmitResult:
    ident = result.job_id
    try:
        final = vertex.wait_for(jobs, job, cfg, console)
    except vertex.WaitTimeout as timeout:
        raise SubmitError(
            f"job {ident} still {vertex.state_name(timeout.job)} after "
            f"{vertex.format_elapsed(timeout.elapsed)} (submit.timeout_minutes="
            f"{cfg.timeout_minutes:g}); it keeps running and the ledger keeps it as running",
            hint=f"gcloud ai custom-jobs describe {ident} --region={cfg.region}",
            exit_code=3, job_id=ident,
        ) from None
    except KeyboardInterrupt:
        raise _interrupted(jobs, job, cfg, console, adapter, ident or "") from None
    except SubmitError as error:  # 403, 404, credentials: waiting cannot go on
        adapter.fail(error.message)
        raise

    state = vertex.state_name(final)
    result.state = state
    if state != SUCCEEDED:
        message = final.error.message if final.error and final.error.message else "(no message)"
        adapter.fail(f"{state}: {message}")
        raise SubmitError(
            f"job {ident} ended {state}: {message}\n"
            f"Its logs, with the traceback:\n  {result.logs_command}",
            exit_code=1, job_id=ident,
        )
    with api_errors("Google Cloud Storage: reading the metrics", exit_code=1):
        data = gcs.read_bytes(storage, result.plan.metrics_uri)
    if data is None:
        adapter.fail("succeeded without training_metrics.json")
        raise SubmitError(
            f"job {ident} succeeded but wrote no metrics file: {result.plan.metrics_uri} does "
            "not exist (the trainer writes training_metrics.json into model_run_dir)",
            hint=f"look at its logs: {result.logs_command}", exit_code=1, job_id=ident,
        )
    try:
        metrics = json.loads(data)
    except ValueError as error:
        adapter.fail(f"unreadable training_metrics.json: {error}")
        raise SubmitError(f"{result.plan.metrics_uri} is not JSON: {error}", exit_code=1,
                          job_id=ident) from None
    result.metrics = metrics
    adapter.complete(metrics, {
        "metrics": result.plan.metrics_uri,
        "serving_model": gcs.join(result.plan.output_dir, "serving_model"),
    })
    print_metrics(metrics, console)
    return result


def _interrupted(jobs: Any, job: Any, cfg: VertexSubmitConfig, console: Console,
                 adapter: LedgerAdapter, ident: str) -> SubmitError:
    """Ctrl-C while waiting: cancel (configured, or confirmed when interactive) or let it run."""
    cancel = cfg.cancel_on_interrupt
    if not cancel and sys.stdin.isatty() and console.is_terminal:
        # lazy: rich prompt: asked only on an interactive cancel
        from rich.prompt import Confirm

        try:
            cancel = Confirm.ask(f"\nCancel Vertex AI job {ident}?", default=False,
                                 console=console)
        except (KeyboardInterrupt, EOFError):
            cancel = False
    if not cancel:
        return SubmitError(
            f"stopped waiting; job {ident} keeps running",
            hint=f"gcloud ai custom-jobs describe {ident} --region={cfg.region}",
            exit_code=130, job_id=ident,
        )
    with api_errors(f"Vertex AI: cancelling job {ident}", exit_code=130):
        jobs.cancel(job.name)
    adapter.fail("cancelled (Ctrl-C)")
    return SubmitError(f"cancelled job {ident} (Vertex AI is stopping it)", exit_code=130,
                       job_id=ident)


def print_metrics(metrics: Mapping[str, Any], console: Console) -> None:
    final = metrics.get("final") if isinstance(metrics.get("final"), Mapping) else metrics
    # lazy: rich tables are printed only once a job has finished
    from rich.table import Table

    table = Table(title="training_metrics.json: final")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in final.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    console.print(table)
    for key in ("test_split", "candidates"):
        if key in metrics:
            console.print(f"{key}: {json.dumps(metrics[key])}", markup=False, highlight=False)


