"""The one retry policy: exponential backoff with full jitter, from ``google.api_core.retry``.

Every retry in ``compiler`` goes through here: the ledger's transient lock / serialisation
failures, the Vertex AI and Vertex Pipelines calls (whose Google clients take these policies as
their ``retry=`` argument), the wait for a created job to show up, and the delays between polls
of a running job. ``google.api_core.retry`` rather than tenacity because the Google clients
speak it already, so one library covers both our loops and theirs; ``google-api-core`` is a core
dependency for that reason. It is imported inside the functions below (about 0.2 s, with
``requests``), so a ledger write that meets no lock and a compile that submits nothing never
load it. This is also the only place in ``compiler`` that sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from google.api_core.retry import Retry

_T = TypeVar("_T")

#: Growth of the delay between tries, unless a caller says otherwise.
MULTIPLIER = 2.0


def policy(predicate: Callable[[BaseException], bool], *, initial: float, maximum: float,
           timeout: float | None, multiplier: float = MULTIPLIER,
           on_error: Callable[[BaseException], None] | None = None) -> Retry:
    """Retry while ``predicate(error)`` holds: the n-th delay is uniform in ``[0, initial *
    multiplier**n]``, capped at ``maximum``; ``timeout`` seconds in all (``None``: until the
    predicate says stop), after which ``google.api_core.exceptions.RetryError`` is raised with
    the last error as its ``cause``. Usable as a decorator, or as a Google client's ``retry=``.
    """
    # lazy: Google Cloud SDK (google-api-core): only once something needs retrying
    from google.api_core.retry import Retry

    return Retry(predicate=predicate, initial=initial, maximum=maximum, multiplier=multiplier,
                 timeout=timeout, on_error=on_error)


def call(fn: Callable[[], _T], predicate: Callable[[BaseException], bool], *, initial: float,
         maximum: float, timeout: float) -> _T:
    """``fn()``, retried by :func:`policy` after an error ``predicate`` accepts, for up to
    ``timeout`` seconds; then the last error is raised as it is (like tenacity's
    ``reraise=True``), so callers handle one kind of exception whether or not retries ran.

    The first try runs outside the policy, so the fast path (no error) loads nothing.
    """
    try:
        return fn()
    except Exception as error:
        if not predicate(error):
            raise
    # lazy: Google Cloud SDK (google-api-core): only once something needs retrying
    from google.api_core.exceptions import RetryError

    try:
        return policy(predicate, initial=initial, maximum=maximum, timeout=timeout)(fn)()
    except RetryError as exhausted:
        if exhausted.cause is None:
            raise
        raise exhausted.cause from None


def delays(initial: float, maximum: float, multiplier: float = MULTIPLIER) -> Iterator[float]:
    """The same backoff as :func:`policy`, as delays for a loop of our own (polling a job)."""
    # lazy: Google Cloud SDK (google-api-core): polling a submitted job only
    from google.api_core.retry import exponential_sleep_generator

    return exponential_sleep_generator(initial, maximum, multiplier)


def pause(seconds: float) -> None:
    """Wait ``seconds`` between polls: the one ``time.sleep`` in ``compiler``."""
    time.sleep(seconds)
