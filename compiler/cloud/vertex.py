"""Vertex AI CustomJobs through the low-level ``aiplatform_v1.JobServiceClient`` (REST).

Our own poller instead of the high-level SDK's: it gives control of backoff, progress output,
timeouts and Ctrl-C. Creating is made idempotent by a per-submission label: a create that may
have reached Vertex (503, timeout, dropped connection) is resolved by listing jobs with that
label, never by blindly creating again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compiler import retry
from compiler.cloud.config import LABEL_SUBMISSION, VertexSubmitConfig
from compiler.cloud.errors import SubmitError
from compiler.cloud.job_spec import to_custom_job

if TYPE_CHECKING:
    from google.cloud.aiplatform_v1 import CustomJob, JobServiceClient
    from rich.console import Console

ACTIVE_STATES = frozenset({
    "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING",
    "JOB_STATE_PAUSED", "JOB_STATE_UPDATING",
})
TERMINAL_STATES = frozenset({
    "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
})


def state_name(job: CustomJob) -> str:
    return job.state.name if hasattr(job.state, "name") else str(job.state)


def job_id(job_or_name: Any) -> str:
    name = job_or_name if isinstance(job_or_name, str) else job_or_name.name
    return name.rsplit("/", 1)[-1]


def logs_command(project: str, job: str) -> str:
    """The exact command that prints a job's logs (its traceback, when it failed)."""
    return (
        f'gcloud logging read "resource.type=ml_job AND resource.labels.job_id={job}" '
        f'--project={project} --limit=100 --format="value(textPayload)"'
    )


def console_url(project: str, region: str, job: str) -> str:
    return (f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job}/cpu"
            f"?project={project}")


def is_transient(error: BaseException) -> bool:
    """Worth retrying: 429, 5xx, timeouts, dropped connections. Never 4xx, never credentials."""
    # lazy: HTTP errors of the Google SDK's transport: cloud calls only
    import requests
    from google.api_core import exceptions as gexc

    return isinstance(error, (
        gexc.TooManyRequests, gexc.InternalServerError, gexc.BadGateway,
        gexc.ServiceUnavailable, gexc.GatewayTimeout, gexc.DeadlineExceeded,
        requests.exceptions.ConnectionError, requests.exceptions.Timeout,
    ))


