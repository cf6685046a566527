"""The conformance kit for recforge plugins: one function, ``check_plugin``.

A plugin's test suite calls it with the plugin's distribution name::

    from compiler.testing import check_plugin

    def test_plugin_conforms() -> None:
        check_plugin("recforge-dcn")  # raises ConformanceError listing every problem

For every fragment the plugin registers, each of its ``EXAMPLES`` (config overrides that
select it) is composed on top of a full model (``hybrid_v1`` / ``cherng_v3`` by default) and
compiled: the example must select the fragment, compile into a complete trainer, and pass every
static pass that applies; the emitted ``trainer_module.py`` and ``transform_module.py`` must
then import (in one subprocess, since importing them imports TensorFlow) and define ``run_fn``
and ``preprocessing_fn``. In each example the fragment's declarations must match its code: it
defines the values it ``provides``, and declares every value of another fragment it reads
(``_check_contract``). Every pass the plugin registers must be well formed and behave as its
own ``VALID`` / ``INVALID`` examples say. recforge's built-in fragments pass the same kit
(``check_plugin("recforge")``).

This module is a test tool: compiling stays TensorFlow-free, only the import check needs it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst

from compiler import __version__
from compiler.core.build import build
from compiler.core.compose import compose
from compiler.core.pipeline import run_passes as run_compile_passes
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.errors import RecforgeError
from compiler.fragments import (
    TRAINER_FILE,
    TRANSFORM_FILE,
    BuildContext,
    Contributions,
    Fragment,
    ModuleBuilder,
    block_origin,
)
from compiler.fragments.base import HOST_DISTRIBUTION
from compiler.fragments.contract import declarations
from compiler.fragments.registry import Registered, Registry, get_registry, normalize_distribution
from compiler.model import SELECTING_KEYS, VALUES
from compiler.passes import example_files, expected_lines, run_passes, validate_pass

#: The full model every example is composed on (an example's own ``model=`` / ``features=``
#: replaces the one here).
DEFAULT_BASE: tuple[str, ...] = ("model=hybrid_v1", "features=cherng_v3")
#: What each emitted file must define once imported.
ENTRY_POINTS = {TRAINER_FILE: "run_fn", TRANSFORM_FILE: "preprocessing_fn"}

#: An example: Hydra overrides (``["model.buyer_tower.type=dcn"]``) or ``{key: value}``.
Example = Sequence[str] | Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """One thing the kit found wrong."""

    subject: str  # "tower/dcn", "pass dcn-cross-stack-x0" or "plugin recforge-dcn"
    message: str
    example: tuple[str, ...] | None = None  # the overrides, for a problem with one example

    def __str__(self) -> str:
        where = f" [{' '.join(self.example) or 'base config'}]" if self.example is not None \
            else ""
        return f"{self.subject}{where}: {self.message}"


@dataclass
class ConformanceReport:
    """What ``check_plugin`` checked and found."""

    plugin: str
    fragments: list[str] = field(default_factory=list)  # "kind/name" of each fragment checked
    passes: list[str] = field(default_factory=list)
    compiles: int = 0  # distinct configs compiled
    imported: int = 0  # distinct module pairs imported
    problems: list[Problem] = field(default_factory=list)
    #: Warning-level pass findings in the examples' modules (reported, not failures).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (f"conformance of {self.plugin}: {len(self.fragments)} fragment(s), "
                f"{len(self.passes)} pass(es), {self.compiles} compile(s), "
                f"{self.imported} module pair(s) imported: ")
        if self.ok:
            return head + "ok"
        lines = [head + f"{len(self.problems)} problem(s)"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


class ConformanceError(AssertionError):
    """Raised by ``check_plugin`` when anything fails; ``report`` has the details."""

    def __init__(self, report: ConformanceReport) -> None:
        super().__init__(report.summary())
        self.report = report


def check_plugin(
    plugin: str,
    *,
    base: Sequence[str] = DEFAULT_BASE,
    import_modules: bool = True,
    registry: Registry | None = None,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Check every fragment and pass that ``plugin`` registers.

    ``plugin`` is a distribution name (``recforge-dcn``, any spelling), an entry-point name,
    or ``recforge`` for the built-ins. ``base`` is the config each example is composed on.
    ``import_modules=False`` skips the import check (the only step that needs TensorFlow).
    Raises ``ConformanceError`` unless ``raise_on_failure=False``; returns the report.
    """
    registry = registry or get_registry()
    report = ConformanceReport(plugin)
    fragments, passes = _owned(registry, plugin, report)
    compiled: dict[tuple[str, ...], dict[str, str] | str] = {}
    users: dict[tuple[str, ...], list[str]] = {}  # overrides -> fragments whose example they are
    for kind, name, registered in fragments:
        subject = f"{kind}/{name}"
        report.fragments.append(subject)
        _check_fragment_class(registered, subject, report)
        for overrides in _examples(registered.cls, subject, report):
            overrides = _merge_overrides(base, overrides)
            users.setdefault(overrides, []).append(subject)
            result = compiled.get(overrides)
            if result is None:
                result = _compile(overrides, registry, report)
                compiled[overrides] = result
            _check_contract(overrides, registered, subject, registry, report)
            if isinstance(result, str):
                report.problems.append(Problem(subject, result, overrides))
                continue
            _check_selected(result, registered, subject, overrides, report)
    for name, registered in passes:
        report.passes.append(name)
        _check_pass(registered.cls, f"pass {name}", report)
    report.compiles = len(compiled)
    if import_modules:
        modules = {_digest(s): s for s in compiled.values() if not isinstance(s, str)}
        report.imported = len(modules)
        for digest, problem in _import_all(modules).items():
            for overrides, sources in compiled.items():
                if not isinstance(sources, str) and _digest(sources) == digest:
                    for subject in users[overrides]:
                        report.problems.append(Problem(subject, problem, overrides))
    if raise_on_failure and not report.ok:
        raise ConformanceError(report)
    return report


