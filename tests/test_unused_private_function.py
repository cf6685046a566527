"""unused-private-function, and the Transform module emitting only the date helpers it calls."""

from __future__ import annotations

import pytest

from compiler.core.pipeline import compile_overrides
from compiler.passes import Severity, run_passes
from plugins.passes.unused_private_function import EMITTED_HEADER, UnusedPrivateFunction

_DEAD = '''\
def _dead(x):
    return x


def run_fn(fn_args):
    return fn_args
'''


def test_unused_private_function_is_an_error_in_emitted_modules_only() -> None:
    emitted = EMITTED_HEADER + "0.1.0: model=m features=f. Do not edit; recompile.\n" + _DEAD
    (in_emitted,) = run_passes({"trainer_module.py": emitted}, [UnusedPrivateFunction])
    (in_user_file,) = run_passes({"trainer_module.py": _DEAD}, [UnusedPrivateFunction])
    assert (in_emitted.line, in_emitted.severity) == (2, Severity.ERROR)
    assert (in_user_file.line, in_user_file.severity) == (1, Severity.WARNING)
    assert "'_dead'" in in_user_file.message


def test_a_reference_from_a_nested_function_or_a_decorator_counts() -> None:
    source = '''\
def _decorate(f):
    return f


def _inner_helper(x):
    return x


@_decorate
def run_fn(fn_args):
    def step(x):
        return _inner_helper(x)

    return step(fn_args)
'''
    assert run_passes({"trainer_module.py": source}, [UnusedPrivateFunction]) == []


@pytest.mark.parametrize(
    ("periods", "helpers"),
    [
        ("[weekly]", {"_days_since_epoch", "_cycle"}),
        ("[monthly]", {"_days_since_epoch", "_civil_from_days", "_cycle"}),
        ("[weekly,monthly,yearly]",
         {"_days_since_epoch", "_civil_from_days", "_days_from_civil", "_cycle"}),
    ],
)
@pytest.mark.slow
def test_transform_module_emits_only_the_date_helpers_its_features_call(
    periods: str, helpers: set[str], tmp_path
) -> None:
    result = compile_overrides(
        ["model=hybrid_v1", "features=cherng_v3", f"features.buyer.1.cyclical={periods}"],
        output_dir=tmp_path,
    )
    transform = result.sources["transform_module.py"]
    # The pass tells an emitted module by its header: the two must keep agreeing.
    assert all(source.startswith(EMITTED_HEADER) for source in result.sources.values())
    lines = transform.splitlines()
    defined = {line[4:].split("(")[0] for line in lines if line.startswith("def _")}
    assert defined == helpers
    assert not [f for f in result.findings if f.rule == "unused-private-function"]
    # Each timestamp column is converted to days once, however many transforms read it.
    assert transform.count("_days_since_epoch(inputs[") == 1
    assert ("import math" in transform) == ("_cycle" in helpers)


def test_a_timestamp_without_cyclical_features_gets_days_and_no_calendar(tmp_path) -> None:
    result = compile_overrides(
        ["model=hybrid_v1", "features=cherng_v3", "features.buyer.1.cyclical=[]"],
        output_dir=tmp_path,
    )
    transform = result.sources["transform_module.py"]
    assert "def _days_since_epoch(" in transform and "def _cycle(" not in transform
    assert "import math" not in transform
    assert transform.count("date_days = _days_since_epoch(inputs[") == 1
