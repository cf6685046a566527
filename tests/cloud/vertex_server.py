"""A loopback Vertex AI server: the REST surface ``aiplatform_v1.JobServiceClient`` uses for
CustomJobs (create, get, list with a label filter, cancel), plus an OAuth token endpoint.

It *runs* what it is given. On create it "installs" the job's ``packageUris`` (downloads each
archive from the GCS emulator and unpacks it onto the job's ``PYTHONPATH``, as Vertex's pip
install would make it importable), then runs ``python -m <pythonModule> <args>`` as a local
subprocess with Vertex's ``AIP_*`` variables, and moves the job through PENDING -> RUNNING ->
SUCCEEDED / FAILED / CANCELLED like Vertex does. The job process reaches ``gs://`` through the
environment the fixture gives it (the GCS emulator, and TensorFlow through the TLS proxy).

Faults can be injected per operation (``create``, ``get``, ``list``, ``cancel``, ``token``):

- ``inject("create", 503, after=True)`` answers 503 *after* creating the job: the response is
  lost but the job exists, the case a client must not retry blindly;
- ``inject("create", 200, delay=1.0)`` commits the job only after 1 s and then answers: a
  client with a shorter timeout has given up by then (Vertex may commit a request the client
  abandoned);
- ``inject("create", 429)`` throttles; ``inject("create", 400, status_name="FAILED_PRECONDITION")``
  refuses the way Vertex does when, e.g., a bucket is in another region;
- ``inject("get", 403)`` / ``inject("get", 404)`` while polling;
- ``inject("token", 400)`` makes the OAuth token endpoint refuse (google-auth raises
  ``RefreshError``); with ``token_lifetime`` short, every request refreshes its token.

``pipeline_jobs`` holds PipelineJobs to serve (``GET .../pipelineJobs/<id>``), e.g. a run
whose Transform task was cached and names another run's output.

``pending_seconds`` keeps every job PENDING until it has waited that long (a long queue);
lowering it releases waiting jobs.
"""

from __future__ import annotations

