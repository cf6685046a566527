"""Submit a compiled trainer to Vertex AI as a CustomJob, wait for it, read its metrics back.

    from compiler.cloud import submit, main_submit, VertexSubmitConfig
    result = submit(Path("generated/hybrid_v1__cherng_v3"), cfg, plan.required_features(), ledger)

Order (each step refuses with a :class:`SubmitError` before anything is created if it can):
config keys -> emitted files -> credentials -> source experiment (GCS listing) -> the Transform's
schema against the trainer's features -> no active duplicate -> ledger -> build and upload
packages and modules -> create the job (exactly once) -> wait -> metrics -> ledger.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from compiler.cloud import gcs
from compiler.cloud.config import VertexSubmitConfig, check_required, from_omegaconf
from compiler.cloud.errors import SubmitError
from compiler.cloud.job_spec import (
    EMITTED_FILES,
    LABEL_CONFIG_HASH,
    LABEL_SOURCE,
    METRICS_PATH,
    StagingPlan,
    canonical_json,
    check_user_labels,
    custom_job_body,
    display_name,
    job_args,
    job_labels,
    label_safe,
    new_submission_id,
    source_label,
    staging_plan,
)
from compiler.cloud.ledger_adapter import LedgerAdapter
from compiler.cloud.package import build_packages, source_root
from compiler.cloud.schema_check import check_compatible

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SUCCEEDED = "JOB_STATE_SUCCEEDED"


@dataclass
class SubmitResult:
    """What a submission produced. ``state`` is ``DRY_RUN`` for a dry run."""

    state: str
    plan: StagingPlan
    request: dict[str, Any]
    job_name: str | None = None
    job_id: str | None = None
    experiment_number: int | None = None
    metrics: dict[str, Any] | None = None
    transform_dir: str | None = None
    logs_command: str | None = None
    console_url: str | None = None

    @property
    def output_dir(self) -> str:
        return self.plan.output_dir


@dataclass
class DryRun:
    """The request a submission would send, computed without any network call."""

    plan: StagingPlan
    request: dict[str, Any]
    #: The request JSON as the REST API takes it (camelCase; parses into ``CustomJob``).
    request_json: str
    url: str
    emit_dir: Path
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Emitted:
    emit_dir: Path
    manifest: dict[str, Any]

    @property
    def config_hash(self) -> str:
        return str(self.manifest["config_hash"])

    @property
    def compiler_version(self) -> str:
        return str(self.manifest["compiler_version"])


def read_emitted(emit_dir: Path | str) -> Emitted:
    emit_dir = Path(emit_dir)
    missing = [name for name in EMITTED_FILES if not (emit_dir / name).is_file()]
    if missing:
        raise SubmitError(f"{emit_dir} has no {', '.join(missing)}",
                          hint="compile the config first; submit uploads what the compiler emitted")
    try:
        manifest = json.loads((emit_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SubmitError(f"{emit_dir / 'manifest.json'} is unreadable: {error}") from None
    absent = [key for key in ("config_hash", "compiler_version") if not manifest.get(key)]
    if absent:
        raise SubmitError(f"{emit_dir / 'manifest.json'} lacks {', '.join(absent)}; recompile")
    return Emitted(emit_dir, manifest)


def required_from_manifest(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Fallback for ``required_features``: the manifest's ``transformed_features`` list."""
    return {str(f["name"]): str(f["dtype"]) for f in manifest.get("transformed_features", [])}


# ----------------------------------------------------------------------------------- dry run


def _job_url(cfg: VertexSubmitConfig) -> str:
    endpoint = cfg.api_endpoint or f"https://{cfg.region}-aiplatform.googleapis.com"
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    return f"{endpoint.rstrip('/')}/v1/projects/{cfg.project}/locations/{cfg.region}/customJobs"


def _request(cfg: VertexSubmitConfig, emitted: Emitted, plan: StagingPlan, transform_dir: str,
             submission_id: str, experiment_number: int | None) -> dict[str, Any]:
    assert cfg.source_exp
    labels = job_labels(cfg, emitted.config_hash, emitted.compiler_version, cfg.source_exp,
                        submission_id, experiment_number)
    return custom_job_body(
        cfg, plan,
        name=display_name(cfg.experiment, emitted.config_hash, experiment_number),
        labels=labels,
        args=job_args(plan, transform_dir, cfg.custom_config),
    )


