"""``python -m compiler.check [--format text|json|sarif] [--fix] PATH...``

Runs every registered static pass over Python files (directories are searched for ``*.py``).
All files of one run are checked together, so passes that compare modules (the Transform
module against the trainer) see them all.

Exit status: 2 when an input cannot be read or parsed (with a message, no traceback); else 1
when an error-level finding remains; else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from compiler import __version__
from compiler.errors import RecforgeError
from compiler.fragments.registry import get_registry
from compiler.passes import Finding, Pass, Severity, SourceError, SourceFile, run_passes
from compiler.passes.fixes import fix_files
from compiler.passes.source import Project

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".ruff_cache", "node_modules"}


def _registered_passes() -> list[type[Pass]]:
    """Every pass from the plugin registry (name -> ``Registered``, whose ``.cls`` is the pass)."""
    entries = get_registry().passes
    return [getattr(entries[name], "cls", entries[name]) for name in sorted(entries)]


def collect(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(Python files under ``paths``, sorted; problems with paths that do not exist)."""
    files: list[str] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(".py"))
        elif path.exists():
            files.append(str(path))
        else:
            problems.append(f"{raw}: no such file or directory")
    return files, problems


def read_sources(files: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    sources: dict[str, str] = {}
    problems: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                sources[path] = handle.read()
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: cannot read: not UTF-8 ({exc.reason} at byte {exc.start})")
    return sources, problems


def format_text(findings: Sequence[Finding]) -> str:
    return "".join(f"{f.path}:{f.line}:{f.col}: {f.rule} {f.message}\n" for f in findings)


def format_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def format_sarif(findings: Sequence[Finding], passes: Sequence[type[Pass]]) -> str:
    rules = sorted({cls.name: cls for cls in passes}.items())
    # Findings of rules no pass declares (invalid-suppression) still need a rule entry.
    extra = sorted({f.rule for f in findings} - {name for name, _ in rules})
    descriptors: list[dict[str, Any]] = [
        {
            "id": name,
            "shortDescription": {"text": cls.MESSAGE},
            "fullDescription": {"text": " ".join((cls.__doc__ or cls.MESSAGE).split())},
            "defaultConfiguration": {"level": _SARIF_LEVEL[cls.severity]},
        }
        for name, cls in rules
    ] + [{"id": name, "shortDescription": {"text": name}} for name in extra]
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [_sarif_location(f.path, f.line, f.col)],
        }
        if f.related:
            result["relatedLocations"] = [
                {**_sarif_location(r.path, r.line, r.col), "id": i, "message": {"text": r.note}}
                for i, r in enumerate(f.related)
            ]
        if f.fix is not None:
            result["fixes"] = [
                {
                    "description": {"text": f.fix.description},
                    "artifactChanges": [
                        {
                            "artifactLocation": {"uri": _uri(f.path)},
                            "replacements": [
                                {
                                    "deletedRegion": {
                                        "startLine": e.line,
                                        "startColumn": e.col,
                                        "endLine": e.end_line,
                                        "endColumn": e.end_col,
                                    },
                                    "insertedContent": {"text": e.text},
                                }
                                for e in f.fix.edits
                            ],
                        }
                    ],
                }
            ]
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "recforge",
                        "version": __version__,
                        "rules": descriptors,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _uri(path: str) -> str:
    return Path(path).as_posix()


def _sarif_location(path: str, line: int, col: int) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": _uri(path)},
            "region": {"startLine": line, "startColumn": col},
        }
    }


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m compiler.check",
        description="Run recforge's static passes over TFX trainer/transform modules.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    parser.add_argument(
        "--fix", action="store_true", help="rewrite fixable findings in place, then re-check"
    )
    args = parser.parse_args(argv)

    files, problems = collect(args.paths)
    sources, unreadable = read_sources(files)
    problems += unreadable
    parsed: dict[str, SourceFile] = {}
    for path, text in sources.items():
        try:
            parsed[path] = SourceFile(path, text)
        except SourceError as exc:
            problems.append(str(exc))
    try:
        passes = _registered_passes()
    except RecforgeError as error:  # a broken plugin: say which, no traceback
        print(f"recforge check: {error}", file=sys.stderr)
        return 2

    if args.fix and parsed:
        fixed, count, findings = fix_files({p: sources[p] for p in parsed}, passes)
        for path, text in fixed.items():
            if text != sources[path]:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
        print(f"recforge check: applied {count} fix(es)", file=sys.stderr)
    else:
        findings = run_passes(Project(parsed), passes)

    if args.format == "json":
        out.write(format_json(findings))
    elif args.format == "sarif":
        out.write(format_sarif(findings, passes))
    else:
        out.write(format_text(findings))
    for problem in problems:
        print(f"recforge check: {problem}", file=sys.stderr)
    if problems:
        return 2
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
