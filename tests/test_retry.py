"""compiler.retry: the one retry policy (google.api_core.retry) and its re-raise contract."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler import retry

ROOT = Path(__file__).resolve().parents[1]


class Transient(Exception):
    pass


def failing(times: int, error: type[Exception] = Transient) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error(f"try {len(calls)}")
        return "done"

    return calls, fn


def is_transient(error: BaseException) -> bool:
    return isinstance(error, Transient)


def test_call_retries_accepted_errors_until_success() -> None:
    calls, fn = failing(3)
    assert retry.call(fn, is_transient, initial=0.001, maximum=0.01, timeout=10) == "done"
    assert len(calls) == 4


def test_call_raises_a_rejected_error_at_once() -> None:
    calls, fn = failing(3, ValueError)
    with pytest.raises(ValueError, match="try 1"):
        retry.call(fn, is_transient, initial=0.001, maximum=0.01, timeout=10)
    assert len(calls) == 1


def test_call_reraises_the_last_error_when_time_runs_out() -> None:
    calls, fn = failing(10**6)
    start = time.monotonic()
    with pytest.raises(Transient) as info:
        retry.call(fn, is_transient, initial=0.01, maximum=0.02, timeout=0.3)
    assert time.monotonic() - start < 2.0
    assert len(calls) > 2
    assert str(info.value) == f"try {len(calls)}"  # the last one, not the first


def test_delays_grow_up_to_the_maximum_with_jitter() -> None:
    drawn = list(itertools.islice(retry.delays(1.0, 8.0, 2.0), 200))
    assert all(0.0 <= d <= 8.0 for d in drawn)
    assert max(drawn[:1]) <= 1.0 and max(drawn[1:2]) <= 2.0
    assert max(drawn[10:]) > 4.0  # the bound reached the maximum
    assert len(set(drawn)) > 100  # jittered, not a fixed sequence


def test_policy_is_a_google_retry_that_clients_accept() -> None:
    from google.api_core.retry import Retry

    policy = retry.policy(is_transient, initial=0.001, maximum=0.01, timeout=5)
    assert isinstance(policy, Retry)
    calls, fn = failing(2)
    assert policy(fn)() == "done" and len(calls) == 3


@pytest.mark.slow
def test_importing_the_policy_loads_no_google_api_core() -> None:
    code = ("import sys, compiler.retry, compiler.ledger.store; "
            "print(any(m.startswith('google.api_core') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"
