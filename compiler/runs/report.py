"""A single self-contained HTML report of ledger runs, with matplotlib plots inlined as PNG.

Plots are drawn on ``matplotlib.figure.Figure`` objects directly (the Agg renderer), never
through pyplot: no GUI backend is chosen, no global figure state leaks between plots, and it
works headless. The page itself is a Jinja2 template shipped with the package
(``templates/report.html.j2``), autoescaped. matplotlib and Jinja2 are imported only when a
report is built.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from compiler.ledger import HIGHER_IS_BETTER, METRIC_KEYS, Experiment, LedgerError
from compiler.runs.diff import swept_parameters

if TYPE_CHECKING:
    import jinja2
    from matplotlib.figure import Figure

RECALL_KEYS = ("recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100")


@dataclass(frozen=True)
class Report:
    html: str
    #: Number of embedded plot images, by section.
    plots: dict[str, int]
    swept: tuple[str, ...]


def build_report(
    experiments: Sequence[Experiment],
    metric: str = "recall_at_100",
    *,
    title: str = "recforge run report",
    source: str = "",
) -> Report:
    """Build the HTML report for ``experiments`` (e.g. one sweep's runs).

    The page is ``templates/report.html.j2`` (Jinja2, autoescaped); this function computes
    what it shows: the ranked table, and the plots as base64 PNGs.
    """
    runs = list(experiments)
    swept = swept_parameters(runs)
    plots = {"scatter": 0, "recall": 0, "curves": 0}

    scatter: list[dict[str, str]] = []
    for key, values in swept.items():
        points = [
            (values[e.number], e.metric(metric), e.number) for e in runs if e.number in values
        ]
        points = [(x, y, n) for x, y, n in points if y is not None]
        if not points:
            continue
        scatter.append(_figure(_scatter(key, metric, points), f"{key} against {metric}"))
    plots["scatter"] = len(scatter)

    with_recall = [e for e in runs if any(e.metric(k) is not None for k in RECALL_KEYS)]
    recall = _figure(_recall_bars(with_recall), "Recall@K per run") if with_recall else None
    plots["recall"] = 1 if recall else 0

    curves: list[dict[str, str]] = []
    with_history = [e for e in runs if e.history]
    if len(with_history) > 1:
        curves.append(_figure(_overlay(with_history, metric), "All runs per epoch"))
    curves += [_figure(_curves(e), f"#{e.number} {e.model} per epoch") for e in with_history]
    plots["curves"] = len(curves)

    page = _template().render(
        title=title,
        metric=metric,
        runs=runs,
        source=source,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        table=_runs_table(runs, metric, swept),
        swept=bool(swept),
        scatter=scatter,
        recall=recall,
        curves=curves,
        without_history=[f"#{e.number}" for e in runs if not e.history],
        failed=[
            {"number": e.number, "error": (e.error or "(no error text)")[-2000:]}
            for e in runs
            if e.status == "failed"
        ],
    )
    return Report(html=page + "\n", plots=plots, swept=tuple(swept))


def _template() -> jinja2.Template:
    """The report page, loaded from the package (``compiler/runs/templates``)."""
    try:
        # lazy: Jinja2 (the ledger extra): building a report only
        import jinja2
    except ImportError as exc:
        raise LedgerError(f"the report needs jinja2 (pip install 'recforge[ledger]'): {exc}"
                          ) from None
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("compiler.runs", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails, never renders as ""
        keep_trailing_newline=False,
    )
    return environment.get_template("report.html.j2")


# ------------------------------------------------------------------------------ table
def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _runs_table(runs: Sequence[Experiment], metric: str, swept: dict[str, Any]
                ) -> dict[str, list[dict[str, Any]]]:
    """The ranked runs table: columns and rows, as plain values for the template."""
    metrics = [k for k in METRIC_KEYS if any(e.metric(k) is not None for e in runs)]
    best = {k: _best(runs, k) for k in metrics}
    params = list(swept)
    # Swept keys by their last part (learning_rate), the full key as the tooltip, unless two
    # keys would then read the same.
    tails = [p.rsplit(".", 1)[-1] for p in params]
    shown = [t if tails.count(t) == 1 else p for t, p in zip(tails, params, strict=True)]
    ordered = sorted(
        runs,
        key=lambda e: _sort_key(e.metric(metric), HIGHER_IS_BETTER.get(metric, True), e.number),
    )
    rows = [
        {
            "number": e.number,
            "status": e.status,
            "kind": e.kind,
            "model": e.model,
            "features": e.features,
            "params": [swept[p].get(e.number, "—") for p in params],
            "metrics": [
                {"text": _fmt(e.metric(k)),
                 "best": e.metric(k) is not None and e.metric(k) == best[k]}
                for k in metrics
            ],
        }
        for e in ordered
    ]
    return {
        "params": [{"key": p, "shown": t} for p, t in zip(params, shown, strict=True)],
        "metrics": [{"key": k, "shown": _short(k)} for k in metrics],
        "rows": rows,
    }


def _short(metric: str) -> str:
    return metric.replace("recall_at_", "R@").replace("val_", "v_").replace("test_", "t_")


def _sort_key(value: float | None, higher: bool, number: int) -> tuple[int, float, int]:
    if value is None:
        return (1, 0.0, number)
    return (0, -value if higher else value, number)


def _best(runs: Sequence[Experiment], key: str) -> float | None:
    values = [e.metric(key) for e in runs if e.metric(key) is not None]
    if not values:
        return None
    return max(values) if HIGHER_IS_BETTER[key] else min(values)  # type: ignore[type-var]


def _figure(fig: Figure, caption: str) -> dict[str, str]:
    """A plot as the template's figure: its caption and its PNG, base64."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return {"caption": caption, "png": base64.b64encode(buffer.getvalue()).decode("ascii")}


# ------------------------------------------------------------------------------ plots
def _new_figure(width: float, height: float) -> Figure:
    # lazy: matplotlib: the runs report's charts only
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _curves(exp: Experiment) -> Figure:
    """Loss-like series on the left, the other metrics on the right; validation dashed."""
    history = sorted(exp.history, key=lambda h: h.get("epoch", 0))
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    keys: list[str] = []
    for record in history:
        for key, value in record.items():
            if key != "epoch" and key not in keys and _is_number(value):
                keys.append(key)
    panels = [
        [k for k in keys if "loss" in k],
        [k for k in keys if "loss" not in k],
    ]
    panels = [p for p in panels if p]
    fig = _new_figure(10, 3.0)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    colours: dict[str, str] = {}
    palette = [f"C{i}" for i in range(10)]
    for ax, panel in zip(axes, panels, strict=False):
        for key in panel:
            base = key.removeprefix("val_")
            colour = colours.setdefault(base, palette[len(colours) % len(palette)])
            validation = key.startswith("val_")
            xs = [x for x, h in zip(epochs, history, strict=True) if _is_number(h.get(key))]
            ys = [float(h[key]) for h in history if _is_number(h.get(key))]
            ax.plot(
                xs,
                ys,
                linestyle="--" if validation else "-",
                marker="s" if validation else "o",
                color=colour,
                label=f"{key} ({'validation' if validation else 'training'})",
            )
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if epochs:
            ax.set_xticks(sorted(set(epochs)))
    if not panels:
        axes[0].text(0.5, 0.5, "no numeric history", ha="center", va="center")
    fig.suptitle(f"#{exp.number} {exp.model} / {exp.features} ({exp.status})", fontsize=11)
    return fig


def _overlay(runs: Sequence[Experiment], metric: str) -> Figure:
    """Training loss and one validation series of every run, on shared axes."""
    present = {k for e in runs for h in e.history for k in h}
    preferred = [f"val_{metric.removeprefix('val_').removeprefix('test_')}"]
    preferred += ["val_rmse", "val_loss", "val_mae"]
    preferred += sorted(k for k in present if k.startswith("val_"))
    validation = next((k for k in preferred if k in present), None)
    keys = ["loss"] if "loss" in present else []
    keys += [validation] if validation else []
    fig = _new_figure(10, 3.6)
    axes = fig.subplots(1, max(len(keys), 1), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=False):
        for i, exp in enumerate(runs):
            points = sorted(
                (h.get("epoch", j + 1), float(h[key]))
                for j, h in enumerate(exp.history)
                if _is_number(h.get(key))
            )
            if points:
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    marker="s" if key.startswith("val_") else "o",
                    linestyle="--" if key.startswith("val_") else "-",
                    color=f"C{i % 10}",
                    label=f"#{exp.number}",
                )
        ax.set_title(f"{key} ({'validation' if key.startswith('val_') else 'training'})")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=2 if len(runs) > 8 else 1)
    return fig