def create_in_doubt(error: BaseException) -> bool:
    """After this failure of a create, the job may exist: everything transient but a 429
    (Vertex refuses a throttled request before doing anything)."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import TooManyRequests

    return is_transient(error) and not isinstance(error, TooManyRequests)


def transient_retry(timeout: float, initial: float = 1.0, maximum: float = 30.0) -> Any:
    """The project's one retry policy (``compiler.retry``) for transient errors only,
    ``timeout`` seconds in all."""
    return retry.policy(is_transient, initial=initial, maximum=maximum, timeout=timeout)


def label_filter(labels: Mapping[str, str]) -> str:
    return " AND ".join(f'labels.{key}="{value}"' for key, value in sorted(labels.items()))


class _NotListedYet(Exception):
    """The created-in-doubt job is not (yet) visible in a listing by its label."""


@dataclass
class VertexJobs:
    """One project/region's CustomJobs. Every call has a timeout; get, list and cancel retry
    transient errors with backoff (the one policy: ``compiler.retry``)."""

    client: JobServiceClient
    project: str
    region: str
    call_timeout: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0

    @classmethod
    def connect(cls, cfg: VertexSubmitConfig, credentials: Any) -> VertexJobs:
        # lazy: Google Cloud SDK, for GCS/Vertex calls only
        from google.cloud import aiplatform_v1

        assert cfg.project and cfg.region
        endpoint = cfg.api_endpoint or f"{cfg.region}-aiplatform.googleapis.com"
        client = aiplatform_v1.JobServiceClient(
            transport="rest", credentials=credentials,
            client_options={"api_endpoint": endpoint},
        )
        return cls(client, cfg.project, cfg.region, call_timeout=cfg.call_timeout_seconds,
                   backoff_initial=cfg.poll_initial_seconds,
                   backoff_max=cfg.poll_max_seconds)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def retry(self, timeout: float | None = None) -> Any:
        return transient_retry(timeout if timeout is not None else self.call_timeout,
                               self.backoff_initial, self.backoff_max)

    def list(self, labels: Mapping[str, str]) -> list[CustomJob]:
        """Every job carrying all ``labels`` (server-side filter; every page followed, each
        with the same retry and timeout)."""
        # lazy: Google Cloud SDK, for GCS/Vertex calls only
        from google.cloud.aiplatform_v1 import ListCustomJobsRequest

        request = ListCustomJobsRequest(parent=self.parent, filter=label_filter(labels),
                                        page_size=100)
        return list(self.client.list_custom_jobs(request=request, retry=self.retry(),
                                                 timeout=self.call_timeout))

    def active(self, labels: Mapping[str, str]) -> list[CustomJob]:
        return [job for job in self.list(labels) if state_name(job) in ACTIVE_STATES]

    def get(self, name: str, timeout: float | None = None) -> CustomJob:
        timeout = min(timeout, self.call_timeout) if timeout is not None else self.call_timeout
        return self.client.get_custom_job(name=name, retry=self.retry(timeout), timeout=timeout)

    def cancel(self, name: str) -> None:
        self.client.cancel_custom_job(name=name, retry=self.retry(), timeout=self.call_timeout)

    def create(self, body: Mapping[str, Any], cfg: VertexSubmitConfig, console: Console
               ) -> CustomJob:
        """Create the job once, even when an attempt fails in a way that hides whether it
        reached Vertex AI.

        Every create carries the submission label. Before any re-create, jobs are listed by
        that label, and a job found in any state is the one this submission made. After a
        failure that leaves the outcome in doubt (timeout, dropped connection, 5xx), the
        listing is repeated for ``submit.create_settle_seconds``, since the service may
        commit a request after the client gave up on it. A 429 is retried after backoff.
        """
        job = to_custom_job(body)
        label = {LABEL_SUBMISSION: body["labels"][LABEL_SUBMISSION]}
        attempts = int(cfg.create_retries) + 1
        state = {"tries": 0, "in_doubt": False}

        def attempt() -> CustomJob:
            if state["tries"]:
                settle = cfg.create_settle_seconds if state["in_doubt"] else 0.0
                found = self._await_label(label, settle, console)
                if found is not None:
                    console.print(f"  the earlier create did reach Vertex AI: {found.name}",
                                  markup=False, highlight=False)
                    return found
            state["tries"] += 1
            return self.client.create_custom_job(parent=self.parent, custom_job=job,
                                                 retry=None,
                                                 timeout=cfg.create_timeout_seconds)

        def on_error(error: BaseException) -> None:
            state["in_doubt"] = state["in_doubt"] or create_in_doubt(error)
            console.print(f"  create attempt {state['tries']} of {attempts} failed "
                          f"({_short(error)})", markup=False, highlight=False)

        def worth_retrying(error: BaseException) -> bool:
            return is_transient(error) and state["tries"] < attempts

        policy = retry.policy(worth_retrying, initial=cfg.poll_initial_seconds,
                              maximum=cfg.poll_max_seconds, timeout=None, on_error=on_error)
        try:
            return policy(attempt)()
        except Exception as error:
            if not is_transient(error):
                raise
            # Out of attempts: the last one may still have reached Vertex AI.
            in_doubt = state["in_doubt"] or create_in_doubt(error)
            found = self._await_label(label, cfg.create_settle_seconds if in_doubt else 0.0,
                                      console)
            if found is not None:
                return found
            if in_doubt:
                raise CreateInDoubt(
                    f"Vertex AI did not confirm the job after {attempts} attempts "
                    f"({_short(error)}), and no job with its label showed up within "
                    f"{cfg.create_settle_seconds:g}s", exit_code=1) from None
            raise SubmitError(
                f"Vertex AI did not accept the job after {attempts} attempts: {_short(error)}",
                exit_code=1,
            ) from None

    def _await_label(self, label: Mapping[str, str], settle: float, console: Console
                     ) -> CustomJob | None:
        """The job carrying ``label``, listing for up to ``settle`` seconds; ``None`` if none
        showed up. A listing that keeps failing stops everything: creating again blind could
        make a second job."""
        # lazy: Google Cloud SDK, for GCS/Vertex calls only
        from google.api_core.exceptions import RetryError
        from google.api_core.retry import if_exception_type

        def look() -> CustomJob:
            try:
                found = self.list(label)
            except RetryError as error:
                raise _ListingFails(error) from None
            except Exception as error:
                if is_transient(error):
                    raise _ListingFails(error) from None
                raise
            if not found:
                raise _NotListedYet
            return found[0]

        if settle > 0:
            console.print(f"  looking for a job labelled {label_filter(label)} for up to "
                          f"{settle:g}s before creating again", markup=False, highlight=False)
        try:
            if settle <= 0:
                return look()
            return retry.policy(if_exception_type(_NotListedYet), initial=min(0.5, settle / 4),
                                maximum=max(min(5.0, settle / 4), 0.01), multiplier=1.5,
                                timeout=settle)(look)()
        except (_NotListedYet, RetryError):
            return None
        except _ListingFails as failure:
            key, value = next(iter(label.items()))
            raise CreateInDoubt(
                "a create request may or may not have reached Vertex AI, and listing jobs to "
                f"find out keeps failing ({_short(failure.error)}); not creating again",
                hint=f"gcloud ai custom-jobs list --project={self.project} "
                     f'--region={self.region} --filter="labels.{key}={value}"',
                exit_code=1,
            ) from None


class CreateInDoubt(SubmitError):
    """A create may or may not have made a job; only a listing by its label can tell."""


class _ListingFails(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _short(error: BaseException | None) -> str:
    text = str(error) if error is not None else "unknown error"
    line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return line[:300]


# ---------------------------------------------------------------------------------- waiting


class WaitTimeout(Exception):
    def __init__(self, job: CustomJob, elapsed: float) -> None:
        super().__init__(f"timed out after {elapsed:.0f}s")
        self.job = job
        self.elapsed = elapsed


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def wait_for(jobs: VertexJobs, job: CustomJob, cfg: VertexSubmitConfig, console: Console,
             on_state: Callable[[str], None] | None = None,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = retry.pause) -> CustomJob:
    """Poll until the job ends, printing each state change with the elapsed time.

    The delays between polls are ``compiler.retry.delays``: each drawn at random below a bound
    that grows by ``poll_multiplier`` up to ``poll_max_seconds``, which starts over at
    ``poll_initial_seconds`` after a state change (a job that just started running is
    worth watching closely). Only transient errors (429, 5xx, timeouts, resets) are retried;
    a 403, a 404 or a credential error stops the wait at once with a :class:`SubmitError`.
    """
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import RetryError

    start = clock()
    deadline = start + cfg.timeout_minutes * 60
    state = state_name(job)
    console.print(f"[{format_elapsed(0)}] {job_id(job)}: {state}", markup=False, highlight=False)
    if on_state:
        on_state(state)
    delays = retry.delays(cfg.poll_initial_seconds, cfg.poll_max_seconds, cfg.poll_multiplier)
    status = console.status(f"{state} …") if console.is_terminal else None
    if status:
        status.start()
    try:
        while state not in TERMINAL_STATES:
            now = clock()
            if now >= deadline:
                raise WaitTimeout(job, now - start)
            sleep(min(next(delays), max(deadline - now, 0.0)))
            try:
                # Transient errors are retried inside get(), within one call timeout.
                job = jobs.get(job.name, timeout=max(deadline - clock(), 1.0))
            except RetryError as error:
                console.print(f"[{format_elapsed(clock() - start)}] polling keeps failing "
                              f"({_short(error)}); trying again", markup=False,
                              highlight=False)
                continue
            except Exception as error:
                if is_transient(error):  # the last try of get() within its timeout
                    continue
                raise poll_error(error, job, jobs) from None
            new = state_name(job)
            elapsed = format_elapsed(clock() - start)
            if new != state:
                state = new
                console.print(f"[{elapsed}] {job_id(job)}: {state}", markup=False,
                              highlight=False)
                delays = retry.delays(cfg.poll_initial_seconds, cfg.poll_max_seconds,
                                      cfg.poll_multiplier)
                if on_state:
                    on_state(state)
            if status:
                status.update(f"{state} (elapsed {elapsed})")
    finally:
        if status:
            status.stop()
    return job


def poll_error(error: BaseException, job: CustomJob, jobs: VertexJobs) -> SubmitError:
    """A failed poll that retrying cannot fix, as one message (exit 1)."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import RefreshError, TransportError

    ident = job_id(job)
    describe = f"gcloud ai custom-jobs describe {ident} --region={jobs.region}"
    if isinstance(error, (RefreshError, TransportError)):
        return SubmitError(
            f"stopped waiting for job {ident}: the Google Cloud credentials could not be "
            f"refreshed ({_short(error)}); the job itself may still be running",
            hint=f"run `gcloud auth application-default login`, then {describe}",
            exit_code=1, job_id=ident)
    if isinstance(error, (gexc.Forbidden, gexc.PermissionDenied, gexc.Unauthorized)):
        return SubmitError(
            f"stopped waiting for job {ident}: Vertex AI refused to show it "
            f"({_short(error)}); the job itself may still be running",
            hint=f"check roles/aiplatform.user on project {jobs.project}, then {describe}",
            exit_code=1, job_id=ident)
    if isinstance(error, gexc.NotFound):
        return SubmitError(f"stopped waiting for job {ident}: Vertex AI no longer knows it "
                           f"({_short(error)}); it was deleted", exit_code=1, job_id=ident)
    return SubmitError(f"stopped waiting for job {ident}: {_short(error)}", exit_code=1,
                       job_id=ident)
