"""What a process remembers between compiles gives what a fresh run gives: the static passes'
findings (``PassCache``), the module text (``core.codegen``) and the composed config."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from compiler.core import codegen
from compiler.core.build import build
from compiler.core.compose import compose
from compiler.core.pipeline import compile_overrides
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.fragments.registry import get_registry
from compiler.passes import PassCache, run_passes

CONFIG = ["model=hybrid_v1", "features=cherng_v3"]
# An unused import and an undefined name: pyflakes reports both, at known lines.
BROKEN_TAIL = "\n\nimport json\n\n\ndef late():\n    return undefined_name\n"


@pytest.fixture(scope="module")
def compiled() -> Iterator[tuple[dict[str, str], list[type]]]:
    result = compile_overrides(CONFIG, write=False)
    registry = get_registry()
    passes = [r.cls for _, r in sorted(registry.passes_for(result.plan.uses).items())]
    yield result.sources, passes


def test_a_cache_hit_gives_the_findings_of_a_fresh_run(compiled) -> None:
    sources, passes = compiled
    cache = PassCache()
    first = run_passes(sources, passes, cache)
    assert (cache.hits, cache.misses) == (0, 4)  # the result, each file, the project passes
    again = run_passes(sources, passes, cache)
    assert (cache.hits, cache.misses) == (1, 4)
    assert again == first == run_passes(sources, passes)  # the uncached run agrees


def test_a_changed_text_misses_and_an_unchanged_file_is_reused(compiled) -> None:
    sources, passes = compiled
    cache = PassCache()
    clean = run_passes(sources, passes, cache)
    changed = {**sources, "trainer_module.py": sources["trainer_module.py"] + BROKEN_TAIL}
    misses = cache.misses
    found = run_passes(changed, passes, cache)
    # The whole result and the trainer's file and project entries missed; the Transform
    # module's findings came from the cache.
    assert cache.misses == misses + 3 and cache.hits == 1
    assert found == run_passes(changed, passes)
    new = [f for f in found if f not in clean]
    assert {f.rule for f in new} == {"pyflakes"} and len(new) == 2
    assert all(f.path == "trainer_module.py" for f in new)


def test_the_cache_keeps_its_size() -> None:
    cache = PassCache(size=2)
    for number in range(3):
        cache.put(("key", number), ())
    assert cache.get(("key", 0)) is None and cache.get(("key", 2)) == ()


@pytest.mark.parametrize("overrides", [
    CONFIG,
    pytest.param(["model=retrieval_v1"], marks=pytest.mark.slow),
    pytest.param(["model=ranking_v1", "features=online_retail"], marks=pytest.mark.slow),
])
def test_remembered_module_text_equals_libcsts(overrides: list[str]) -> None:
    registry = get_registry()
    for variant in (overrides, [*overrides, "model.learning_rate=0.0123"], overrides):
        modules = build(plan(validate(compose(variant), registry), registry), registry)
        for name, module in modules.items():
            assert codegen.module_code(module) == module.code, (variant, name)
    assert codegen._TEXTS  # statements were remembered, and the repeats reused them


def test_each_compose_returns_its_own_copy() -> None:
    first = compose(CONFIG)
    first.model.learning_rate = 99.0
    assert compose(CONFIG).model.learning_rate != 99.0
    second = compose([*CONFIG, "model.learning_rate=0.5"])
    assert second.model.learning_rate == 0.5
    assert compose(CONFIG).model.learning_rate != 0.5


# ------------------------------------------------------------------ the composition on disk
@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    from compiler.core import disk_cache
    from compiler.core.compose import release

    monkeypatch.setenv(disk_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    release()  # forget this process's compositions, as a new command would not have them
    yield tmp_path / "cache"
    release()


def test_a_kept_composition_is_hydras_and_needs_no_hydra(cache_dir) -> None:
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from compiler.core.compose import release

    composed = OmegaConf.to_yaml(compose([*CONFIG, "model.learning_rate=0.25"]))
    assert len(list((cache_dir / "compose").glob("*.pkl"))) == 1
    release()
    again = compose([*CONFIG, "model.learning_rate=0.25"])
    assert not GlobalHydra.instance().is_initialized()  # read from the cache
    assert OmegaConf.to_yaml(again) == composed
    assert OmegaConf.is_struct(again)  # still refuses unknown keys
    with pytest.raises(Exception, match="learning_rat"):
        again.model.learning_rat = 1.0


@pytest.mark.slow
def test_a_changed_config_file_or_a_damaged_cache_composes_again(cache_dir, tmp_path) -> None:
    import shutil

    from compiler.core.compose import CONF_DIR, release

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    before = compose(CONFIG, config_dir=conf)
    model_file = conf / "model" / "hybrid_v1.yaml"
    text = model_file.read_text()
    assert "learning_rate:" in text
    model_file.write_text(text.replace("learning_rate:", "learning_rate: 0.125 #", 1))
    release()
    after = compose(CONFIG, config_dir=conf)
    assert after.model.learning_rate == 0.125 != before.model.learning_rate
    assert len(list((cache_dir / "compose").glob("*.pkl"))) == 2
    for kept in (cache_dir / "compose").glob("*.pkl"):
        kept.write_bytes(kept.read_bytes()[:100])  # damaged
    release()
    assert compose(CONFIG, config_dir=conf).model.learning_rate == 0.125


def test_a_cache_file_others_can_write_is_never_loaded(cache_dir) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from compiler.core.compose import release

    compose(CONFIG)
    (kept,) = (cache_dir / "compose").glob("*.pkl")
    assert (kept.parent.stat().st_mode & 0o777) == 0o700
    kept.chmod(0o666)  # a pickle anyone could have replaced
    release()
    compose(CONFIG)
    assert GlobalHydra.instance().is_initialized()  # composed again, not read
    kept.chmod(0o600)
    release()
    compose(CONFIG)
    assert not GlobalHydra.instance().is_initialized()  # private again: read


def test_findings_kept_on_disk_are_a_fresh_runs_and_a_changed_text_misses(
        cache_dir, compiled) -> None:
    from compiler.core.disk_cache import cached_findings

    sources, passes = compiled
    registry = get_registry()
    named = [(name, r.cls, r.provider) for name, r in sorted(registry.passes.items())
             if r.cls in passes]
    runs = []

    def run(files):
        runs.append(files)
        return run_passes(files, passes)

    fresh = cached_findings(sources, named, lambda: run(sources))
    assert cached_findings(sources, named, lambda: run(sources)) == fresh
    assert len(runs) == 1 and len(list((cache_dir / "passes").glob("*.pkl"))) == 1
    changed = {**sources, "trainer_module.py": sources["trainer_module.py"] + BROKEN_TAIL}
    found = cached_findings(changed, named, lambda: run(changed))
    assert len(runs) == 2 and len(found) == len(fresh) + 2
    assert cached_findings(changed, named, lambda: run(changed)) == found
    assert len(runs) == 2


def test_compiling_again_rewrites_only_files_whose_text_changed(tmp_path) -> None:
    first = compile_overrides(CONFIG, output_dir=tmp_path)
    trainer, transform = tmp_path / "trainer_module.py", tmp_path / "transform_module.py"
    stamps = {path: path.stat().st_mtime_ns for path in first.emitted.files}
    transform.write_text(transform.read_text() + "# edited by hand\n")
    again = compile_overrides(CONFIG, output_dir=tmp_path)
    assert again.emitted.files == first.emitted.files
    assert trainer.stat().st_mtime_ns == stamps[trainer]  # the same text: left alone
    assert transform.read_text() == first.sources["transform_module.py"]  # restored
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in stamps)


def test_a_file_parsed_again_after_edits_is_the_tree_a_full_parse_gives() -> None:
    import libcst as cst

    from compiler.passes import incremental

    variants = [CONFIG, [*CONFIG, "model.learning_rate=0.0021"],
                [*CONFIG, "model.learning_rate=0.0021", "model.batch_size=64"],
                [*CONFIG, "model.batch_size=96"], ["model=retrieval_v1"]]
    texts = [compile_overrides(v, write=False).sources["trainer_module.py"] for v in variants]
    # By hand too: a statement added at the end, one removed, a comment before a changed one.
    edited = texts[0].replace("LEARNING_RATE = 0.001\n", "# tuned\nLEARNING_RATE = 0.5\n")
    assert edited != texts[0]
    texts += [texts[0] + "\n\nEXTRA = 1\n", edited, texts[0]]
    incremental.clear()
    incremental.remember("t.py", texts[0], cst.parse_module(texts[0]))
    reused = 0
    for text in texts[1:]:
        tree = incremental.reparse("t.py", text)
        full = cst.parse_module(text)
        if tree is None:
            incremental.remember("t.py", text, full)
            continue
        reused += 1
        assert tree.deep_equals(full) and tree.code == text
    assert reused >= 5  # every small edit; the other model's file is parsed whole
    assert incremental.reparse("t.py", "def broken(:\n") is None
