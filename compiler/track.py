"""Record a compile in the ledger, then run or submit it with the experiment tracked.

``track`` is what ``python -m compiler`` does after preflight and the write: it opens the
ledger once, as a context manager (closed however the run or submission ends, raised
exceptions and Ctrl-C included), records the compile, and runs locally (``run=local``) or
submits (``submit=vertex``) with that experiment marked running, then completed or failed.
The sweep a point belongs to comes in as an argument.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compiler.cloud import main_submit
from compiler.errors import RecforgeError
from compiler.ledger import lite
from compiler.ledger.provenance import record_fields
from compiler.ledger.records import LedgerError

if TYPE_CHECKING:
    from compiler.core.pipeline import CompileResult
    from compiler.ledger import Ledger
    from compiler.preflight import Checked


@dataclass(frozen=True)
class Outcome:
    """How a tracked command ended: its exit code, and the metrics of what ran (``None``
    when nothing ran or it did not complete)."""

    code: int
    number: int
    metrics: dict[str, Any] | None


def track(checked: Checked, result: CompileResult, overrides: Sequence[str], *,
          sweep_id: int | None = None, in_sweep: bool = False) -> Outcome:
    """Record ``result`` (already written) and run or submit it, per ``checked``.

    ``sweep_id``: the ledger sweep this compile is a point of. ``in_sweep``: a failed
    submission still returns the metrics the ledger holds (none), not its exit code, so the
    sweep goes on.
    """
    if checked.run is None and checked.submit is None:
        number = _record_compile_lite(checked, result, overrides, sweep_id)
        if number is not None:  # recorded without loading SQLAlchemy
            return Outcome(0, number, None)
    with _open_ledger(checked.ledger_url) as ledger:
        number = _record_compile(ledger, checked, result, overrides, sweep_id)
        metrics = None
        if checked.run is not None:
            # lazy: the local runner and the job-side runner modules, only for run=local
            from compiler.local.run import run_local

            metrics = tracked(ledger, number, "local", lambda: run_local(result, checked.cfg))
        elif checked.submit is not None:
            code = main_submit(result.emitted.output_dir, checked.cfg.submit,
                               result.plan.required_features(), ledger,
                               overrides=list(overrides), experiment_number=number)
            if code and not in_sweep:
                return Outcome(code, number, None)
            metrics = _ledger_metrics(ledger, number)
    return Outcome(0, number, metrics)


def _open_ledger(url: str) -> Ledger:
    # lazy: the ledger imports SQLAlchemy at module top
    from compiler.ledger import Ledger

    try:
        return Ledger(url)
    except LedgerError as error:
        raise RecforgeError(f"ledger: {error}") from None


def _record_compile(ledger: Ledger, checked: Checked, result: CompileResult,
                    overrides: Sequence[str], sweep_id: int | None) -> int:
    """Every compile gets an experiment number in the ledger (see ``compiler.ledger``)."""
    artifacts = {"emitted": str(result.emitted.output_dir)} if result.emitted else {}
    try:
        # The record holds everything that can change the result, not only what the code's
        # config hash covers: data, run and submit settings, seeds, compiler and source digest.
        number = ledger.record_compile(
            result.config.config_hash, result.config.model.name, result.config.features.name,
            list(overrides), artifacts=artifacts, sweep_id=sweep_id,
            **record_fields(checked.cfg, result.config.data),
        )
    except LedgerError as error:
        raise RecforgeError(f"ledger: {error}") from None
    print(f"  experiment #{number} recorded in {ledger.display_url}")
    return number


def _record_compile_lite(checked: Checked, result: CompileResult, overrides: Sequence[str],
                         sweep_id: int | None) -> int | None:
    """A compile alone, in a SQLite ledger at the current schema: recorded through the stdlib
    ``sqlite3`` (``compiler.ledger.lite``, the same row). None: not such a ledger; nothing
    was written, and ``Ledger`` records it."""
    artifacts = {"emitted": str(result.emitted.output_dir)} if result.emitted else {}
    try:
        number = lite.record_compile(
            checked.ledger_url, result.config.config_hash, result.config.model.name,
            result.config.features.name, list(overrides), artifacts=artifacts,
            sweep_id=sweep_id, **record_fields(checked.cfg, result.config.data),
        )
    except LedgerError as error:
        raise RecforgeError(f"ledger: {error}") from None
    if number is not None:
        print(f"  experiment #{number} recorded in {checked.ledger_url}")
    return number


def _ledger_metrics(ledger: Ledger, number: int) -> dict[str, Any] | None:
    """The metrics a submission recorded for ``number`` (the job ran elsewhere)."""
    record = ledger.get(number)
    final = {k: v for k, v in record.metrics.items() if v is not None}
    return {"final": final} if record.status == "completed" else None


def tracked(ledger: Ledger, number: int, kind: str, work: Callable[[], Any]) -> dict[str, Any]:
    """Run ``work`` with its experiment marked running, then completed or failed.

    While it runs, a heartbeat thread keeps the record fresh; with the host and pid recorded
    here, readers show it ``abandoned`` if this process dies without a word (SIGKILL, OOM).
    """
    # lazy: the ledger imports SQLAlchemy at module top
    from compiler.ledger.liveness import Heartbeat, this_host

    ledger.start(number, kind, host=this_host(), pid=os.getpid())
    try:
        with Heartbeat(ledger, number):
            outcome = work()
    except BaseException as error:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error)
        ledger.fail(number, reason or type(error).__name__)
        raise
    ledger.complete(number, outcome.metrics, artifacts={"run_dir": str(outcome.run_dir)},
                    data_hash=getattr(outcome, "data_hash", None))
    return outcome.metrics