def _recall_bars(runs: Sequence[Experiment]) -> Figure:
    fig = _new_figure(max(6.0, min(16.0, 1.2 * len(runs) + 3)), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(RECALL_KEYS)
    for i, key in enumerate(RECALL_KEYS):
        xs = [j + (i - (len(RECALL_KEYS) - 1) / 2) * width for j in range(len(runs))]
        ys = [e.metric(key) or 0.0 for e in runs]
        bars = ax.bar(xs, ys, width=width, label=f"Recall@{key.rsplit('_', 1)[1]}")
        if len(runs) <= 6:
            ax.bar_label(bars, labels=[_fmt(e.metric(key)) for e in runs], fontsize=7)
    ax.set_xticks(range(len(runs)), [f"#{e.number}" for e in runs])
    top = max((e.metric(k) or 0.0) for e in runs for k in RECALL_KEYS)
    ax.set_ylim(0, min(1.0, top * 1.2) if top > 0 else 1.0)
    ax.set_ylabel("recall")
    ax.set_xlabel("run")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(RECALL_KEYS))
    return fig


def _scatter(key: str, metric: str, points: Sequence[tuple[Any, float, int]]) -> Figure:
    fig = _new_figure(5.4, 3.6)  # two side by side on a laptop screen
    ax = fig.subplots()
    numeric = all(_is_number(x) for x, _, _ in points)
    if numeric:
        xs = [float(x) for x, _, _ in points]
        positive = [x for x in xs if x > 0]
        # Learning rates and regularisation strengths are swept on a log grid.
        if len(positive) == len(xs) and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
    else:
        categories = sorted({str(x) for x, _, _ in points})
        xs = [float(categories.index(str(x))) for x, _, _ in points]
        ax.set_xticks(range(len(categories)), categories)
    ys = [y for _, y, _ in points]
    ax.scatter(xs, ys, s=40, zorder=3)
    labels: dict[tuple[float, float], list[str]] = {}
    for x, y, (_, _, number) in zip(xs, ys, points, strict=True):
        labels.setdefault((x, y), []).append(f"#{number}")  # one label per spot, not a smear
    for (x, y), names in labels.items():
        ax.annotate(",".join(names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