# --------------------------------------------------------------------------- what to check


def _owned(registry: Registry, plugin: str, report: ConformanceReport
           ) -> tuple[list[tuple[str, str, Registered]], list[tuple[str, Registered]]]:
    """The fragments and passes ``plugin`` registered (problems if it is not loaded)."""
    wanted = normalize_distribution(plugin)

    def mine(registered: Registered) -> bool:
        provider = registered.provider
        return normalize_distribution(provider.distribution) == wanted or \
            provider.plugin == plugin

    fragments = [(k, n, r) for k, n, r in registry.entries() if mine(r)]
    passes = [(n, r) for n, r in sorted(registry.passes.items()) if mine(r)]
    subject = f"plugin {plugin}"
    for refused in registry.refused:
        if normalize_distribution(refused.distribution) == wanted or refused.plugin == plugin:
            report.problems.append(Problem(subject, refused.message()))
    if not fragments and not passes and not report.problems:
        loaded = sorted({r.provider.distribution for _, _, r in registry.entries()}
                        | {r.provider.distribution for r in registry.passes.values()})
        report.problems.append(Problem(subject, (
            f"no loaded plugin is called '{plugin}' (loaded distributions: "
            f"{', '.join(loaded)}); is it installed, with an entry point in the 'recforge' "
            "group, and not excluded by RECFORGE_PLUGINS / RECFORGE_DISABLE_PLUGIN_AUTOLOAD?")))
    for registered in [r for _, _, r in fragments] + [r for _, r in passes]:
        provider = registered.provider
        if provider.hookspec is None:
            report.problems.append(Problem(subject, (
                f"plugin '{provider.plugin}' does not declare the hook spec version it targets: "
                "add RECFORGE_HOOKSPEC_VERSION = 1 to the module its entry point names")))
            break
    return fragments, passes


def _check_fragment_class(registered: Registered, subject: str,
                          report: ConformanceReport) -> None:
    cls = registered.cls
    if not (getattr(cls, "description", "") or "").strip():
        report.problems.append(Problem(subject, (
            "no description: set the class attribute description (one line, shown by "
            "python -m compiler.plugins)")))


def _examples(cls: type[Fragment], subject: str, report: ConformanceReport
              ) -> list[tuple[str, ...]]:
    examples = getattr(cls, "EXAMPLES", None)
    if not examples:  # the base config alone; _check_selected says what to do if that fails
        return [()]
    out = []
    for example in examples:
        try:
            out.append(_as_overrides(example))
        except TypeError as error:
            report.problems.append(Problem(subject, f"malformed example {example!r}: {error}"))
    return out


def _as_overrides(example: Example) -> tuple[str, ...]:
    if isinstance(example, Mapping):
        return tuple(f"{key}={_override_value(value)}" for key, value in example.items())
    if isinstance(example, str) or not all(isinstance(item, str) for item in example):
        raise TypeError("expected a list of override strings or a {key: value} mapping")
    return tuple(example)


