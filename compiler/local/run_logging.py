"""Quiet runs: library output goes to ``<run_dir>/run.log``, recforge's own lines to the console.

TensorFlow's C++ logs (``I0000 ... cudart_stub``, ``E0000 ... failed call to cuInit``) are
written straight to file descriptor 2 by code Python cannot intercept, and absl, Beam, Keras
and Python's warnings write to ``sys.stdout`` / ``sys.stderr``. So :func:`library_output_to`
redirects both levels while a run works: descriptors 1 and 2 point at the log file, and
``sys.stdout`` / ``sys.stderr`` are replaced by streams into it. recforge's console writes to a
duplicate of the original stdout, opened before the redirect. Everything is restored when the
body ends, however it ends; streams a library kept a reference to (a logging handler made
while TensorFlow was imported) then write to the original streams again.

``--verbose`` (``RECFORGE_VERBOSE=1``) or ``run.verbose=true`` turns all of this off: library
output is shown as it comes, as before.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Set by ``python -m compiler --verbose``; read like ``run.verbose=true``.
VERBOSE_ENV = "RECFORGE_VERBOSE"
LOG_FILE = "run.log"


def verbose_requested(setting: bool = False) -> bool:
    """``run.verbose`` or the ``--verbose`` flag (``RECFORGE_VERBOSE`` set and not 0/false)."""
    flag = os.environ.get(VERBOSE_ENV, "").strip().lower()
    return bool(setting) or flag not in ("", "0", "false", "no", "off")


class _Retargetable(io.TextIOBase):
    """A text stream whose destination can change: the log while a run works, the original
    stream afterwards (for whoever kept a reference to it, such as a logging handler)."""

    def __init__(self, target: IO[str]) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.target.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(ValueError, OSError):
                stream.flush()


def _console_stream(original: IO[str], saved_fds: dict[int, int]) -> IO[str]:
    """Where recforge's own lines go while fds 1 and 2 point at the log.

    A stream on descriptor 1 or 2 gets a duplicate of the saved descriptor. A stream with no
    descriptor of its own (pytest's capsys, an io.StringIO) is kept as it is.
    """
    try:
        fileno = original.fileno()
    except (AttributeError, OSError, ValueError):
        return original
    if fileno not in saved_fds:
        return original
    return os.fdopen(os.dup(saved_fds[fileno]), "w", buffering=1,
                     encoding=getattr(original, "encoding", None) or "utf-8",
                     errors="replace")


@contextlib.contextmanager
def library_output_to(log_path: Path | None) -> Iterator[IO[str]]:
    """Send library output to ``log_path`` while the body runs; yield recforge's console stream.

    ``log_path=None`` (verbose) redirects nothing and yields ``sys.stdout``.
    """
    if log_path is None:
        yield sys.stdout
        return
    _flush_all()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved_fds = {1: os.dup(1), 2: os.dup(2)}
    console = _console_stream(sys.stdout, saved_fds)
    saved_streams = (sys.stdout, sys.stderr)
    log_stream = os.fdopen(os.dup(log_fd), "w", buffering=1, encoding="utf-8",
                           errors="replace")
    out, err = _Retargetable(log_stream), _Retargetable(log_stream)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout, sys.stderr = out, err
        try:
            yield console
        except BaseException:
            # The traceback belongs beside the library lines that led to it.
            traceback.print_exc(file=log_stream)
            raise
    finally:
        _flush_all()
        sys.stdout, sys.stderr = saved_streams
        out.target, err.target = saved_streams
        for fd, saved in saved_fds.items():
            os.dup2(saved, fd)
            os.close(saved)
        os.close(log_fd)
        log_stream.close()
        if console is not saved_streams[0]:
            console.close()


@contextlib.contextmanager
def step(console: Any, label: str, timings: dict[str, float], *,
         partial_lines: bool) -> Iterator[None]:
    """One progress line per step with its elapsed time: ``  Transform … 11.8 s``.

    On a terminal a spinner runs while the step works. Elsewhere (a pipe, a CI log) the label
    is written when the step starts and the time appended when it ends (``partial_lines``), or,
    when library output is interleaved (verbose), a start line and an end line.
    """
    started = time.perf_counter()
    if console.is_terminal:
        context: Any = console.status(f"[bold]{label}[/] …")
    else:
        context = contextlib.nullcontext()
        console.print(f"  {label} …", end=" " if partial_lines else "\n", highlight=False)
    try:
        with context:
            yield
    except BaseException:
        elapsed = time.perf_counter() - started
        prefix = "" if partial_lines and not console.is_terminal else f"  {label} … "
        console.print(f"{prefix}[red]failed[/] after {elapsed:.1f} s", highlight=False)
        raise
    timings[label] = round(time.perf_counter() - started, 2)
    if partial_lines and not console.is_terminal:
        console.print(f"{timings[label]:.1f} s", highlight=False)
    else:
        console.print(f"  [green]✓[/] {label} … {timings[label]:.1f} s", highlight=False)