def dry_run_request(emit_dir: Path | str, cfg: VertexSubmitConfig | Any,
                    *, submission_id: str | None = None) -> DryRun:
    """The staging plan and the exact CustomJob request, with no network call at all.

    A ``source_exp`` given as a run name is found by listing GCS, which a dry run does not do:
    the request then names the run's folder with a placeholder for the Transform output below
    it. Give ``source_exp`` as the Transform output's ``gs://`` URI for an exact request.
    """
    cfg = from_omegaconf(cfg)
    check_required(cfg)
    check_user_labels(cfg.labels)
    emitted = read_emitted(emit_dir)
    submission_id = submission_id or new_submission_id()
    plan = staging_plan(cfg, emitted.config_hash, submission_id)
    assert cfg.source_exp
    notes = []
    if cfg.source_exp.startswith("gs://"):
        transform_dir = cfg.source_exp.rstrip("/")
    else:
        assert cfg.pipeline_root
        run_uri = gcs.join(cfg.pipeline_root, cfg.source_exp)
        transform_dir = f"{run_uri}/<Transform output: found by listing at submit time>"
        notes.append(f"source run '{cfg.source_exp}' is looked up under {cfg.pipeline_root} "
                     "at submit time; its transform schema is checked before anything is created")
    notes.append("the experiment number (from the ledger) joins the display name and labels "
                 "at submit time")
    body = _request(cfg, emitted, plan, transform_dir, submission_id, None)
    return DryRun(plan, body, canonical_json(body), _job_url(cfg), Path(emit_dir), notes)


def print_dry_run(dry: DryRun, console: Console) -> None:
    def line(text: str) -> None:
        # soft_wrap: rich must not break long URIs, or the JSON would not parse back.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    plan = dry.plan
    console.print("[bold]Dry run[/]: nothing is built, uploaded or submitted.")
    line(f"Staging plan ({plan.stage_uri}/):")
    for name, uri in plan.modules.items():
        line(f"  {dry.emit_dir / name} -> {uri}")
    line(f"  recforge sdist (built from the source tree) -> {plan.recforge_package_uri}")
    if plan.requirements_package_uri:
        line(f"  requirements sdist {list(plan.requirements)} -> {plan.requirements_package_uri}")
    for uri in plan.extra_package_uris:
        line(f"  package (as given) {uri}")
    line(f"  job output -> {plan.output_dir}/ (metrics: {plan.metrics_uri})")
    for note in dry.notes:
        line(f"Note: {note}")
    line(f"CustomJob request: POST {dry.url}")
    line(dry.request_json)


# ------------------------------------------------------------------------------- submission


def _credentials() -> Any:
    """Application Default Credentials; never printed, logged or written anywhere."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError:
        raise SubmitError(
            "no Google Cloud credentials found",
            hint="run `gcloud auth application-default login`, or set "
                 "GOOGLE_APPLICATION_CREDENTIALS to a service account key file",
        ) from None
    return credentials


@contextmanager
def _api_errors(what: str, exit_code: int = 2) -> Iterator[None]:
    """Turn a refused or failed Google API call into one clear line."""
    import requests
    from google.api_core.exceptions import GoogleAPICallError
    from google.auth.exceptions import RefreshError, TransportError

    try:
        yield
    except (RefreshError, TransportError) as error:
        raise SubmitError(
            f"{what}: the Google Cloud credentials were rejected or could not be refreshed "
            f"({_one_line(error)})",
            hint="run `gcloud auth application-default login`", exit_code=exit_code,
        ) from None
    except GoogleAPICallError as error:
        raise SubmitError(f"{what}: {_one_line(error)}", exit_code=exit_code) from None
    except requests.exceptions.RequestException as error:
        raise SubmitError(f"{what}: network error: {_one_line(error)}",
                          exit_code=exit_code) from None


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:400]


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
    with ``overrides``). Raises :class:`SubmitError`.
    """
    from compiler.cloud import vertex

    cfg = from_omegaconf(cfg)
    console = console or Console()
    check_required(cfg)
    check_user_labels(cfg.labels)
    emitted = read_emitted(emit_dir)
    if cfg.dry_run:
        dry = dry_run_request(emit_dir, cfg)
        print_dry_run(dry, console)
        return SubmitResult("DRY_RUN", dry.plan, dry.request)
    assert cfg.source_exp and cfg.project and cfg.region
    required = dict(required_features if required_features is not None
                    else required_from_manifest(emitted.manifest))
    root = source_root()  # before any network call: refuse early outside a checkout
    credentials = _credentials()

    with _api_errors("Google Cloud Storage"):
        storage = gcs.make_client(cfg.project, credentials)
        source = gcs.find_source(storage, cfg.pipeline_root, cfg.source_exp)
        schema_bytes = gcs.read_bytes(storage, source.transformed_schema_uri)
    if schema_bytes is None:  # listed a moment ago, gone now
        raise SubmitError(f"{source.transformed_schema_uri} disappeared while reading it")
    check_compatible(required, schema_bytes.decode("utf-8"),
                     schema_uri=source.transformed_schema_uri)
    console.print(f"Source: {source.transform_dir} (splits: {', '.join(source.splits)}"
                  + (f"; schema {source.schema_uri}" if source.schema_uri else "") + ")",
                  markup=False, highlight=False)
    if "test" not in source.splits:
        console.print("[yellow]warning:[/] the source has no Split-test; the trainer will report "
                      "test metrics as missing")
    for other in source.others:
        console.print(f"  (also found, older: {other})", markup=False, highlight=False)
    console.print(f"Transform output has all {len(required)} features the trainer reads.")

    from compiler import __version__

    if emitted.compiler_version != __version__:
        console.print(f"[yellow]warning:[/] {emitted.emit_dir} was compiled by recforge "
                      f"{emitted.compiler_version}; the job runs recforge {__version__} "
                      "(recompile to match)", highlight=False)
    jobs = vertex.VertexJobs.connect(cfg, credentials)
    adapter = LedgerAdapter(ledger, console)
    _refuse_duplicates(jobs, cfg, emitted, adapter)

    submission_id = new_submission_id()
    plan = staging_plan(cfg, emitted.config_hash, submission_id)
    number = adapter.record(emitted.manifest, overrides, {
        "vertex_staging": plan.stage_uri, "vertex_output": plan.output_dir,
        "transform_dir": source.transform_dir, "source_exp": cfg.source_exp,
    }, experiment_number)
    _start_in_ledger(adapter, jobs, storage, cfg, emitted)

    try:
        body = _request(cfg, emitted, plan, source.transform_dir, submission_id, number)
        _stage(storage, emitted, plan, root, console)
        console.print(f"Creating CustomJob {body['displayName']} in {jobs.parent} …",
                      markup=False, highlight=False)
        with _api_errors("Vertex AI refused the job", exit_code=1):
            job = jobs.create(body, cfg, console)
    except BaseException as error:
        adapter.fail(f"not submitted: {_one_line(error) or type(error).__name__}")
        if isinstance(error, KeyboardInterrupt):
            raise SubmitError(
                "interrupted while submitting; the job may or may not exist",
                hint=f"gcloud ai custom-jobs list --region={cfg.region} "
                     f"--filter=labels.recforge_submission={label_safe(submission_id)}",
                exit_code=130,
            ) from None
        raise

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
    return _wait(jobs, job, cfg, console, storage, adapter, result)


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
    from compiler.cloud.vertex import job_id, state_name

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
    from google.api_core.exceptions import NotFound

    from compiler.cloud.vertex import TERMINAL_STATES, state_name

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


