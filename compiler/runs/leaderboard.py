"""The leaderboard a ``-m`` sweep prints when it ends: every point, best objective first.

Each row is one experiment of the sweep: the overrides that set it apart from the other points,
its status (``abandoned`` included), its objective value and how long it took. Points without
a value (failed, abandoned, or a run that did not report the metric) come last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from compiler.ledger import HIGHER_IS_BETTER, METRIC_KEYS, Experiment
from compiler.runs.cli import _console, _duration, _status

DEFAULT_OBJECTIVE = "recall_at_100"
_LOWER_IS_BETTER_WORDS = ("loss", "rmse", "mae", "error")


def objective_of(experiments: Sequence[Experiment]) -> str:
    """The sweep's objective, as its points recorded it (``objective`` in the stored config)."""
    for exp in experiments:
        value = exp.resolved_config.get("objective")
        if isinstance(value, str) and value:
            return value
    return DEFAULT_OBJECTIVE


def higher_is_better(objective: str) -> bool:
    if objective in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[objective]
    return not any(word in objective for word in _LOWER_IS_BETTER_WORDS)


def objective_value(exp: Experiment, objective: str) -> float | None:
    """The point's final value of ``objective``: a metric column or an extra ``final`` key."""
    if objective in METRIC_KEYS:
        value: Any = exp.metric(objective)
    else:
        value = (exp.extra.get("final") or {}).get(objective)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def ranked(experiments: Sequence[Experiment], objective: str) -> list[Experiment]:
    """Best objective first; points without a value last, in experiment order."""
    sign = -1.0 if higher_is_better(objective) else 1.0

    def key(exp: Experiment) -> tuple[int, float, int]:
        value = objective_value(exp, objective)
        return (1, 0.0, exp.number) if value is None else (0, sign * value, exp.number)

    return sorted(experiments, key=key)


def distinguishing_overrides(experiments: Sequence[Experiment]) -> dict[int, list[str]]:
    """Each point's overrides minus those every point shares (the sweep's fixed settings)."""
    shared = set.intersection(*(set(e.overrides) for e in experiments)) if experiments else set()
    return {e.number: [o for o in e.overrides if o not in shared] for e in experiments}


def leaderboard_table(experiments: Sequence[Experiment], objective: str, title: str) -> Table:
    direction = "higher is better" if higher_is_better(objective) else "lower is better"
    table = Table(
        title=f"{title} · objective {objective} ({direction})",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("overrides")
    table.add_column("status", no_wrap=True)
    table.add_column(objective, justify="right", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    overrides = distinguishing_overrides(experiments)
    rank = 0
    for exp in ranked(experiments, objective):
        value = objective_value(exp, objective)
        rank += value is not None
        table.add_row(
            str(rank) if value is not None else "—",
            str(exp.number),
            " ".join(overrides[exp.number]) or "—",
            _status(exp),
            Text("—" if value is None else f"{value:.4g}", style="bold green" if rank == 1
                 and value is not None else ""),
            _duration(exp),
        )
    return table


def print_sweep_leaderboard(ledger: Any, sweep_id: int, console: Console | None = None) -> None:
    """Print sweep ``sweep_id``'s leaderboard from ``ledger`` (an open ``Ledger``)."""

    experiments = ledger.list(sweep_id=sweep_id)
    console = console or _console()
    if not experiments:
        console.print(f"sweep #{sweep_id}: no point was recorded in {ledger.display_url}")
        return
    objective = objective_of(experiments)
    console.print(leaderboard_table(experiments, objective, f"sweep #{sweep_id}"))