def _override_value(value: Any) -> str:
    """A Python value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # Hydra accepts double-quoted strings with JSON escapes
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as an override")


def _merge_overrides(base: Sequence[str], example: Sequence[str]) -> tuple[str, ...]:
    """``base`` then ``example``; an example's ``model=...`` replaces the base's."""
    keys = {_override_key(o) for o in example}
    return tuple(o for o in base if _override_key(o) not in keys) + tuple(example)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _compile(overrides: tuple[str, ...], registry: Registry, report: ConformanceReport
             ) -> dict[str, str] | str:
    """The emitted sources of one config, or why it does not compile.

    The stages are called one by one (what ``compile_config`` chains) so that a pass error
    can be traced to the block, and so the fragment, it sits in.
    """

    try:
        the_plan = plan(validate(compose(overrides), registry), registry)
        sources = {name: module.code for name, module in build(the_plan, registry).items()}
        findings = run_compile_passes(sources, registry, the_plan)
    except RecforgeError as error:
        return f"does not compile: {error}"
    except Exception as error:  # a fragment's own bug: say where, not just what
        return f"compiling raised {type(error).__name__}: {error}{_plugin_frame(error)}"
    errors = []
    for finding in findings:
        origin = block_origin(sources.get(finding.path, ""), finding.line)
        line = (f"{finding.path}:{finding.line}:{finding.col}: {finding.rule} "
                f"{finding.message}" + (f" (in the block of {origin})" if origin else ""))
        if finding.severity == "error":
            errors.append(line)
        else:
            report.warnings.append(f"[{' '.join(overrides)}] {line}")
    if errors:
        return "fails static passes: " + "; ".join(errors)
    return sources


def _plugin_frame(error: BaseException) -> str:
    """`` at file:line`` of the innermost traceback frame outside recforge and libraries."""

    recforge_root = str(Path(__file__).resolve().parent.parent)
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        path = str(Path(frame.filename).resolve())
        if "site-packages" not in path and not path.startswith(recforge_root + "/compiler"):
            return f" (at {frame.filename}:{frame.lineno})"
    return ""


def _check_selected(sources: dict[str, str], registered: Registered, subject: str,
                    overrides: tuple[str, ...], report: ConformanceReport) -> None:
    """The example's modules carry a block labelled with this fragment and its distribution."""
    kind, name = subject.split("/", 1)
    provider = registered.provider
    # The host's blocks carry no stamp (its version is in the header); a plugin's name it.
    stamp = "" if provider.distribution == HOST_DISTRIBUTION else f" · {provider.stamp}"
    label = re.compile(rf"# \[{re.escape(subject)}( \(.*\))?( · shared)?{re.escape(stamp)}\]$")
    found = any(label.search(line) for text in sources.values() for line in text.splitlines())
    if found:
        return
    if getattr(registered.cls, "EXAMPLES", None):
        why = "the example's overrides must choose it"
    else:
        key = SELECTING_KEYS.get(kind, "<the config key that selects it>")
        why = ("the base config does not use it, and it has no EXAMPLES: set the class "
               "attribute EXAMPLES to a list of config override lists that select it, e.g. "
               f"[['{key}={name}']]")
    report.problems.append(Problem(subject, (
        f"not selected: no block of the emitted modules comes from {subject} "
        f"({registered.provider.stamp}); {why}"), overrides))


def _check_contract(overrides: tuple[str, ...], registered: Registered, subject: str,
                    registry: Registry, report: ConformanceReport) -> None:
    """The fragment's declarations match its code, in each use the example makes of it.

    Every value it ``provides`` that names identifiers (``compiler.model.VALUES``) must be
    defined by its own code; every such identifier its code reads without defining it must be
    a value it declares (``requires`` or ``provides``), since another fragment defines it.
    """
    try:
        the_plan = plan(validate(compose(overrides), registry), registry)
    except RecforgeError:  # the compile reported it already
        return
    uses = [use for use in the_plan.uses
            if registry.fragments[(use.kind, use.name)].cls is registered.cls]
    context = BuildContext(plan=the_plan, compiler_version=__version__)
    owners = {identifier: value for value, identifiers in VALUES.items()
              for identifier in identifiers}
    for use in uses:
        declared = declarations(registered.cls, use, the_plan.config)
        builder = ModuleBuilder(registered.cls.target)
        try:
            registered.cls().contribute(use, context, Contributions(builder, subject))
        except Exception:  # noqa: BLE001 - the compile of this example reported it already
            return
        defined, read = _names(builder)
        for function, slots in SLOT_FUNCTIONS.items():  # code in run_fn <-> declared fills
            adds = bool(builder.bodies.get(function))
            declares = [slot for slot in declared.fills if slot in slots]
            if adds and not declares:
                report.problems.append(Problem(subject, (
                    f"adds code to {function} but declares no slot of it in fills (one of: "
                    f"{', '.join(slots)})"), overrides))
            elif declares and not adds:
                report.problems.append(Problem(subject, (
                    f"declares fills {declares[0]!r} but adds no code to {function}"), overrides))
        for value in declared.provides:
            missing = [name for name in VALUES.get(value, ()) if name not in defined]
            if missing:
                report.problems.append(Problem(subject, (
                    f"declares that it provides {value!r}, but its code does not define "
                    f"{', '.join(missing)}"), overrides))
        known = set(declared.requires) | set(declared.provides)
        for name in sorted(read - defined):
            value = owners.get(name)
            if value is not None and value not in known:
                report.problems.append(Problem(subject, (
                    f"its code reads {name} (value {value!r}) but does not declare it: add "
                    f"{value!r} to requires"), overrides))


