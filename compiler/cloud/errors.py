"""The one error type of ``compiler.cloud``: a message for the user, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from compiler.errors import ConfigError, RecforgeError


class SubmitError(RecforgeError):
    """Submitting, waiting for or reading back a Vertex AI job failed in a way the user can fix.

    ``exit_code`` is 2 for bad input (config, credentials, source data) caught before anything
    was created, 1 for a job that ran and failed, 3 for a wait that timed out and 130 for an
    interrupted wait. ``job_id`` is set once a job exists.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        exit_code: int = 2,
        key: str | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
        self.key = key
        self.job_id = job_id


class SubmitConfigError(ConfigError, SubmitError):
    """A ``submit.*`` value (or the ``RECFORGE_VERTEX_*`` variable behind it) is malformed.

    Reads ``<key>: expected ..., got ...`` like every other config error (exit 2), and is a
    :class:`SubmitError` too, so ``main_submit`` reports it as one line.
    """

    def __init__(self, key: str, problem: str, *, suggestion: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(key, problem, suggestion=suggestion, hint=hint)
        self.key = key  # SubmitError.__init__ (reached through super()) reset it


@contextmanager
def api_errors(what: str, exit_code: int = 2) -> Iterator[None]:
    """Turn a refused or failed Google API call into one clear line."""
    # lazy: HTTP errors of the Google SDK's transport: cloud calls only
    import requests
    from google.api_core.exceptions import GoogleAPICallError, RetryError
    from google.auth.exceptions import RefreshError, TransportError

    try:
        yield
    except RetryError as error:  # a client library's own retries ran out (e.g. GCS listing)
        cause = error.cause
        credentials = isinstance(cause, (RefreshError, TransportError))
        raise SubmitError(
            f"{what}: " + ("the Google Cloud credentials could not be refreshed "
                           if credentials else "kept failing ")
            + f"({one_line(cause) if cause is not None else one_line(error)})",
            hint="run `gcloud auth application-default login`" if credentials else None,
            exit_code=exit_code,
        ) from None
    except (RefreshError, TransportError) as error:
        raise SubmitError(
            f"{what}: the Google Cloud credentials were rejected or could not be refreshed "
            f"({one_line(error)})",
            hint="run `gcloud auth application-default login`", exit_code=exit_code,
        ) from None
    except GoogleAPICallError as error:
        raise SubmitError(f"{what}: {one_line(error)}", exit_code=exit_code) from None
    except requests.exceptions.RequestException as error:
        raise SubmitError(f"{what}: network error: {one_line(error)}",
                          exit_code=exit_code) from None


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:400]