def _stage(storage: Any, emitted: Emitted, plan: StagingPlan, root: Path,
           console: Console) -> None:
    """Upload the emitted modules, the manifest and the packages (nothing is created yet)."""
    with tempfile.TemporaryDirectory(prefix="recforge-submit-") as tmp:
        sdist, reqs = build_packages(Path(tmp), plan.requirements, root)
        expected = plan.recforge_package_uri.rsplit("/", 1)[-1]
        if sdist.name != expected:  # pyproject's version and compiler.__version__ disagree
            raise SubmitError(f"built {sdist.name}, expected {expected}: the version in "
                              "pyproject.toml and compiler.__version__ differ", exit_code=1)
        uploads = [(emitted.emit_dir / name, uri) for name, uri in plan.modules.items()]
        uploads.append((sdist, plan.recforge_package_uri))
        if reqs is not None and plan.requirements_package_uri:
            uploads.append((reqs, plan.requirements_package_uri))
        console.print(f"Staging {len(uploads)} files to {plan.stage_uri}/",
                      markup=False, highlight=False)
        with _api_errors("Google Cloud Storage: staging", exit_code=1):
            for local, uri in uploads:
                gcs.upload_file(storage, local, uri)


def _wait(jobs: Any, job: Any, cfg: VertexSubmitConfig, console: Console, storage: Any,
          adapter: LedgerAdapter, result: SubmitResult) -> SubmitResult:
    from compiler.cloud import vertex

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
    with _api_errors("Google Cloud Storage: reading the metrics", exit_code=1):
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
    with _api_errors(f"Vertex AI: cancelling job {ident}", exit_code=130):
        jobs.cancel(job.name)
    adapter.fail("cancelled (Ctrl-C)")
    return SubmitError(f"cancelled job {ident} (Vertex AI is stopping it)", exit_code=130,
                       job_id=ident)


def print_metrics(metrics: Mapping[str, Any], console: Console) -> None:
    final = metrics.get("final") if isinstance(metrics.get("final"), Mapping) else metrics
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
        err.print(Text.assemble(("error: ", "bold red"), error.message), highlight=False)
        if error.hint:
            err.print(f"  hint: {error.hint}", markup=False, highlight=False)
        return error.exit_code
    return 0
