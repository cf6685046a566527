"""Submit a compiled trainer to Vertex AI as a CustomJob, wait for it, read its metrics back.

    from compiler.cloud import submit, main_submit, VertexSubmitConfig
    result = submit(Path("generated/hybrid_v1__cherng_v3"), cfg, plan.required_features(), ledger)

Order (each step refuses with a :class:`SubmitError` before anything is created if it can):
config values (:func:`~compiler.cloud.config.check_submit_config`, no network) -> emitted
files -> credentials -> source experiment (GCS listing) -> the Transform's schema against the
trainer's features -> no active duplicate -> build the packages (locally) -> ledger -> stage
every file under its content digest -> create the job (exactly once) -> wait -> metrics ->
ledger. ``submit.dry_run=true`` stops after the packages are built: see
:mod:`compiler.cloud.dry_run`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from compiler import __version__
from compiler.cloud import gcs, lock, vertex
from compiler.cloud.config import VertexSubmitConfig, check_replicas, check_submit_config
from compiler.cloud.dry_run import dry_run
from compiler.cloud.environment import image_warning
from compiler.cloud.errors import SubmitError
from compiler.cloud.errors import api_errors as _api_errors
from compiler.cloud.errors import one_line as _one_line
from compiler.cloud.job_spec import (
    LABEL_CONFIG_HASH,
    LABEL_SOURCE,
    LABEL_SUBMISSION,
    METRICS_PATH,
    Emitted,
    StagingPlan,
    SubmitResult,
    distribution_from_manifest,
    job_request,
    label_safe,
    new_submission_id,
    read_emitted,
    required_from_manifest,
    requirement_packages,
    source_label,
    staging_plan,
)
from compiler.cloud.ledger_adapter import LedgerAdapter
from compiler.cloud.package import build_packages, source_root
from compiler.cloud.source import application_credentials, check_source
from compiler.cloud.vertex import TERMINAL_STATES, CreateInDoubt, job_id, state_name
from compiler.cloud.waiting import wait_and_read

SUCCEEDED = "JOB_STATE_SUCCEEDED"


# ------------------------------------------------------------------------------- submission


def submit(
    emit_dir: Path | str,
    cfg: VertexSubmitConfig | Any,
    required_features: Mapping[str, str] | None = None,
    ledger: Any | None = None,
    *,
    console: Console | None = None,
    overrides: Sequence[str] = (),
    experiment_number: int | None = None,
) -> SubmitResult:
    """Submit ``emit_dir``'s trainer as a Vertex AI CustomJob (see the module docstring).

    ``required_features`` maps each transformed feature the trainer reads to its dtype
    (``int64`` / ``float32``); ``None`` takes the manifest's ``transformed_features``.
    ``ledger`` is a ``compiler.ledger.Ledger`` or ``None``; ``experiment_number`` an
    experiment the caller already recorded with ``record_compile`` (else one is recorded here,
    with ``overrides``). ``submit.dry_run=true`` prints the dry-run document instead and
    records nothing. Raises :class:`SubmitError`.
    """

    cfg = check_submit_config(cfg)
    if not isinstance(cfg, VertexSubmitConfig):
        raise SubmitError("submit=dataflow_transform runs the Transform, not a training job: "
                          "launch it with python -m compiler ... submit=dataflow_transform")
    console = console or Console()
    emitted = read_emitted(emit_dir)
    check_replicas(cfg, distribution_from_manifest(emitted.manifest))
    if not cfg.container_uri:  # a prebuilt image: say when it is past its end date

        warning = image_warning(cfg.executor_image)
        if warning:  # stderr: a dry run's stdout is its JSON document alone
            print(warning, file=sys.stderr)
    required = dict(required_features if required_features is not None
                    else required_from_manifest(emitted.manifest))
    if cfg.dry_run:
        document = dry_run(emitted, cfg, required, console=console)
        return SubmitResult("DRY_RUN", document.plan, document.document["request"],
                            transform_dir=document.transform_dir)
    assert cfg.source_exp and cfg.project and cfg.region
    root = source_root()  # before any network call: refuse early outside a checkout
    credentials = application_credentials()
    storage, source = check_source(cfg, credentials, required, console)

    if emitted.compiler_version != __version__:
        console.print(f"[yellow]warning:[/] {emitted.emit_dir} was compiled by recforge "
                      f"{emitted.compiler_version}; the job runs recforge {__version__} "
                      "(recompile to match)", highlight=False)
    jobs = vertex.VertexJobs.connect(cfg, credentials)
    adapter = LedgerAdapter(ledger, console)
    submission_id = new_submission_id()
    label = f"{LABEL_SUBMISSION}={label_safe(submission_id)}"
    # The duplicate check and the create run under one lock (see compiler.cloud.lock):
    # without it, two submitters could both find no active job and both create one.
    guard = None if cfg.force else _take_lock(storage, cfg, emitted, submission_id)
    try:
        _refuse_duplicates(jobs, cfg, emitted, adapter)
        with tempfile.TemporaryDirectory(prefix="recforge-submit-") as tmp:
            requirements, _ = requirement_packages(cfg.packages)
            sdist, reqs = build_packages(Path(tmp), requirements, root)
            plan = staging_plan(cfg, emitted.emit_dir, emitted.config_hash, submission_id,
                                sdist, reqs, root)
            number = adapter.record(emitted.manifest, overrides, {
                "vertex_staging": plan.stage_uri, "vertex_output": plan.output_dir,
                "transform_dir": source.transform_dir, "source_exp": cfg.source_exp,
                "vertex_submission_label": label,
            }, experiment_number)
            _start_in_ledger(adapter, jobs, storage, cfg, emitted)
            body = job_request(cfg, emitted, plan, source.transform_dir, submission_id, number)
            try:
                _stage(storage, plan, console)
            except BaseException as error:
                adapter.fail(f"not submitted: staging failed: {_one_line(error)}")
                if isinstance(error, KeyboardInterrupt):
                    raise SubmitError("interrupted while staging; no job was created",
                                      exit_code=130) from None
                raise
        job = _create(jobs, body, cfg, console, adapter, label)
    finally:
        if guard is not None:
            try:
                guard.release()
            except Exception as error:  # noqa: BLE001 - the job exists; the lock goes stale
                console.print(f"[yellow]warning:[/] could not delete the submission lock "
                              f"{guard.uri}: {_one_line(error)}")

    ident = vertex.job_id(job)
    adapter.set_job(ident)
    logs = vertex.logs_command(cfg.project, ident)
    url = vertex.console_url(cfg.project, cfg.region, ident)
    result = SubmitResult(
        vertex.state_name(job), plan, body, job.name, ident, number,
        transform_dir=source.transform_dir, logs_command=logs, console_url=url,
    )
    what = f"experiment {number}" if number is not None else "the trainer"
    console.print(f"Submitted {what} as Vertex AI job {ident}", markup=False, highlight=False)
    console.print(f"  console: {url}\n  logs:    {logs}", markup=False, highlight=False)
    if not cfg.wait:
        return result

    return wait_and_read(jobs, job, cfg, console, storage, adapter, result)


def _take_lock(storage: Any, cfg: VertexSubmitConfig, emitted: Emitted,
               submission_id: str) -> Any:
    assert cfg.source_exp
    uri = lock.lock_uri(cfg, emitted.config_hash, source_label(cfg.source_exp))
    with _api_errors("Google Cloud Storage: the submission lock", exit_code=1):
        return lock.acquire(storage, uri, label_safe(submission_id), lock.stale_after(cfg))


def _create(jobs: Any, body: dict[str, Any], cfg: VertexSubmitConfig, console: Console,
            adapter: LedgerAdapter, label: str) -> Any:
    """Create the job; when that fails, say in the ledger whether a job may exist."""

    console.print(f"Creating CustomJob {body['displayName']} in {jobs.parent} …",
                  markup=False, highlight=False)
    hint = (f"gcloud ai custom-jobs list --project={cfg.project} --region={cfg.region} "
            f'--filter="labels.{label}"')
    try:
        with _api_errors("Vertex AI refused the job", exit_code=1):
            return jobs.create(body, cfg, console)
    except KeyboardInterrupt:
        # The create may have reached Vertex AI: the job may exist, and only its label says.
        adapter.unknown(f"check label {label}: interrupted while creating the job")
        raise SubmitError("interrupted while creating the job; it may or may not exist",
                          hint=hint, exit_code=130) from None
    except SubmitError as error:
        if isinstance(error, CreateInDoubt):
            adapter.unknown(f"check label {label}: {error.message}")
            error.hint = error.hint or hint
        else:
            adapter.fail(f"not submitted: {error.message}")
        raise


def _refuse_duplicates(jobs: Any, cfg: VertexSubmitConfig, emitted: Emitted,
                       adapter: LedgerAdapter) -> None:
    """Vertex AI itself is the authority: any pending or running job with this config hash
    and source (by label) blocks a second one, wherever it was submitted from."""
    assert cfg.source_exp
    labels = {LABEL_CONFIG_HASH: label_safe(emitted.config_hash),
              LABEL_SOURCE: source_label(cfg.source_exp)}
    with _api_errors("Vertex AI: listing jobs"):
        active = jobs.active(labels)
    if not active:
        return

    listing = ", ".join(f"{job_id(j)} ({state_name(j)})" for j in active)
    if cfg.force:
        adapter.console.print(f"[yellow]warning:[/] submit.force: submitting although {listing} "
                              "is active for the same config hash and source")
        return
    raise SubmitError(
        f"a job for config hash {emitted.config_hash} on source '{cfg.source_exp}' is already "
        f"active: {listing}",
        hint=f"wait for it, cancel it (gcloud ai custom-jobs cancel {job_id(active[0])} "
             f"--region={cfg.region}), or set submit.force=true",
    )


def _start_in_ledger(adapter: LedgerAdapter, jobs: Any, storage: Any,
                     cfg: VertexSubmitConfig, emitted: Emitted) -> None:
    """Mark the new experiment running; sort out what the ledger's duplicate lock says.

    The ledger allows one running Vertex experiment per config hash. When that one's job has
    in fact ended (its submitter did not wait: ``submit.wait=false``, a timeout, Ctrl-C), its
    row is settled from Vertex AI first: completed with its metrics, or failed.
    """
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import NotFound

    for _ in range(2):
        try:
            adapter.start()
            return
        except Exception as error:
            if not adapter.is_duplicate(error):
                adapter.console.print(f"[yellow]warning:[/] ledger: {error}")
                return
            active = adapter.active(emitted.config_hash)
            other, ended = None, None
            if active is not None and active.job_id:
                with _api_errors("Vertex AI: reading the ledger's active job"):
                    try:
                        other = jobs.get(f"{jobs.parent}/customJobs/{active.job_id}")
                    except NotFound:
                        ended = "NOT_FOUND"  # deleted: nothing runs any more
                if other is not None and state_name(other) in TERMINAL_STATES:
                    ended = state_name(other)
            if active is not None and ended:
                _settle(adapter, storage, active, ended)
                continue
            other_source = other.labels.get(LABEL_SOURCE) if other is not None else None
            assert cfg.source_exp
            if cfg.force or (other_source and other_source != source_label(cfg.source_exp)):
                # This one is tracked once that one ends (see LedgerAdapter._late_start).
                adapter.console.print(
                    f"[yellow]warning:[/] ledger: experiment {active.number if active else '?'} "
                    f"is still running this config; experiment {adapter.number} is recorded "
                    "when its job ends")
                return
            adapter.fail("not submitted: " + str(error))
            raise SubmitError(str(error), hint="or set submit.force=true") from None


def _settle(adapter: LedgerAdapter, storage: Any, active: Any, state: str) -> None:
    """Record how an unwatched experiment's job ended."""
    output = active.artifacts.get("vertex_output")
    metrics = None
    if state == SUCCEEDED and output:
        with _api_errors("Google Cloud Storage: reading an earlier job's metrics"):
            data = gcs.read_bytes(storage, gcs.join(output, METRICS_PATH))
        try:
            metrics = json.loads(data) if data is not None else None
        except ValueError:
            metrics = None
    if metrics is not None:
        adapter.settle(active.number, metrics=metrics,
                       artifacts={"metrics": gcs.join(output, METRICS_PATH)})
        adapter.console.print(f"ledger: experiment {active.number} (job {active.job_id}) had "
                              "finished; recorded its metrics")
    else:
        reason = (f"job {active.job_id} ended {state} while nobody was waiting for it"
                  + (" and wrote no readable metrics" if state == SUCCEEDED else ""))
        adapter.settle(active.number, error=reason)
        adapter.console.print(f"ledger: experiment {active.number}: {reason}", markup=False)


