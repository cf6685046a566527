"""Generate docs/passes.md from the registered pass classes.

    python -m compiler.passes.docs            # rewrite the generated part of docs/passes.md
    python -m compiler.passes.docs --check    # exit 1 if it is out of date

Only the text between the BEGIN/END markers is generated (from each pass's name, severity,
MESSAGE, docstring and VALID/INVALID examples); the rest of the file (e.g. the results on TFX's
own examples) is kept as written.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

from compiler.passes.base import Pass, example_files

BEGIN = "<!-- BEGIN GENERATED: python -m compiler.passes.docs (edit the pass classes, not this) -->"
END = "<!-- END GENERATED -->"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "passes.md"

_INTRO = """\
Every compile runs every registered pass over the modules it built, before anything is
written; `python -m compiler.check [--format text|json|sarif] [--fix] PATH...` runs them over
any trainer or transform module (all files of one run are checked together). A pass is one
module in `plugins/passes/` with one class; plugins add passes through the `register_passes`
hook.

* **Output.** Text lines read `path:line:col: rule-name message`; `--format json` prints one
  array of `{path, line, col, rule, severity, message}`; `--format sarif` prints SARIF 2.1.0
  (with related locations and fixes). Exit status: 1 when an error-level finding remains, 0
  otherwise, 2 when an input cannot be read or parsed.
* **Suppression.** `# recforge: ignore[rule-name] why it is fine` at the end of the line, or
  alone on the line above. The reason is required: without one the comment suppresses nothing
  and is reported as `invalid-suppression`.
* **Fixes.** `--fix` applies the fixes passes offer (today: `gcs-local-io` -> `tf.io.gfile`),
  removes imports the fix left unused, and re-checks. A pass builds a fix as text edits or, as
  `gcs-local-io` does, as libcst node replacements and imports (`compiler.passes.cst_fix`),
  which are applied to the parsed tree; both kinds show as text edits in JSON and SARIF.
* **Examples.** Lines marked `# <-` in an invalid example are where the pass reports; one test
  runs every example of every registered pass."""


def _doc(cls: type[Pass]) -> tuple[str, str]:
    text = inspect.cleandoc(cls.__doc__ or cls.MESSAGE)
    summary, _, rest = text.partition("\n\n")
    return " ".join(summary.split()), rest.strip()


def _code(example: object, fence: str = "python") -> list[str]:
    out: list[str] = []
    files = example_files(example)  # type: ignore[arg-type]
    for name, source in files.items():
        if len(files) > 1:
            out.append(f"`{name}`:")
            out.append("")
        out.append(f"```{fence}")
        out.extend(source.rstrip("\n").splitlines())
        out.append("```")
        out.append("")
    return out


def render(passes: Sequence[type[Pass]]) -> str:
    """The generated block (markers included) for ``passes``, in the given order."""
    lines = [BEGIN, "", _INTRO, "", "## Catalogue", ""]
    lines.append("| rule | severity | what it reports | hazards.md row |")
    lines.append("|---|---|---|---|")
    for cls in passes:
        lines.append(
            f"| [`{cls.name}`](#{cls.name}) | {cls.severity.value} | {cls.MESSAGE} | "
            f"{cls.HAZARD or '-'} |"
        )
    lines.append("")
    for cls in passes:
        summary, rest = _doc(cls)
        lines += [f"## {cls.name}", "", f"**{cls.severity.value}** - {summary}", ""]
        if rest:
            lines += [rest, ""]
        for label, examples in (("Valid", cls.VALID), ("Invalid", cls.INVALID)):
            for index, example in enumerate(examples, start=1):
                suffix = f" {index}" if len(examples) > 1 else ""
                lines += [f"**{label}{suffix}:**", ""]
                lines += _code(example)
    lines.append(END)
    return "\n".join(lines) + "\n"


_DEFAULT_TAIL = """
## Results on TFX's own examples

(Not generated: run `python -m compiler.check` over them and record the results here.)
"""


def update(text: str | None, passes: Sequence[type[Pass]]) -> str:
    """``text`` (the current file, or None) with its generated block replaced."""
    block = render(passes)
    if not text or BEGIN not in text or END not in text:
        return "# Static passes\n\n" + block + _DEFAULT_TAIL
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + block.rstrip("\n") + tail


def main(argv: Sequence[str] | None = None) -> int:
    # The repository's docs describe the built-in passes (installed third-party plugins may
    # register more; they document their own).
    from plugins.passes import BUILTIN_PASSES

    parser = argparse.ArgumentParser(prog="python -m compiler.passes.docs")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    passes = list(BUILTIN_PASSES)
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    wanted = update(current, passes)
    if args.check:
        if current != wanted:
            print(f"{args.output} is out of date: run python -m compiler.passes.docs",
                  file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
