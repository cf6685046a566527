"""Is a ``running`` experiment still running? Host, pid and a heartbeat decide.

A local run records its host and pid when it starts, and a daemon thread (``Heartbeat``)
refreshes its ``heartbeat_at`` every ``RECFORGE_LEDGER_HEARTBEAT_S`` seconds (default 30).
A reader shows such a run as ``abandoned`` when

- it was started on this host and its pid no longer exists (or is a zombie), or
- its heartbeat is older than ``RECFORGE_LEDGER_STALE_S`` seconds (default 300): its process
  is on another machine, or this pid now belongs to another process.

The verdict is computed when a record is read and is not written back: reading the ledger never
changes it. ``python -m compiler.runs fail N --reason ...`` records the end of such a run.
Runs without a pid (Vertex AI submissions: the job, not the submitting process, is the run)
are never judged this way. "This host" is ``socket.gethostname()``: two containers that share
a hostname but not a pid namespace would misjudge each other's runs, so give them distinct
hostnames when they share a ledger.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from compiler.errors import ConfigError

HEARTBEAT_ENV = "RECFORGE_LEDGER_HEARTBEAT_S"
STALE_ENV = "RECFORGE_LEDGER_STALE_S"
DEFAULT_HEARTBEAT_S = 30.0
DEFAULT_STALE_S = 300.0
ABANDONED = "abandoned"


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default


def check_liveness_settings() -> None:
    """``RECFORGE_LEDGER_HEARTBEAT_S`` / ``RECFORGE_LEDGER_STALE_S``, when set, are positive
    numbers of seconds (``ConfigError`` naming the variable); no side effects."""

    for name in (HEARTBEAT_ENV, STALE_ENV):
        raw = os.environ.get(name)
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(name, f"expected a positive number of seconds, got {raw!r}")


def heartbeat_interval() -> float:
    return _seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)


def stale_after() -> float:
    return _seconds(STALE_ENV, DEFAULT_STALE_S)


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # Linux: a killed child not yet reaped by its parent is a zombie, i.e. dead
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


def is_abandoned(stored_status: str, host: str | None, pid: int | None,
                 heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    """The reader's verdict for one record (see the module docstring)."""
    if stored_status != "running" or pid is None:
        return False
    if host == this_host() and not pid_alive(pid):
        return True
    if heartbeat_at is None:
        return False
    now = now or datetime.now(timezone.utc)
    return now - heartbeat_at > timedelta(seconds=stale_after())


class Heartbeat:
    """``with Heartbeat(ledger, number):`` refreshes the record's heartbeat in a daemon thread.

    A failing refresh (the ledger server is briefly unreachable) is retried at the next beat;
    if they keep failing the run will read as abandoned after the stale threshold, which is
    what a reader can know about it.
    """

    def __init__(self, ledger: Any, number: int, interval: float | None = None) -> None:
        self.ledger = ledger
        self.number = number
        self.interval = interval if interval is not None else heartbeat_interval()
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"recforge-heartbeat-{number}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.ledger.heartbeat(self.number)
                self.beats += 1
            except Exception:  # noqa: BLE001, S112 - see the class docstring
                continue