import datetime
import http.server
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STATES = {
    "JOB_STATE_UNSPECIFIED": 0, "JOB_STATE_QUEUED": 1, "JOB_STATE_PENDING": 2,
    "JOB_STATE_RUNNING": 3, "JOB_STATE_SUCCEEDED": 4, "JOB_STATE_FAILED": 5,
    "JOB_STATE_CANCELLING": 6, "JOB_STATE_CANCELLED": 7, "JOB_STATE_PAUSED": 8,
    "JOB_STATE_EXPIRED": 9, "JOB_STATE_UPDATING": 10, "JOB_STATE_PARTIALLY_SUCCEEDED": 11,
}
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
            "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_FILTER_TERM = re.compile(r'^labels\.([a-z][a-z0-9_-]*)\s*=\s*"([^"]*)"$')
_BASE = r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/customJobs"
_PIPELINE_JOB = (r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
                 r"/pipelineJobs/(?P<id>[^/:]+)$")

#: The token the fake OAuth endpoint hands out.
ACCESS_TOKEN = "fake-vertex-access-token"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    def __init__(self, status: int, message: str, status_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.status_name = status_name or STATUS_NAMES.get(status, "UNKNOWN")


@dataclass
class Fault:
    """Answer the next ``times`` calls of ``op`` with HTTP ``status``.

    ``after``: perform the operation first (the response is what gets lost).
    ``delay``: sleep this long before answering (to trip a client timeout).
    ``status=200``: sleep ``delay``, then perform the operation and answer it normally (a
    commit that comes after the client's timeout).
    """

    op: str
    status: int = 503
    after: bool = False
    delay: float = 0.0
    times: int = 1
    status_name: str | None = None


@dataclass
class Job:
    id: str
    name: str
    body: dict[str, Any]
    state: str = "JOB_STATE_PENDING"
    create_time: str = field(default_factory=_now)
    start_time: str | None = None
    end_time: str | None = None
    update_time: str = field(default_factory=_now)
    error: dict[str, Any] | None = None
    #: stdout + stderr of the job process
    log: str = ""
    returncode: int | None = None
    #: requirements of the installed archives (what pip would install with them)
    requirements: list[str] = field(default_factory=list)
    pythonpath: list[str] = field(default_factory=list)
    gets: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def to_json(self, int_enums: bool) -> dict[str, Any]:
        out = dict(self.body)
        out.update(name=self.name, state=STATES[self.state] if int_enums else self.state,
                   createTime=self.create_time, updateTime=self.update_time)
        if self.start_time:
            out["startTime"] = self.start_time
        if self.end_time:
            out["endTime"] = self.end_time
        if self.error:
            out["error"] = self.error
        return out


class FakeVertex:
    """Start with :meth:`start`; ``endpoint`` is then ``http://127.0.0.1:PORT``."""

    def __init__(self, *, storage_endpoint: str, job_env: Mapping[str, str], workdir: Path,
                 extra_pythonpath: Sequence[str | Path] = (), python: str = sys.executable,
                 page_size: int = 2) -> None:
        self.storage_endpoint = storage_endpoint
        self.job_env = dict(job_env)
        self.workdir = Path(workdir)
        self.extra_pythonpath = [str(p) for p in extra_pythonpath]
        self.python = python
        #: Small default page size, so that listing really follows nextPageToken.
        self.page_size = page_size
        self.jobs: dict[str, Job] = {}
        #: PipelineJob id -> its REST JSON (``jobDetail.taskDetails`` ...), served read-only.
        self.pipeline_jobs: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        #: Seconds every new job stays PENDING before it starts.
        self.pending_seconds = 0.0
        #: ``expires_in`` of the tokens handed out; google-auth refreshes a token that
        #: expires within minutes, so a small value makes every request refresh.
        self.token_lifetime = 3600
        self.lock = threading.RLock()
        self._ids = itertools.count(int(time.time()) % 100000 * 1000 + 1)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeVertex:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel.set()
        for thread in self._threads:
            thread.join(timeout=15)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def inject(self, op: str, status: int = 503, *, after: bool = False, delay: float = 0.0,
               times: int = 1, status_name: str | None = None) -> None:
        with self.lock:
            self.faults.append(Fault(op, status, after, delay, times, status_name))

    def count(self, method: str, suffix_pattern: str) -> int:
        """How many requests matched ``method`` and a regex on the path (no query)."""
        return sum(1 for m, path in list(self.requests)
                   if m == method and re.search(suffix_pattern, path.split("?")[0]))

    def wait_until(self, job_id: str, states: set[str] | str, timeout: float = 60) -> Job:
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.jobs.get(job_id)
            if job is not None and job.state in wanted:
                return job
            time.sleep(0.02)
        got = self.jobs.get(job_id)
        raise TimeoutError(f"job {job_id} not in {wanted} after {timeout}s: "
                           f"{got.state if got else 'no such job'}\n{got.log if got else ''}")

    # ------------------------------------------------------------------ API
    def _take_fault(self, op: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.op == op and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def handle(self, method: str, path: str, query: dict[str, list[str]],
               body: dict[str, Any] | None, authorized: bool) -> tuple[int, Any]:
        if path == "/token" and method == "POST":
            fault = self._take_fault("token")
            if fault is not None:  # the OAuth error format, which google-auth reads
                return fault.status, {"error": "invalid_grant",
                                      "error_description": "injected fault on token"}
            return 200, {"access_token": ACCESS_TOKEN, "expires_in": self.token_lifetime,
                         "token_type": "Bearer"}
        if not authorized:
            raise ApiError(401, "Request is missing required authentication credential.")
        int_enums = "enum-encoding=int" in ";".join(query.get("$alt", []))
        if m := re.match(_BASE + r"$", path):
            parent = f"projects/{m['project']}/locations/{m['location']}"
            if method == "POST":
                return self._with_fault("create", lambda: self._create(parent, body or {},
                                                                        int_enums))
            if method == "GET":
                return self._with_fault("list", lambda: self._list(parent, query, int_enums))
        if (m := re.match(_PIPELINE_JOB, path)) and method == "GET":
            pipeline = self.pipeline_jobs.get(m["id"])
            if pipeline is None:
                raise ApiError(404, f"PipelineJob {m['id']} not found")
            name = f"projects/{m['project']}/locations/{m['location']}/pipelineJobs/{m['id']}"
            return 200, {"name": name, **pipeline}
        if m := re.match(_BASE + r"/(?P<id>[^/:]+):cancel$", path):
            if method == "POST":
                return self._with_fault("cancel", lambda: self._cancel(m["id"]))
        if m := re.match(_BASE + r"/(?P<id>[^/:]+)$", path):
            if method == "GET":
                return self._with_fault("get", lambda: self._get(m["id"], int_enums))
        raise ApiError(404, f"no route for {method} {path}")

    def _with_fault(self, op: str, action: Any) -> tuple[int, Any]:
        fault = self._take_fault(op)
        if fault is None:
            return 200, action()
        if fault.status == 200:  # commit late: the client may have given up by now
            time.sleep(fault.delay)
            return 200, action()
        if fault.after:
            action()
        if fault.delay:
            time.sleep(fault.delay)
        raise ApiError(fault.status, f"injected fault on {op}", fault.status_name)

    def _create(self, parent: str, body: dict[str, Any], int_enums: bool) -> dict[str, Any]:
        _validate(body)
        job_id = str(next(self._ids))
        job = Job(job_id, f"{parent}/customJobs/{job_id}", body)
        with self.lock:
            self.jobs[job_id] = job
        thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self._threads.append(thread)
        thread.start()
        return job.to_json(int_enums)

    def _get(self, job_id: str, int_enums: bool) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"CustomJob {job_id} not found")
        job.gets += 1
        return job.to_json(int_enums)

    def _list(self, parent: str, query: dict[str, list[str]], int_enums: bool
              ) -> dict[str, Any]:
        wanted = _parse_filter(query.get("filter", [""])[0])
        size = min(int(query.get("pageSize", [self.page_size])[0]), self.page_size)
        start = int(query.get("pageToken", ["0"])[0] or 0)
        with self.lock:
            matching = [
                j for j in self.jobs.values()
                if j.name.startswith(parent + "/")
                and all(j.body.get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
        page = matching[start:start + size]
        out: dict[str, Any] = {"customJobs": [j.to_json(int_enums) for j in page]}
        if start + size < len(matching):
            out["nextPageToken"] = str(start + size)
        return out

    def _cancel(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"CustomJob {job_id} not found")
        if job.state in TERMINAL:
            raise ApiError(400, f"CustomJob {job_id} is already in state {job.state}")
        self._set(job, "JOB_STATE_CANCELLING")
        job.cancel.set()
        return {}

    # ------------------------------------------------------------------ running jobs
    def _set(self, job: Job, state: str, **extra: Any) -> None:
        with self.lock:
            job.state = state
            job.update_time = _now()
            for key, value in extra.items():
                setattr(job, key, value)

    def _run(self, job: Job) -> None:
        try:
            self._run_job(job)
        except Exception as error:  # a bug here must show up as a failed job, not a hang
            self._set(job, "JOB_STATE_FAILED", end_time=_now(),
                      error={"code": 13, "message": f"fake Vertex internal error: {error!r}"})
        finally:
            job.done.set()

    def _run_job(self, job: Job) -> None:
        pool = job.body["jobSpec"]["workerPoolSpecs"][0]
        spec = pool["pythonPackageSpec"]
        root = self.workdir / job.id
        root.mkdir(parents=True, exist_ok=True)
        queued = time.monotonic()
        while time.monotonic() - queued < self.pending_seconds:  # re-read: tests may lower it
            if job.cancel.wait(0.02):
                self._set(job, "JOB_STATE_CANCELLED", end_time=_now())
                return
        try:
            job.pythonpath, job.requirements = self._install(spec["packageUris"], root / "pkgs")
        except FileNotFoundError as error:
            self._set(job, "JOB_STATE_FAILED", end_time=_now(),
                      error={"code": 3, "message": f"Package not found: {error}"})
            return
        if job.cancel.is_set():
            self._set(job, "JOB_STATE_CANCELLED", end_time=_now())
            return
        base = job.body["jobSpec"].get("baseOutputDirectory", {}).get("outputUriPrefix", "")
        env = dict(self.job_env)
        env["PYTHONPATH"] = os.pathsep.join(job.pythonpath + self.extra_pythonpath)
        env["CLOUD_ML_JOB_ID"] = job.id
        if base:
            base = base.rstrip("/")
            env.update(AIP_MODEL_DIR=f"{base}/model/", AIP_CHECKPOINT_DIR=f"{base}/checkpoints/",
                       AIP_TENSORBOARD_LOG_DIR=f"{base}/logs/")
        run_dir = root / "run"
        run_dir.mkdir(exist_ok=True)
        self._set(job, "JOB_STATE_RUNNING", start_time=_now())
        log_path = root / "job.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [self.python, "-m", spec["pythonModule"], *spec.get("args", [])],
                cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            while proc.poll() is None:
                if job.cancel.wait(0.05):
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        job.log = log_path.read_text(errors="replace")
        job.returncode = proc.returncode
        if job.cancel.is_set():
            self._set(job, "JOB_STATE_CANCELLED", end_time=_now(),
                      error={"code": 1, "message": "CANCELED"})
        elif proc.returncode == 0:
            self._set(job, "JOB_STATE_SUCCEEDED", end_time=_now())
        else:
            # Vertex's own wording: the traceback is in the logs, not in the job's error.
            project = job.name.split("/")[1]
            self._set(job, "JOB_STATE_FAILED", end_time=_now(), error={
                "code": 3,
                "message": f"The replica workerpool0-0 exited with a non-zero status of "
                           f"{proc.returncode}. Termination reason: Error. To find out more "
                           "about why your job exited please check the logs: "
                           f"https://console.cloud.google.com/logs/viewer?project={project}"
                           f"&resource=ml_job%2Fjob_id%2F{job.id}",
            })

    def _install(self, uris: Sequence[str], dest: Path) -> tuple[list[str], list[str]]:
        """Download and unpack each archive; return (PYTHONPATH entries, requirements)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="fake", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": self.storage_endpoint})
        dest.mkdir(parents=True, exist_ok=True)
        paths, requirements = [], []
        for uri in uris:
            bucket, _, name = uri[len("gs://"):].partition("/")
            blob = client.bucket(bucket).blob(name)
            archive = dest / Path(name).name
            try:
                blob.download_to_filename(str(archive))
            except Exception as error:
                archive.unlink(missing_ok=True)
                raise FileNotFoundError(uri) from error
            if not archive.name.endswith(".tar.gz"):
                raise FileNotFoundError(f"{uri} (the fake installs sdists only)")
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")
            top = dest / archive.name[: -len(".tar.gz")]
            paths.append(str(top))
            requirements += _requirements(top)
        return paths, requirements

    def remove_workdirs(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _requirements(top: Path) -> list[str]:
    """An unpacked sdist's unconditional requirements (what pip would install with it)."""
    for requires in top.glob("*.egg-info/requires.txt"):
        out = []
        for line in requires.read_text().splitlines():
            if line.startswith("["):  # extras and markers sections follow
                break
            if line.strip():
                out.append(line.strip())
        return out
    info = top / "PKG-INFO"
    if info.is_file():
        return [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    return []


def _validate(body: dict[str, Any]) -> None:
    """Reject what Vertex AI would reject (400), for the fields recforge sends."""
    if not body.get("displayName"):
        raise ApiError(400, "CustomJob.display_name is required")
    if len(body["displayName"]) > 128:
        raise ApiError(400, "display_name is longer than 128 characters")
    labels = body.get("labels", {})
    if len(labels) > 64:
        raise ApiError(400, "at most 64 labels")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(str(value)):
            raise ApiError(400, f"invalid label {key}={value!r}")
    pools = body.get("jobSpec", {}).get("workerPoolSpecs") or []
    if not pools:
        raise ApiError(400, "job_spec.worker_pool_specs is required")
    for pool in pools:
        if not pool.get("machineSpec", {}).get("machineType"):
            raise ApiError(400, "machine_spec.machine_type is required")
        if int(pool.get("replicaCount", 0)) < 1:
            raise ApiError(400, "replica_count must be at least 1")
        spec = pool.get("pythonPackageSpec")
        if spec is None:
            raise ApiError(400, "the fake only runs python_package_spec pools")
        if not spec.get("executorImageUri") or not spec.get("pythonModule"):
            raise ApiError(400, "executor_image_uri and python_module are required")
        uris = spec.get("packageUris") or []
        if not uris or not all(u.startswith("gs://") for u in uris):
            raise ApiError(400, "package_uris must be gs:// URIs")
    out = body["jobSpec"].get("baseOutputDirectory", {}).get("outputUriPrefix")
    if out is not None and not out.startswith("gs://"):
        raise ApiError(400, "base_output_directory must be a gs:// URI")


def _parse_filter(text: str) -> dict[str, str]:
    """``labels.k="v" AND labels.k2="v2"`` -> ``{k: v, k2: v2}``; anything else is a 400."""
    if not text.strip():
        return {}
    out = {}
    for term in re.split(r"\s+AND\s+", text.strip()):
        m = _FILTER_TERM.match(term.strip())
        if not m:
            raise ApiError(400, f"unsupported filter term: {term!r}")
        out[m[1]] = m[2]
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakeVertex
    protocol_version = "HTTP/1.1"
    #: Without this, keep-alive responses wait ~40 ms for delayed ACKs (cloud-testing.md).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.fake.requests.append((method, self.path))
        try:
            body = None
            if raw:
                if parts.path == "/token":
                    body = {}
                else:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ApiError(400, "request body is not JSON") from None
            authorized = (self.headers.get("Authorization") or "").startswith("Bearer ")
            status, payload = self.fake.handle(method, parts.path, query, body, authorized)
        except ApiError as error:
            status = error.status
            payload = {"error": {"code": error.status, "message": error.message,
                                 "status": error.status_name}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")
