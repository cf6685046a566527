"""The emitted modules read top to bottom: one contiguous block per fragment label, every name
defined above its first use, the entry point last, template comments kept, labels without the
host's version, and formatted (``ruff format --line-length 100`` changes nothing)."""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from compiler import __version__
from compiler.core.build import build
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.fragments import LINE_LENGTH, fit_line
from tests.compile_helpers import ROOT, SHIPPED_MODELS, compose_config

#: Every shipped model with its own features, and each snapshot's pair.
CONFIGS = sorted({
    *((model, "cherng_v3") for model in SHIPPED_MODELS),
    *(tuple(p.name.split("__")) for p in (ROOT / "generated").iterdir() if "__" in p.name),
})
ENTRY_POINTS = {"trainer_module.py": "run_fn", "transform_module.py": "preprocessing_fn"}


def built(model: str, features: str) -> dict[str, str]:
    modules = build(plan(validate(compose_config([f"model={model}", f"features={features}"]))))
    return {name: module.code for name, module in modules.items()}


@pytest.fixture(scope="module")
def sources() -> dict[tuple[str, str], dict[str, str]]:
    return {config: built(*config) for config in CONFIGS}


def ruff_format_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--diff", "--isolated", "--no-cache",
         "--line-length", str(LINE_LENGTH), *map(str, paths)],
        capture_output=True, text=True,
    )


@pytest.mark.slow
def test_emitted_modules_of_every_shipped_config_are_formatted(sources, tmp_path) -> None:
    for (model, features), files in sources.items():
        directory = tmp_path / f"{model}__{features}"
        directory.mkdir()
        for name, source in files.items():
            (directory / name).write_text(source)
    result = ruff_format_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_snapshots_are_formatted() -> None:
    result = ruff_format_check(ROOT / "generated")
    assert result.returncode == 0, result.stdout + result.stderr


def top_level_labels(source: str) -> list[tuple[int, str]]:
    return [(number, line[3:-1]) for number, line in enumerate(source.splitlines(), 1)
            if line.startswith("# [") and line.endswith("]")]


def test_each_label_is_one_contiguous_block(sources) -> None:
    """A label opens one block at the top level: a fragment's code is never scattered."""
    for config, files in sources.items():
        for name, source in files.items():
            labels = [label for _, label in top_level_labels(source)]
            repeated = sorted({label for label in labels if labels.count(label) > 1})
            assert not repeated, (config, name, repeated)


def test_every_name_is_defined_above_its_first_use(sources) -> None:
    """Reading down, each module-level name a statement uses (in a function body too) is
    already defined: constants beside and before their code, helpers before their callers."""
    for config, files in sources.items():
        for name, source in files.items():
            tree = ast.parse(source)
            module_names = {target for statement in tree.body for target in _defines(statement)}
            defined: set[str] = set(dir(builtins))
            for statement in tree.body:
                defined |= _defines(statement) if isinstance(
                    statement, (ast.FunctionDef, ast.ClassDef)) else set()
                used = {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)
                        and isinstance(node.ctx, ast.Load)}
                early = sorted((used & module_names) - defined)
                assert not early, (config, name, statement.lineno, early)
                defined |= _defines(statement)


def _defines(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, ast.Assign):
        return {t.id for t in statement.targets if isinstance(t, ast.Name)}
    if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) and isinstance(
            statement.target, ast.Name):
        return {statement.target.id}
    return set()


def test_the_entry_point_comes_last(sources) -> None:
    for config, files in sources.items():
        for name, source in files.items():
            last = ast.parse(source).body[-1]
            assert isinstance(last, ast.FunctionDef) and last.name == ENTRY_POINTS[name], config


def test_labels_name_the_host_version_once_in_the_header_and_mark_shared_helpers(sources
                                                                                 ) -> None:
    trainer = sources[("hybrid_v1", "cherng_v3")]["trainer_module.py"]
    assert trainer.startswith("# Generated by recforge from model=hybrid_v1 features=cherng_v3.")
    assert f"\n# plugins: recforge {__version__}\n" in trainer
    assert trainer.count(f"recforge {__version__}") == 1
    lines = trainer.splitlines()
    # The MLP helpers serve both towers and the rating head: one copy, labelled as shared.
    helper = lines.index("def _mlp_layers(widths, activation, l2, dropout=0.0):")
    assert lines[helper - 1] == "# [tower/mlp · shared]"
    assert trainer.count("def _mlp_layers(") == 1 and trainer.count("class Tower(") == 1
    assert "# [tower/mlp (buyer)]" in lines and "# [tower/mlp (product)]" in lines


def test_comments_in_templates_survive(sources) -> None:
    for files in sources.values():
        for source in files.values():
            lines = source.splitlines()
            env = lines.index('os.environ["TF_USE_LEGACY_KERAS"] = "1"')
            assert lines[env - 1].startswith("# TensorFlow Recommenders needs Keras 2"), lines[
                env - 3:env + 1]


@pytest.mark.parametrize("width", [10, 30, 45])
@pytest.mark.parametrize("indent", ["", "    "])
def test_a_long_line_is_wrapped_as_ruff_format_wraps_it(width: int, indent: str,
                                                          tmp_path) -> None:
    """``fit_line`` (what keeps config-sized lines in bounds) agrees with ruff on calls whose
    arguments fit on one line, need one line each, or nest another call and a list. (Feature
    names are the variable part; a name so long that the line's head, up to its first bracket,
    cannot fit is not wrapped.)"""
    long_name = "f" * width
    text = (f'outputs["{long_name}"] = tf.strings.to_hash_bucket_fast(tf.strings.join('
            f'[tf.strings.as_string(outputs["{long_name}_a"]), tf.strings.as_string('
            f'outputs["b"])], separator="_x_"), num_buckets=10)\n')
    statement = fit_line(cst.parse_statement(text), indent)
    code = cst.Module([]).code_for_node(statement)
    if indent:  # inside a function, as a contributed step is
        function = cst.parse_statement("def f():\n    pass\n")
        code = cst.Module([function.with_changes(
            body=function.body.with_changes(body=[statement]))]).code
    path = tmp_path / "wrapped.py"
    path.write_text(code)
    ast.parse(code)
    assert max(len(line) for line in code.splitlines()) <= LINE_LENGTH
    result = ruff_format_check(path)
    assert result.returncode == 0, code + result.stdout