def _stage(storage: Any, plan: StagingPlan, console: Console) -> None:
    """Upload every file under its content digest; an object already there is reused, never
    overwritten (a pending job may be reading it)."""
    console.print(f"Staging {len(plan.files)} files under {plan.objects_uri}/<sha256>/",
                  markup=False, highlight=False)
    with _api_errors("Google Cloud Storage: staging", exit_code=1):
        for staged in plan.files:
            uploaded = gcs.upload_immutable(storage, staged.local, staged.uri)
            console.print(f"  {'uploaded' if uploaded else 'reused  '} {staged.uri}",
                          markup=False, highlight=False)


def main_submit(
    emit_dir: Path | str,
    cfg: VertexSubmitConfig | Any,
    required_features: Mapping[str, str] | None = None,
    ledger: Any | None = None,
    *,
    console: Console | None = None,
    overrides: Sequence[str] = (),
    experiment_number: int | None = None,
) -> int:
    """:func:`submit` for a CLI: prints any :class:`SubmitError` as one message, returns the
    exit status (0 on success, ``SubmitError.exit_code`` otherwise)."""
    console = console or Console()
    err = Console(stderr=True) if console.file is sys.stdout else console
    try:
        submit(emit_dir, cfg, required_features, ledger, console=console, overrides=overrides,
               experiment_number=experiment_number)
    except SubmitError as error:
        # Bad input (exit 2) is one line, hint included; a job that ran and failed keeps its
        # hint (the logs command) on a line of its own, where it is easy to copy.
        one_line = error.exit_code == 2 or not error.hint
        message = str(error) if one_line else error.message
        err.print(Text.assemble(("error: ", "bold red"), message), highlight=False,
                  soft_wrap=True)
        if not one_line:
            err.print(f"  hint: {error.hint}", markup=False, highlight=False)
        return error.exit_code
    return 0
