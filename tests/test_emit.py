"""Stages 5-6 — passes and emit: manifest, determinism, atomic writes, snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from compiler.core.emit import MANIFEST_FILE, emit
from compiler.core.pipeline import compile_overrides
from tests.compile_helpers import ROOT, SHIPPED_MODELS


def test_emit_writes_modules_and_manifest(tmp_path) -> None:
    result = compile_overrides(["model=hybrid_v1"], output_dir=tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [MANIFEST_FILE, "trainer_module.py", "transform_module.py"]
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["config_hash"] == result.config.config_hash
    assert manifest["resolved_config"]["model"]["model_type"] == "multitask"
    fragment = next(f for f in manifest["fragments"] if f["kind"] == "tower")
    assert fragment["distribution"] == "recforge" and fragment["version"]
    assert manifest["passes"]["errors"] == 0
    assert "pyflakes" in manifest["passes"]["run"]


@pytest.mark.slow
def test_output_is_byte_identical_whatever_the_hash_seed(tmp_path) -> None:
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-m", "compiler", "model=hybrid_v1", f"output_dir={out}"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]


def test_emit_is_atomic_when_a_write_fails(tmp_path) -> None:
    out = tmp_path / "out"
    emit({"a.py": "old\n"}, {"v": 1}, out)
    with pytest.raises(TypeError):
        emit({"a.py": "new\n", "b.py": None}, {"v": 2}, out)  # type: ignore[dict-item]
    assert (out / "a.py").read_text() == "old\n"
    assert not (out / "b.py").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging dir left


def _shipped(directory) -> bool:
    """Snapshots of built-in fragments only: a third-party plugin's output isn't shipped."""
    manifest = directory / MANIFEST_FILE
    return manifest.is_file() and all(
        f["distribution"] == "recforge" for f in json.loads(manifest.read_text())["fragments"])


SNAPSHOTS = sorted(p.name for p in (ROOT / "generated").iterdir() if _shipped(p))


def test_every_shipped_model_has_a_snapshot() -> None:
    assert {f"{model}__cherng_v3" for model in SHIPPED_MODELS} <= set(SNAPSHOTS)


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_generated_snapshots_are_up_to_date(snapshot: str, tmp_path) -> None:
    """``generated/`` holds the emitted code of the shipped configs; any fragment change must
    show up there as a diff (regenerate with ``python -m compiler model=M features=F``)."""
    model, features = snapshot.split("__")
    compile_overrides([f"model={model}", f"features={features}"], output_dir=tmp_path)
    committed = ROOT / "generated" / snapshot
    assert sorted(p.name for p in committed.iterdir()) == sorted(p.name for p in tmp_path.iterdir())
    for path in sorted(tmp_path.iterdir()):
        assert (committed / path.name).read_text() == path.read_text(), (
            f"generated/{snapshot}/{path.name} is stale: run "
            f"`python -m compiler model={model} features={features}`"
        )


@pytest.mark.slow
def test_a_fragment_that_batches_twice_fails_the_compile_and_writes_nothing(
        tmp_path, monkeypatch, capsys) -> None:
    """The platform's bug #1, reintroduced into a fragment: the candidates step re-batches the
    already batched eval dataset. The double-batching pass stops the emit."""
    import plugins.retrieval
    from compiler.__main__ import main
    from compiler.errors import PassFailure

    buggy = plugins.retrieval.CANDIDATE_STEP.replace(
        "eval_dataset]", "eval_dataset.batch(128)]")
    assert buggy != plugins.retrieval.CANDIDATE_STEP
    monkeypatch.setattr(plugins.retrieval, "CANDIDATE_STEP", buggy)

    out = tmp_path / "out"
    with pytest.raises(PassFailure) as raised:
        compile_overrides(["model=hybrid_v1"], output_dir=out)
    rules = {finding.rule for finding in raised.value.findings}
    assert "double-batching" in rules
    assert not out.exists()

    code = main(["model=hybrid_v1", f"output_dir={out}", f"ledger=sqlite:///{tmp_path}/l.db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "trainer_module.py:" in err and "double-batching" in err
    assert not out.exists()
