"""``python -m compiler.plugins``: every registered fragment and pass, and who provides it.

    python -m compiler.plugins                 # a table
    python -m compiler.plugins --format json   # one JSON object: hookspec, entries, not_loaded

Each row: the kind (a fragment kind, or ``pass``), the name a config uses, the distribution
and version that provides it, and the hook spec version its plugin targets (``-``: the plugin
does not declare one). Plugins that were refused (import error, another hook spec version,
a malformed fragment) are listed after the table with the reason. (Not to be confused with
the top-level ``plugins`` package, which holds recforge's built-in fragments.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from compiler.errors import RecforgeError
from compiler.fragments.hookspecs import HOOKSPEC_VERSION
from compiler.fragments.registry import PluginWarning, Registry, get_registry, qualified


def describe(registry: Registry) -> dict[str, Any]:
    """The listing as plain data (what ``--format json`` prints)."""
    entries = []
    for kind, name, registered in registry.entries():
        provider = registered.provider
        clash = (kind, name) in registry.clashes
        entries.append({
            "kind": kind,
            "name": name,
            # What a config writes: the bare name, unless another distribution has it too.
            "select_as": qualified(provider.distribution, name) if clash else name,
            "distribution": provider.distribution,
            "version": provider.version,
            "hookspec": provider.hookspec,
            "plugin": provider.plugin,
            "description": getattr(registered.cls, "description", "") or "",
            "params": _param_names(registered.cls),
        })
    for name, registered in sorted(registry.passes.items()):
        provider = registered.provider
        entries.append({
            "kind": "pass",
            "name": name,
            "select_as": None,
            "distribution": provider.distribution,
            "version": provider.version,
            "hookspec": provider.hookspec,
            "plugin": provider.plugin,
            "description": getattr(registered.cls, "MESSAGE", ""),
            "params": [],
        })
    return {
        "hookspec": HOOKSPEC_VERSION,
        "entries": entries,
        "not_loaded": [r.message() for r in registry.refused],
    }


def _param_names(cls: type) -> list[str]:
    schema = getattr(cls, "Params", None)
    return [f.name for f in dataclasses.fields(schema)] if schema is not None else []


def render_table(listing: dict[str, Any]) -> str:
    headers = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "HOOKSPEC", "DESCRIPTION")
    rows = [
        (e["kind"], e["select_as"] or e["name"], e["distribution"], e["version"],
         "-" if e["hookspec"] is None else str(e["hookspec"]), e["description"])
        for e in listing["entries"]
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(5)]
    lines = [f"recforge hook spec version {listing['hookspec']}", ""]
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        lines.append("  ".join([*cells, row[5]]).rstrip())
    clashes = [e for e in listing["entries"] if e["select_as"] and e["select_as"] != e["name"]]
    if clashes:
        lines += ["", "Names registered by more than one distribution must be written "
                      "<distribution>:<name> in a config (shown so above)."]
    if listing["not_loaded"]:
        lines += ["", "Not loaded:"] + [f"  {message}" for message in listing["not_loaded"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compiler.plugins",
        description="List every registered fragment and pass, with the distribution, version "
                    "and hook spec version that provide it.",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # refused plugins are listed below the table instead
            warnings.simplefilter("ignore", PluginWarning)
            registry = get_registry()
    except RecforgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    listing = describe(registry)
    if args.format == "json":
        print(json.dumps(listing, indent=2))
    else:
        print(render_table(listing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
