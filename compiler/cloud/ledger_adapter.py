"""The only place ``compiler.cloud`` talks to the experiment ledger (``compiler.ledger``).

Submission order, and why:
1. ``record_compile`` -> experiment number (goes into the job's display name and labels);
2. ``start(n, kind="vertex")`` *before* the job is created: the ledger's unique index on active
   Vertex runs per config hash makes this a lock, so two racing submitters cannot both pass;
3. ``set_job(n, job_id)`` once Vertex AI returned the job;
4. ``complete(n, training_metrics)`` or ``fail(n, error)`` when the job ends.

``ledger=None`` turns all of this off. A ledger call that fails after the job exists is reported
as a warning: the job, not the bookkeeping, is what the user waits for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compiler.cloud.errors import SubmitError

if TYPE_CHECKING:
    from rich.console import Console

KIND = "vertex"


@dataclass(frozen=True)
class ActiveRun:
    """A running Vertex submission the ledger knows of."""

    number: int
    job_id: str | None
    artifacts: dict[str, str] = field(default_factory=dict)


class LedgerAdapter:
    def __init__(self, ledger: Any | None, console: Console) -> None:
        self.ledger = ledger
        self.console = console
        self.number: int | None = None
        #: False while the row could not be marked running (a forced duplicate); the end of the
        #: run tries again, since the other run may have ended by then.
        self.started = False
        self.job_id: str | None = None

    def record(self, manifest: Mapping[str, Any], overrides: Sequence[str],
               artifacts: Mapping[str, str], number: int | None = None) -> int | None:
        """The experiment this submission is: ``number`` when the caller already recorded the
        compile (its artifacts are added), else a new ``record_compile`` row."""
        if self.ledger is None:
            return None
        try:
            if number is not None:
                self.ledger.add_artifacts(number, dict(artifacts))
                self.number = number
            else:
                self.number = self._record(manifest, overrides, artifacts)
        except Exception as error:  # nothing exists yet: a ledger problem stops the submission
            raise SubmitError(f"experiment ledger: {error}",
                              hint="check RECFORGE_LEDGER_URL / the ledger database") from None
        return self.number

    def _record(self, manifest: Mapping[str, Any], overrides: Sequence[str],
                artifacts: Mapping[str, str]) -> int:
        return self.ledger.record_compile(
            manifest["config_hash"],
            manifest.get("model", ""),
            manifest.get("features", ""),
            list(overrides),
            manifest.get("resolved_config") or {},
            dict(artifacts),
        )

    def active(self, config_hash: str) -> ActiveRun | None:
        if self.ledger is None:
            return None
        found = self.ledger.find_active(config_hash, KIND)
        if found is None:
            return None
        return ActiveRun(found.number, found.job_id, dict(found.artifacts or {}))

    def start(self) -> None:
        """Mark the experiment running on Vertex; raises the ledger's ``DuplicateSubmission``."""
        if self.ledger is None or self.number is None:
            return
        self.ledger.start(self.number, kind=KIND)
        self.started = True

    @staticmethod
    def is_duplicate(error: BaseException) -> bool:
        return type(error).__name__ == "DuplicateSubmission"

    def settle(self, number: int, *, metrics: Mapping[str, Any] | None = None,
               artifacts: Mapping[str, str] | None = None, error: str | None = None) -> None:
        """Close another experiment whose Vertex job ended while nobody was watching."""
        if self.ledger is None:
            return
        if metrics is not None:
            self.ledger.complete(number, dict(metrics), dict(artifacts or {}))
        else:
            self.ledger.fail(number, error or "ended unwatched")

    def set_job(self, job_id: str) -> None:
        self.job_id = job_id
        if self.started:
            self._warn_on_error("record the job id",
                                lambda: self.ledger.set_job(self.number, job_id))

    def complete(self, metrics: Mapping[str, Any], artifacts: Mapping[str, str]) -> None:
        if self._late_start("record the metrics"):
            self._warn_on_error("record the metrics", lambda: self.ledger.complete(
                self.number, dict(metrics), dict(artifacts)))

    def fail(self, error: str) -> None:
        if self.ledger is None or self.number is None:
            return
        # Failing from "compiled" is allowed, so a submission that never started can fail too.
        self._warn_on_error("record the failure", lambda: self.ledger.fail(self.number, error))

    def unknown(self, note: str) -> None:
        """The create's outcome is unknown: the job may exist (``note`` names its label)."""
        if self.ledger is None or self.number is None:
            return
        self._warn_on_error("record the unknown outcome",
                            lambda: self.ledger.mark_unknown(self.number, note))

    def _late_start(self, what: str) -> bool:
        """Make sure the row is running (a forced duplicate could not start it at first)."""
        if self.ledger is None or self.number is None:
            return False
        if self.started:
            return True
        try:
            self.start()
            if self.job_id:
                self.ledger.set_job(self.number, self.job_id)
        except Exception as error:  # noqa: BLE001 - bookkeeping problems are only warnings
            self.console.print(f"[yellow]warning:[/] ledger: could not {what} for experiment "
                               f"{self.number}: {error}")
            return False
        return True

    def _warn_on_error(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - see _late_start
            self.console.print(f"[yellow]warning:[/] ledger: could not {what} for experiment "
                               f"{self.number}: {error}")
