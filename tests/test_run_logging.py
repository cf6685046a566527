"""Quiet runs: library output (even C-level writes to fd 1/2) goes to run.log, recforge's lines
to the console; everything is restored afterwards, also after an exception."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest
from rich.console import Console

from compiler.local.run_logging import step, verbose_requested
from tests.compile_helpers import ROOT

SCRIPT = textwrap.dedent('''
    import logging, os, sys, warnings
    from pathlib import Path
    from compiler.local.run_logging import library_output_to

    log = Path(sys.argv[1])
    handler_holder = []
    try:
        with library_output_to(log) as console:
            os.write(2, b"E0000 a C++ line on fd 2\\n")
            os.write(1, b"I0000 a C++ line on fd 1\\n")
            print("WARNING a library print")
            warnings.warn("a Python warning")
            handler = logging.StreamHandler()  # made inside: holds the replaced sys.stderr
            logging.getLogger("lib").addHandler(handler)
            logging.getLogger("lib").warning("WARNING:lib a logged line")
            console.write("recforge: progress line\\n")
            if sys.argv[2] == "fail":
                raise RuntimeError("boom")
    except RuntimeError:
        print("recforge: caught the failure")
    print("recforge: after the run")
    logging.getLogger("lib").warning("a handler made during the run still works")
''')


def run_script(tmp_path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run.log"), mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["ok", "fail"])
@pytest.mark.slow
def test_library_output_goes_to_the_log_and_recforge_lines_to_the_console(tmp_path,
                                                                          mode) -> None:
    completed = run_script(tmp_path, mode)
    assert completed.returncode == 0, completed.stderr
    expected = ["recforge: progress line"]
    if mode == "fail":
        expected.append("recforge: caught the failure")
    expected.append("recforge: after the run")
    assert completed.stdout.splitlines() == expected
    assert completed.stderr.splitlines() == ["a handler made during the run still works"]
    log = (tmp_path / "run.log").read_text()
    for line in ("E0000 a C++ line on fd 2", "I0000 a C++ line on fd 1",
                 "WARNING a library print", "a Python warning", "WARNING:lib a logged line"):
        assert line in log
    assert "recforge:" not in log
    assert ("RuntimeError: boom" in log) == (mode == "fail")


def test_step_writes_one_line_with_the_elapsed_time_off_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=100)
    timings: dict[str, float] = {}
    with step(console, "Transform", timings, partial_lines=True):
        pass
    with pytest.raises(ValueError), step(console, "train", timings, partial_lines=True):
        raise ValueError("x")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == f"  Transform … {timings['Transform']:.1f} s"
    assert lines[1].startswith("  train … failed after ")
    assert list(timings) == ["Transform"]


def test_step_without_partial_lines_writes_a_start_and_an_end_line() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=100)
    with step(console, "Transform", {}, partial_lines=False):
        console.print("a library line in between")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "  Transform …"
    assert lines[1] == "a library line in between"
    assert lines[2].startswith("  ✓ Transform … ")


@pytest.mark.parametrize(("setting", "env", "verbose"), [
    (False, None, False), (True, None, True), (False, "1", True), (False, "0", False),
    (False, "false", False),
])
def test_verbose_comes_from_the_setting_or_the_flag(monkeypatch, setting, env,
                                                    verbose) -> None:
    if env is None:
        monkeypatch.delenv("RECFORGE_VERBOSE", raising=False)
    else:
        monkeypatch.setenv("RECFORGE_VERBOSE", env)
    assert verbose_requested(setting) is verbose