#: Where the code of each run_fn slot goes: the callbacks into the trainer's
#: ``_training_callbacks(fn_args)``, the others into ``run_fn`` itself, in slot order.
SLOT_FUNCTIONS = {"_training_callbacks": ("callbacks",),
                  "run_fn": ("after_fit", "evaluate", "export")}


def _names(builder: ModuleBuilder) -> tuple[set[str], set[str]]:
    """(names the contributed code defines anywhere, names it reads) of one fragment."""
    chunks = [block.statements for block in builder.blocks]
    chunks += [statements for parts in builder.bodies.values() for _, statements in parts]
    defined: set[str] = set()
    read: set[str] = set()
    for statements in chunks:
        tree = ast.parse(cst.Module(body=list(statements)).code)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (read if isinstance(node.ctx, ast.Load) else defined).add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
    return defined, read


def _check_pass(cls: type, subject: str, report: ConformanceReport) -> None:
    for problem in validate_pass(cls):
        report.problems.append(Problem(subject, problem))
    if not (cls.__doc__ or "").strip():
        report.problems.append(Problem(subject, "no docstring (docs/passes.md shows it)"))
    for kind in ("VALID", "INVALID"):
        for index, example in enumerate(getattr(cls, kind, ()), start=1):
            try:
                findings = run_passes(example_files(example), [cls])
            except Exception as error:  # noqa: BLE001 - the pass's own crash is the finding
                report.problems.append(Problem(subject, (
                    f"{kind} example {index}: the pass raised {type(error).__name__}: {error}"
                    f"{_plugin_frame(error)}")))
                continue
            reported = {(f.path, f.line) for f in findings if f.rule == cls.name}
            expected = set() if kind == "VALID" else expected_lines(example)
            if reported != expected:
                report.problems.append(Problem(subject, (
                    f"{kind} example {index}: reported lines {sorted(n for _, n in reported)}, "
                    f"expected {sorted(n for _, n in expected)} (mark them with '# <-')")))


# --------------------------------------------------------------------------- importing

_IMPORT_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys, traceback
    results = {}
    for directory in sys.argv[1:]:
        problems = []
        for index, (filename, entry) in enumerate(%(entries)r.items()):
            path = directory + "/" + filename
            spec = importlib.util.spec_from_file_location(
                "conformance_%%d_%%d" %% (len(results), index), path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except BaseException as error:
                frame = traceback.extract_tb(error.__traceback__)[-1]
                problems.append("%%s does not import: %%s: %%s (line %%s: %%s)" %% (
                    filename, type(error).__name__, error, frame.lineno, frame.line))
                continue
            if not callable(getattr(module, entry, None)):
                problems.append("%%s defines no %%s()" %% (filename, entry))
        results[directory] = problems
    print("CONFORMANCE " + json.dumps(results))
""")


def _digest(sources: Mapping[str, str]) -> str:
    text = "\0".join(f"{k}\0{v}" for k, v in sorted(sources.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _import_all(modules: Mapping[str, Mapping[str, str]], timeout: float = 600.0
                ) -> dict[str, str]:
    """Import every module pair in one fresh interpreter; digest -> problem, for failures."""
    if not modules:
        return {}
    with tempfile.TemporaryDirectory(prefix="recforge-conformance-") as root:
        directories = {}
        for digest, sources in modules.items():
            directory = Path(root) / digest
            directory.mkdir()
            for filename, text in sources.items():
                (directory / filename).write_text(text, encoding="utf-8")
            directories[str(directory)] = digest
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
        script = _IMPORT_SCRIPT % {"entries": ENTRY_POINTS}
        try:
            done = subprocess.run([sys.executable, "-c", script, *directories], env=env,
                                  capture_output=True, text=True, timeout=timeout, cwd=root)
        except subprocess.TimeoutExpired:
            return {d: f"importing the emitted modules took over {timeout:.0f}s"
                    for d in modules}
        marker = next((line for line in done.stdout.splitlines()
                       if line.startswith("CONFORMANCE ")), None)
        if marker is None:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            return {d: "the import check crashed: " + " | ".join(tail) for d in modules}
        results = json.loads(marker[len("CONFORMANCE "):])
    return {directories[d]: "; ".join(p) for d, p in results.items() if p}
