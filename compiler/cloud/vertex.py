"""Vertex AI CustomJobs through the low-level ``aiplatform_v1.JobServiceClient`` (REST).

Our own poller instead of the high-level SDK's: it gives control of backoff, progress output,
timeouts and Ctrl-C. Creating is made idempotent by a per-submission label: a create that may
have reached Vertex (503, timeout, dropped connection) is resolved by listing jobs with that
label, never by blindly creating again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.errors import SubmitError
from compiler.cloud.job_spec import LABEL_SUBMISSION, to_custom_job

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


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a create may or may not have happened on the server."""
    import requests
    from google.api_core import exceptions as gexc

    return (
        gexc.ServiceUnavailable, gexc.InternalServerError, gexc.GatewayTimeout,
        gexc.DeadlineExceeded, gexc.TooManyRequests, gexc.BadGateway,
        requests.exceptions.ConnectionError, requests.exceptions.Timeout,
    )


def label_filter(labels: Mapping[str, str]) -> str:
    return " AND ".join(f'labels.{key}="{value}"' for key, value in sorted(labels.items()))


@dataclass
class VertexJobs:
    """One project/region's CustomJobs."""

    client: JobServiceClient
    project: str
    region: str

    @classmethod
    def connect(cls, cfg: VertexSubmitConfig, credentials: Any) -> VertexJobs:
        from google.cloud import aiplatform_v1

        assert cfg.project and cfg.region
        endpoint = cfg.api_endpoint or f"{cfg.region}-aiplatform.googleapis.com"
        client = aiplatform_v1.JobServiceClient(
            transport="rest", credentials=credentials,
            client_options={"api_endpoint": endpoint},
        )
        return cls(client, cfg.project, cfg.region)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def list(self, labels: Mapping[str, str]) -> list[CustomJob]:
        """Every job carrying all ``labels`` (server-side filter; pages followed)."""
        from google.cloud.aiplatform_v1 import ListCustomJobsRequest

        request = ListCustomJobsRequest(parent=self.parent, filter=label_filter(labels),
                                        page_size=100)
        return list(self.client.list_custom_jobs(request=request))

    def active(self, labels: Mapping[str, str]) -> list[CustomJob]:
        return [job for job in self.list(labels) if state_name(job) in ACTIVE_STATES]

    def get(self, name: str) -> CustomJob:
        return self.client.get_custom_job(name=name, retry=None, timeout=60)

    def cancel(self, name: str) -> None:
        self.client.cancel_custom_job(name=name, retry=None, timeout=60)

    def create(self, body: Mapping[str, Any], cfg: VertexSubmitConfig, console: Console,
               sleep: Callable[[float], None] = time.sleep) -> CustomJob:
        """Create the job exactly once, even when an attempt fails in a way that hides whether
        it reached Vertex: after such a failure, list jobs by this submission's label first."""
        job = to_custom_job(body)
        token = {LABEL_SUBMISSION: body["labels"][LABEL_SUBMISSION]}
        transient = _transient_errors()
        attempts = max(1, int(cfg.create_retries) + 1)
        delay = cfg.poll_initial_seconds
        last: BaseException | None = None
        for attempt in range(attempts):
            if attempt:
                existing = self._find_created(token, transient, sleep, delay)
                if existing is not None:
                    console.print(f"  the earlier create did reach Vertex AI: {existing.name}",
                                  markup=False, highlight=False)
                    return existing
                sleep(delay)
                delay = min(delay * 2, cfg.poll_max_seconds)
            try:
                return self.client.create_custom_job(
                    parent=self.parent, custom_job=job, retry=None,
                    timeout=cfg.create_timeout_seconds,
                )
            except transient as error:
                last = error
                console.print(f"  create attempt {attempt + 1} of {attempts} failed "
                              f"({_short(error)}); checking whether the job exists",
                              markup=False, highlight=False)
        existing = self._find_created(token, transient, sleep, delay)
        if existing is not None:
            return existing
        raise SubmitError(
            f"Vertex AI did not accept the job after {attempts} attempts: {_short(last)}",
            exit_code=1,
        )

    def _find_created(self, token: Mapping[str, str], transient: tuple[type[BaseException], ...],
                      sleep: Callable[[float], None], delay: float) -> CustomJob | None:
        for _ in range(3):
            try:
                found = self.list(token)
            except transient:
                sleep(delay)
                continue
            return found[0] if found else None
        # Creating again could make a second job; stop and say how to look.
        key, value = next(iter(token.items()))
        raise SubmitError(
            "a create request may or may not have reached Vertex AI, and listing jobs to find "
            "out keeps failing; not creating again",
            hint=f"gcloud ai custom-jobs list --project={self.project} --region={self.region} "
                 f'--filter="labels.{key}={value}"',
            exit_code=1,
        )


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


def backoff(initial: float, maximum: float, multiplier: float) -> Iterator[float]:
    delay = initial
    while True:
        yield delay
        delay = min(delay * multiplier, maximum)


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def wait_for(jobs: VertexJobs, job: CustomJob, cfg: VertexSubmitConfig, console: Console,
             on_state: Callable[[str], None] | None = None,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> CustomJob:
    """Poll until the job ends, printing each state change with the elapsed time.

    The delay between polls grows by ``poll_multiplier`` up to ``poll_max_seconds`` and starts
    over at ``poll_initial_seconds`` after a state change (a job that just started running is
    worth watching closely). A poll that fails transiently is retried, not fatal.
    """
    from google.api_core.exceptions import GoogleAPICallError

    start = clock()
    deadline = start + cfg.timeout_minutes * 60
    state = state_name(job)
    console.print(f"[{format_elapsed(0)}] {job_id(job)}: {state}", markup=False, highlight=False)
    if on_state:
        on_state(state)
    delays = backoff(cfg.poll_initial_seconds, cfg.poll_max_seconds, cfg.poll_multiplier)
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
                job = jobs.get(job.name)
            except (GoogleAPICallError, *_transient_errors()) as error:
                console.print(f"[{format_elapsed(clock() - start)}] poll failed "
                              f"({_short(error)}); retrying", markup=False, highlight=False)
                continue
            new = state_name(job)
            elapsed = format_elapsed(clock() - start)
            if new != state:
                state = new
                console.print(f"[{elapsed}] {job_id(job)}: {state}", markup=False,
                              highlight=False)
                delays = backoff(cfg.poll_initial_seconds, cfg.poll_max_seconds,
                                 cfg.poll_multiplier)
                if on_state:
                    on_state(state)
            if status:
                status.update(f"{state} (elapsed {elapsed})")
    finally:
        if status:
            status.stop()
    return job
