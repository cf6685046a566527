"""``python -m compiler.runs``: look at the run ledger.

    python -m compiler.runs list [--sort recall_at_100] [--asc|--desc] [--sweep ID] [--limit N]
    python -m compiler.runs show N
    python -m compiler.runs compare N M
    python -m compiler.runs report [--sweep ID] [--metric recall_at_100] [--out report.html]
    python -m compiler.runs fail N --reason TEXT     # release a stuck "running" record

Every command takes ``--ledger URL`` (default: ``$RECFORGE_LEDGER_URL``, else
``<cwd>/.recforge/ledger.db``). Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from compiler.ledger import (
    HIGHER_IS_BETTER,
    METRIC_KEYS,
    SORTABLE_COLUMNS,
    Experiment,
    Ledger,
    LedgerError,
    LedgerNotFound,
    check_metric_name,
    check_sort_column,
)
from compiler.runs.diff import (
    config_diff,
    effective_note,
    flatten,
    format_value,
    has_provenance,
    is_missing,
    provenance_diff,
)
from compiler.runs.report import build_report

EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    console = _console()
    try:
        return int(args.handler(args, console))
    except LedgerNotFound as exc:
        if args.command == "list":
            console.print(f"{exc}.")
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `... list | head`: the reader left. Point stdout at devnull so the interpreter's
        # final flush does not raise again, and exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _console() -> Console:
    # Piped output (no terminal) would be cut to 80 columns; a ledger table needs more.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    # markup=False: config keys like buyer[customer_id] are data, not rich markup.
    return Console(width=width, highlight=False, markup=False)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--ledger",
        metavar="URL",
        default=None,
        help="ledger URL or SQLite path (default: $RECFORGE_LEDGER_URL, else "
        "<cwd>/.recforge/ledger.db)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m compiler.runs", description="Inspect recforge's run ledger."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="table of experiments")
    p.add_argument(
        "--sort",
        default="number",
        metavar="COLUMN",
        help=f"sort column: {', '.join(SORTABLE_COLUMNS)} (metrics: best first)",
    )
    order = p.add_mutually_exclusive_group()
    order.add_argument("--asc", dest="descending", action="store_false", default=None)
    order.add_argument("--desc", dest="descending", action="store_true")
    p.add_argument("--sweep", type=int, default=None, metavar="ID")
    p.add_argument("--status", default=None)
    p.add_argument("--limit", type=int, default=None, metavar="N")
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", parents=[common], help="one experiment in full")
    p.add_argument("number", type=int)
    p.set_defaults(handler=_show)

    p = sub.add_parser("compare", parents=[common], help="config differences, metric deltas")
    p.add_argument("number", type=int)
    p.add_argument("other", type=int)
    p.set_defaults(handler=_compare)

    p = sub.add_parser("report", parents=[common], help="self-contained HTML report")
    p.add_argument("--sweep", type=int, default=None, metavar="ID")
    p.add_argument("--metric", default="recall_at_100")
    p.add_argument("--out", default="report.html", type=Path)
    p.set_defaults(handler=_report)

    p = sub.add_parser("fail", parents=[common], help="mark a compiled/running experiment failed")
    p.add_argument("number", type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_fail)
    return parser


def _open(args: argparse.Namespace) -> Ledger:
    return Ledger(args.ledger, create=False)


# ------------------------------------------------------------------------------ formatting
def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _time(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(exp: Experiment) -> str:
    seconds = exp.duration_s
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "yellow",
    "compiled": "cyan",
    "abandoned": "magenta",
    "unknown": "magenta",
}


def _status(exp: Experiment) -> Text:
    return Text(exp.status, style=_STATUS_STYLE.get(exp.status, ""))


# ------------------------------------------------------------------------------ commands
def _list(args: argparse.Namespace, console: Console) -> int:
    column = check_sort_column(args.sort)
    with _open(args) as ledger:
        rows = ledger.list(
            sort_by=column,
            descending=args.descending,
            sweep_id=args.sweep,
            limit=args.limit,
            status=args.status,
        )
        where = ledger.display_url
    if not rows:
        console.print(f"No experiments in {where}.")
        return 0
    # Only the metric columns some listed run has (a retrieval sweep has no RMSE).
    metrics = [k for k in METRIC_KEYS if any(e.metric(k) is not None for e in rows)]
    best = {
        k: (max if HIGHER_IS_BETTER[k] else min)(
            e.metric(k) for e in rows if e.metric(k) is not None
        )
        for k in metrics
    }
    # Full metric names first (they are what --sort takes); on a narrow terminal, short
    # headers, then fewer columns, rather than a table rich squeezes into ellipses.
    for short, compact in ((False, False), (True, False), (True, True)):
        table = _list_table(rows, metrics, best, column, short=short, compact=compact)
        table.title = f"{len(rows)} experiments · {where}"
        wide = console.options.update_width(100_000)
        if Measurement.get(console, wide, table).maximum <= console.width:
            break
    console.print(table)
    if short:
        console.print("R@K = recall_at_K; v_ = val_, t_ = test_", style="dim")
    return 0


def _short(metric: str) -> str:
    return metric.replace("recall_at_", "R@").replace("val_", "v_").replace("test_", "t_")


def _list_table(
    rows: Sequence[Experiment],
    metrics: Sequence[str],
    best: dict[str, float],
    column: str,
    *,
    short: bool,
    compact: bool,
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("#", justify="right", no_wrap=True)
    names = ["status", "model", "features", "sweep"]
    if not compact:
        names[1:1] = ["kind"]
        names += ["created", "took"]
    for name in names:
        table.add_column(name, no_wrap=True, style="bold" if name == column else None)
    for key in metrics:
        header = (_short(key) if short else key) + (" *" if key == column else "")
        table.add_column(header, justify="right", no_wrap=True)
    for e in rows:
        values: dict[str, str | Text] = {
            "status": _status(e),
            "kind": e.kind,
            "model": e.model,
            "features": e.features,
            "sweep": "—" if e.sweep_id is None else str(e.sweep_id),
            "created": e.created_at.astimezone().strftime("%m-%d %H:%M"),
            "took": _duration(e),
        }
        cells: list[str | Text] = [str(e.number), *(values[n] for n in names)]
        for key in metrics:
            value = e.metric(key)
            style = "bold green" if value is not None and value == best[key] else ""
            cells.append(Text(_num(value), style=style))
        table.add_row(*cells)
    return table


def _show(args: argparse.Namespace, console: Console) -> int:
    with _open(args) as ledger:
        e = ledger.get(args.number)
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    fields: list[tuple[str, str | Text]] = [
        ("experiment", f"#{e.number}"),
        ("status", _status(e)),
        ("kind", e.kind),
        ("model", e.model),
        ("features", e.features),
        ("config hash", e.config_hash),
        ("sweep", "—" if e.sweep_id is None else str(e.sweep_id)),
        ("job id", e.job_id or "—"),
        ("created", _time(e.created_at)),
        ("started", _time(e.started_at)),
        ("finished", _time(e.finished_at)),
        ("took", _duration(e)),
        ("overrides", " ".join(e.overrides) or "—"),
        *_provenance_fields(e),
    ]
    for key in ("model_type", "test_split", "candidates", "nonfinite"):
        if key in e.extra:
            fields.append((key, format_value(e.extra[key])))
    for label, value in fields:
        info.add_row(label, value if isinstance(value, Text) else Text(value))
    console.print(info)
    if e.error:
        console.print(Text("\nerror:", style="bold red"))
        console.print(Text(e.error))

    if any(v is not None for v in e.metrics.values()) or e.extra.get("final"):
        metrics = Table(title="metrics", box=box.SIMPLE_HEAD, title_justify="left")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for key in METRIC_KEYS:
            metrics.add_row(key, _num(e.metric(key)))
        for key, value in (e.extra.get("final") or {}).items():
            metrics.add_row(str(key), _cell(value))
        console.print(metrics)

    if e.history:
        keys = [k for k in dict.fromkeys(k for h in e.history for k in h) if k != "epoch"]
        history = Table(title="history", box=box.SIMPLE_HEAD, title_justify="left")
        history.add_column("epoch", justify="right")
        for key in keys:
            history.add_column(key, justify="right")
        for record in e.history:
            history.add_row(
                str(record.get("epoch", "")),
                *(_cell(record.get(k)) for k in keys),
            )
        console.print(history)

    if e.artifacts:
        artifacts = Table(title="artifacts", box=box.SIMPLE_HEAD, title_justify="left")
        artifacts.add_column("name")
        artifacts.add_column("path")
        for name, path in e.artifacts.items():
            artifacts.add_row(name, path)
        console.print(artifacts)

    config = Table(title="resolved config", box=box.SIMPLE_HEAD, title_justify="left")
    config.add_column("key")
    config.add_column("value")
    trained = {f"model.{name}": effective_note(e, name) for name in ("epochs", "batch_size")}
    for key, value in flatten(e.resolved_config).items():
        # The value the trainer got, where run.* overrode the model's (say so, with both).
        config.add_row(key, trained.get(key) or format_value(value))
    console.print(config)
    return 0


def _provenance_fields(e: Experiment) -> list[tuple[str, str | Text]]:
    fields: list[tuple[str, str | Text]] = []
    if e.pid is not None:
        beat = f", last heartbeat {_time(e.heartbeat_at)}" if e.heartbeat_at else ""
        fields.append(("process", f"pid {e.pid} on {e.host or '?'}{beat}"))
    if e.status != e.stored_status:
        fields.append(("recorded status", f"{e.stored_status} (its process is gone)"))
    if not has_provenance(e):
        return [*fields, ("provenance", Text("not recorded (no compiler version, source "
                                             "digest, seeds or run settings)", "dim"))]
    effective = e.effective or {}
    for name, label in (("epochs", "epochs"), ("batch_size", "batch size")):
        if effective.get(name) is not None:
            source = effective.get(f"{name}_from", "")
            fields.append((label, f"{effective[name]} ({source})" if source else
                           str(effective[name])))
    seeds = " ".join(f"{k}={format_value(v)}" for k, v in (e.seeds or {}).items())
    fields += [
        ("seeds", seeds or "—"),
        ("data hash", e.data_hash or Text("— (no data loaded by a finished run)", "dim")),
        ("compiler", f"recforge {e.compiler_version}"),
        ("source digest", e.source_digest or "—"),
    ]
    return fields


def _cell(value: object) -> str:
    if isinstance(value, float):
        return _num(value)
    return "—" if value is None else format_value(value)


def _compare(args: argparse.Namespace, console: Console) -> int:
    with _open(args) as ledger:
        a = ledger.get(args.number)
        b = ledger.get(args.other)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_column()
    head.add_row("", f"#{a.number}", f"#{b.number}")
    head.add_row("status", _status(a), _status(b))
    head.add_row("model", a.model, b.model)
    head.add_row("features", a.features, b.features)
    head.add_row("config hash", a.config_hash[:16], b.config_hash[:16])
    head.add_row("overrides", " ".join(a.overrides) or "—", " ".join(b.overrides) or "—")
    console.print(head)

    diff = config_diff(a.resolved_config, b.resolved_config)
    recorded = provenance_diff(a, b)
    if recorded:
        table = Table(
            title=f"what ran: differences ({len(recorded)})",
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        table.add_column("")
        table.add_column(f"#{a.number}")
        table.add_column(f"#{b.number}")
        for key, left, right in recorded:
            table.add_row(
                key,
                Text("(not recorded)" if left is None else format_value(left),
                     style="dim" if left is None else ""),
                Text("(not recorded)" if right is None else format_value(right),
                     style="dim" if right is None else ""),
            )
        console.print(table)
    if diff:
        table = Table(
            title=f"config differences ({len(diff)})", box=box.SIMPLE_HEAD, title_justify="left"
        )
        table.add_column("key")
        table.add_column(f"#{a.number}")
        table.add_column(f"#{b.number}")
        for key, left, right in diff:
            table.add_row(
                key,
                Text(format_value(left), style="dim" if is_missing(left) else ""),
                Text(format_value(right), style="dim" if is_missing(right) else ""),
            )
        console.print(table)
    undocumented = [f"#{e.number}" for e in (a, b) if not has_provenance(e)]
    if not diff and not recorded and not undocumented:
        console.print("\nIdentical: config (model, features, data, run, submit), seeds, data "
                      "hash, source digest and compiler version.")
    elif not diff and recorded:
        console.print("\nThe configs are identical, but what ran differs (above).")
    elif not diff:
        console.print("\nThe recorded configs are identical.")
    if undocumented:
        console.print(
            f"{' and '.join(undocumented)} predate(s) provenance recording: data, run "
            "settings, seeds and source were not stored, so they may differ.",
            style="yellow",
        )

    metrics = Table(title="metrics", box=box.SIMPLE_HEAD, title_justify="left")
    metrics.add_column("metric")
    metrics.add_column(f"#{a.number}", justify="right")
    metrics.add_column(f"#{b.number}", justify="right")
    metrics.add_column(f"Δ (#{b.number} − #{a.number})", justify="right")
    metrics.add_column("")
    for key in METRIC_KEYS:
        left, right = a.metric(key), b.metric(key)
        if left is None and right is None:
            continue
        if left is None or right is None:
            metrics.add_row(key, _num(left), _num(right), "—", "")
            continue
        delta = right - left
        improved = delta > 0 if HIGHER_IS_BETTER[key] else delta < 0
        verdict = (
            Text("")
            if delta == 0
            else Text("better", style="green")
            if improved
            else Text("worse", style="red")
        )
        relative = f" ({delta / abs(left):+.1%})" if left else ""
        metrics.add_row(key, _num(left), _num(right), f"{delta:+.4g}{relative}", verdict)
    console.print(metrics)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    try:
        import matplotlib  # noqa: F401  (imported lazily by the report; fail early and clearly)

    except ImportError as exc:
        raise LedgerError(f"the report needs matplotlib: {exc}") from None

    metric = check_metric_name(args.metric)
    with _open(args) as ledger:
        runs = ledger.list(sort_by="number", sweep_id=args.sweep)
        source = ledger.display_url
    if not runs:
        scope = f"sweep {args.sweep}" if args.sweep is not None else "the ledger"
        raise LedgerError(f"no experiments in {scope} ({source})")
    title = "recforge run report" + (f" — sweep {args.sweep}" if args.sweep is not None else "")
    report = build_report(runs, metric, title=title, source=source)
    out: Path = args.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.html, encoding="utf-8")
    except OSError as exc:
        raise LedgerError(f"cannot write {out}: {exc}") from None
    console.print(
        f"Wrote {out} ({len(runs)} runs; {sum(report.plots.values())} plots; swept: "
        f"{', '.join(report.swept) or 'none'})"
    )
    return 0


def _fail(args: argparse.Namespace, console: Console) -> int:
    with _open(args) as ledger:
        ledger.fail(args.number, args.reason)
    console.print(f"Marked experiment {args.number} failed.")
    return 0
