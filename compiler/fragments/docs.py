"""Generate the reference part of docs/plugins.md from the hook specs and the fragment API.

    python -m compiler.fragments.docs            # rewrite the generated part of docs/plugins.md
    python -m compiler.fragments.docs --check    # exit 1 if it is out of date

Only the text between the BEGIN/END markers is generated: the hook specs (signature and
docstring, from ``compiler.fragments.hookspecs``), the ``Fragment`` class attributes and the
``Contributions`` methods (from ``compiler.fragments``), the module sections, and the fragment
kinds with the config key that selects each and the built-in names. The walkthrough around it
is written by hand.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from compiler.fragments import Contributions, Fragment, Section, hookspecs
from compiler.fragments.registry import Registry, builtin_registry
from compiler.model import RUN_FN_SLOTS, SELECTING_KEYS, VALUES

BEGIN = (
    "<!-- BEGIN GENERATED: python -m compiler.fragments.docs (edit "
    "compiler/fragments/hookspecs.py and compiler/fragments/base.py, not this) -->"
)
END = "<!-- END GENERATED -->"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
#: Kinds whose fragment the plan always uses (one each), so no config key selects them.
FIXED_KINDS = {
    "transform": "always (the Transform module's skeleton)",
    "feature_transform": "the feature config: `embedding`, `cyclical`, `bucketize`, "
                         "`normalize`, `crosses`, `target`",
    "encoder": "always",
    "candidates": "retrieval and multitask models",
    "trainer": "always (the `run_fn` skeleton)",
}


def _hook_section() -> list[str]:
    lines = ["### Hooks", "",
             f"Hook spec version: **{hookspecs.HOOKSPEC_VERSION}**. "
             + _doc_comment(inspect.getsource(hookspecs), "HOOKSPEC_VERSION"), ""]
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, "recforge_spec"):
            continue
        signature = str(inspect.signature(function)).replace("'", "")
        lines += [f"#### `{name}{signature}`", "", inspect.cleandoc(function.__doc__ or ""), ""]
    return lines


def _doc_comment(source: str, attribute: str) -> str:
    """The ``#:`` comment lines just above ``attribute``'s definition, joined."""
    lines = source.splitlines()
    pattern = re.compile(rf"^\s*{re.escape(attribute)}\s*[:=]")
    for index, line in enumerate(lines):
        if pattern.match(line):
            comments = []
            for previous in reversed(lines[:index]):
                stripped = previous.strip()
                if not stripped.startswith("#:"):
                    break
                comments.insert(0, stripped[2:].strip())
            return " ".join(comments)
    return ""


def _fragment_section() -> list[str]:
    source = inspect.getsource(Fragment)
    lines = ["### The `Fragment` class (`compiler.fragments`)", "",
             inspect.cleandoc(Fragment.__doc__ or ""), "",
             "| attribute | meaning |", "|---|---|"]
    for attribute in ("kind", "name", "target", "Params", "description", "EXAMPLES",
                      "provides", "requires", "slots", "fills", "writes"):
        text = _doc_comment(source, attribute)
        lines.append(f"| `{attribute}` | {text} |")
    contribute = inspect.signature(Fragment.contribute)
    lines += ["", f"`contribute{str(contribute).replace(chr(39), '')}` adds the fragment's "
              "code through `out` (a `Contributions`):", ""]
    for name, member in inspect.getmembers(Contributions, inspect.isfunction):
        if name.startswith("_"):
            continue
        signature = str(inspect.signature(member)).replace("'", "")
        doc = inspect.cleandoc(member.__doc__ or "").replace("\n", " ")
        lines.append(f"* `{name}{signature}`" + (f": {doc}" if doc else ""))
    lines += ["", "Sections, the tie-break of the reading order (a block comes after the blocks "
              "whose names it uses; the entry point last): "
              + ", ".join(f"`{s.name}`" for s in Section) + ".", ""]
    return lines


def _values_section(registry: Registry) -> list[str]:
    """The named values and run_fn slots, with the built-ins that provide / fill them."""
    lines = ["### Named values and `run_fn` slots", "",
             "What recforge's fragments provide and require (``compiler.model.VALUES``); a "
             "plugin may declare values of its own.", "",
             "| value | in the emitted trainer | provided by |", "|---|---|---|"]
    for value, identifiers in VALUES.items():
        providers = [f"`{kind}/{name}`" for kind, name, registered in registry.entries()
                     if any(declared.replace("{role}", side) == value
                            for declared in registered.cls.provides
                            for side in ("buyer", "product"))]
        names = ", ".join(f"`{identifier}`" for identifier in identifiers) or "a method"
        lines.append(f"| `{value}` | {names} | {', '.join(providers)} |")
    lines += ["", "`run_fn` slots, in the order they run: "
              + ", ".join(f"`{slot}`" for slot in RUN_FN_SLOTS) + ".", ""]
    return lines


def _kinds_section(registry: Registry) -> list[str]:
    lines = ["### Fragment kinds", "",
             "| kind | selected by | built-in names |", "|---|---|---|"]
    for kind in registry.kinds():
        if kind == "tower":
            how = "`model.buyer_tower.type`, `model.product_tower.type`"
        elif kind in SELECTING_KEYS:
            how = f"`{SELECTING_KEYS[kind]}`"
        else:
            how = FIXED_KINDS.get(kind, "-")
        names = ", ".join(f"`{n}`" for n in registry.names(kind))
        lines.append(f"| `{kind}` | {how} | {names} |")
    lines.append("")
    return lines


def render(registry: Registry | None = None) -> str:
    """The generated block, markers included."""
    registry = registry or builtin_registry()
    lines = [BEGIN, "", "## Reference", ""]
    lines += (_hook_section() + _fragment_section() + _values_section(registry)
              + _kinds_section(registry))
    lines.append(END)
    return "\n".join(lines) + "\n"


def update(text: str | None, registry: Registry | None = None) -> str:
    block = render(registry)
    if not text or BEGIN not in text or END not in text:
        return "# Writing a recforge plugin\n\n" + block
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + block.rstrip("\n") + tail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compiler.fragments.docs")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    wanted = update(current)
    if args.check:
        if current != wanted:
            print(f"{args.output} is out of date: run python -m compiler.fragments.docs",
                  file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
