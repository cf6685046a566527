"""``run.workers=N``: train with N local worker processes, a multi-worker cluster on loopback.

Each worker is ``python -m compiler.runner.job`` (what a Vertex AI replica runs) with its own
``TF_CONFIG`` (``tf.distribute.MultiWorkerMirroredStrategy`` reads the cluster from it): the
cluster lists N ``worker`` tasks on free loopback ports, and worker 0, the chief, alone writes
the outputs. Each worker's output goes to ``<run_dir>/workers/worker-<i>.log``. The launcher
waits for all of them; when one fails it stops the others and raises ``WorkerError`` with the
failed worker's log tail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compiler.errors import RecforgeError

#: Lines of a failed worker's log shown in the error.
LOG_TAIL_LINES = 30
#: Seconds between polls of the worker processes.
POLL_SECONDS = 0.5


class WorkerError(RecforgeError):
    """A training worker failed; the message carries its log tail."""


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct ports that are free on 127.0.0.1 now (the OS picks them; they are
    held open together so that no two are the same)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for held in sockets:
            held.bind(("127.0.0.1", 0))
        return [held.getsockname()[1] for held in sockets]
    finally:
        for held in sockets:
            held.close()


def tf_configs(ports: Sequence[int]) -> list[dict[str, Any]]:
    """One ``TF_CONFIG`` per worker: the same cluster of ``worker`` tasks, each its own index
    (worker 0, with no ``chief`` task in the cluster, is the chief)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": index}}
            for index in range(len(ports))]


def _log_tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(lines[-LOG_TAIL_LINES:])


def run_workers(job_args: Sequence[str], count: int, run_dir: Path) -> None:
    """Run ``python -m compiler.runner.job <job_args>`` as ``count`` workers of one cluster
    and wait for all of them. Raises ``WorkerError`` (after stopping the others) as soon as
    one exits with an error."""
    log_dir = run_dir / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[tuple[int, subprocess.Popen[bytes], Path]] = []
    try:
        for index, tf_config in enumerate(tf_configs(free_loopback_ports(count))):
            log_path = log_dir / f"worker-{index}.log"
            environment = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "compiler.runner.job", *job_args],
                    stdout=log, stderr=subprocess.STDOUT, env=environment,
                )
            processes.append((index, process, log_path))
        running = list(processes)
        while running:
            for entry in list(running):
                index, process, log_path = entry
                code = process.poll()
                if code is None:
                    continue
                running.remove(entry)
                if code != 0:
                    raise WorkerError(
                        f"training worker {index} of {count} failed (exit code {code}); the "
                        f"last lines of {log_path}:\n{_log_tail(log_path)}")
            time.sleep(POLL_SECONDS)
    finally:
        for _, process, _ in processes:  # the survivors of a failure wait forever otherwise
            if process.poll() is None:
                process.kill()
                process.wait()
