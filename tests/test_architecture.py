"""The layout rules of docs/architecture.md, checked with the standard library's ``ast``.

- no import cycle among ``compiler/`` modules (module-level imports, ``TYPE_CHECKING`` ones
  included; ``from pkg import submodule`` is an edge to the submodule, ``from pkg import name``
  an edge to the package's ``__init__``);
- no source module over 500 lines in ``compiler/`` or ``plugins/``;
- every import inside a function is of a module listed in ``compiler/_lazy.py`` and has a
  comment (on its line, or on the line above its group);
- compiling imports none of TensorFlow, Beam, pandas, SQLAlchemy;
- the module list in docs/architecture.md equals the tree.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler._lazy import LAZY_IMPORTS, lazy_reason

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ROOT / "compiler"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(COMPILER.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str],
             in_function: bool = False) -> Iterator[tuple[ast.stmt, list[str], bool]]:
    """(statement, imported modules, inside a function?) for every import in ``tree``."""
    for child in ast.iter_child_nodes(tree):
        nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        if isinstance(child, ast.Import):
            yield child, [alias.name for alias in child.names], in_function
        elif isinstance(child, ast.ImportFrom):
            base = _absolute(child, module, is_package)
            targets: list[str] = []
            for alias in child.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in known else base
                if target not in targets:
                    targets.append(target)
            yield child, targets, in_function
        yield from _imports(child, module, is_package, known, nested)


def _parsed() -> dict[str, tuple[Path, ast.Module]]:
    return {name: (path, ast.parse(path.read_text(encoding="utf-8")))
            for name, path in _modules().items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.slow
def test_no_import_cycle_in_compiler() -> None:
    parsed = _parsed()
    known = set(parsed)
    graph: dict[str, set[str]] = {name: set() for name in parsed}
    for name, (path, tree) in parsed.items():
        for _, targets, in_function in _imports(tree, name, path.name == "__init__.py", known):
            if not in_function:
                graph[name].update(t for t in targets if t in known and t != name)
    assert _cycles(graph) == []


def test_cycle_detection_finds_a_cycle() -> None:
    """Control: the checker above does report a cycle when there is one."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("top", ["compiler", "plugins"])
def test_no_module_over_500_lines(top: str) -> None:
    long = {str(path.relative_to(ROOT)): n for path in sorted((ROOT / top).rglob("*.py"))
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.slow
def test_imports_inside_functions_are_listed_and_commented() -> None:
    parsed = _parsed()
    known = set(parsed)
    problems = []
    for name, (path, tree) in parsed.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        previous_end = -1
        for statement, targets, in_function in _imports(tree, name, path.name == "__init__.py",
                                                        known):
            if not in_function:
                continue
            where = f"{path.relative_to(ROOT)}:{statement.lineno}"
            unlisted = [t for t in targets if lazy_reason(t) is None]
            if unlisted:
                problems.append(f"{where}: {', '.join(unlisted)} is not in compiler/_lazy.py")
            first_of_group = statement.lineno - 1 != previous_end
            line = lines[statement.lineno - 1]
            above = lines[statement.lineno - 2].strip() if statement.lineno > 1 else ""
            if first_of_group and "#" not in line and not above.startswith("#"):
                problems.append(f"{where}: a lazy import without a comment saying why")
            previous_end = statement.end_lineno or statement.lineno
    assert problems == []


def test_lazy_list_internal_entries_exist() -> None:
    """An internal entry of the lazy list names a module that exists."""
    internal = {name for name in LAZY_IMPORTS if name.split(".")[0] in ("compiler", "plugins")}
    for name in internal:
        path = ROOT / Path(*name.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name


@pytest.mark.slow
def test_compiling_imports_no_tensorflow_beam_pandas_or_sqlalchemy() -> None:
    code = (
        "import sys\n"
        "import compiler.core.pipeline, compiler.preflight, compiler.__main__\n"
        "heavy = ('tensorflow', 'apache_beam', 'pandas', 'pyarrow', 'sqlalchemy', 'matplotlib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def _documented_modules() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module list", 1)[1]
    documented = set()
    for package, names in re.findall(r"^- `(compiler/(?:[a-z_]+/)*)`: (.+)$", section, re.M):
        for module in re.findall(r"`([^`]+\.py)`", names):
            documented.add(package + module)
    return documented


def test_architecture_module_list_matches_the_tree() -> None:
    tree = {str(path.relative_to(ROOT)) for path in COMPILER.rglob("*.py")
            if path.name != "__init__.py"}
    assert _documented_modules() == tree
