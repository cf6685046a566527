"""``assert_rejected``: bad input ends as one ``error:`` line, exit 2, and leaves nothing behind.

Shared by every test of the preflight (issue #11's "one error path"): the command is run as a
user runs it (``python -m compiler ...`` in a subprocess), with a fresh ledger in ``tmp_path``,
and the test checks that it exits 2 with exactly one line on stderr that starts with
``error: ``, shows no traceback, writes or changes no file under the ``output_dir=`` it was
given nor under the checkout's ``generated/``, and records no ledger row.

``in_process=True`` calls ``compiler.__main__.main`` instead (about 1 s faster a case); the
assertions are the same, on what the call printed to stderr through ``capsys``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``directory``: relative path -> (mtime_ns, sha256)."""
    files: dict[str, tuple[int, str]] = {}
    if not os.path.exists(directory):  # (Path.exists raises on an over-long name)
        return files
    for path in sorted(directory.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[str(path.relative_to(directory))] = (path.stat().st_mtime_ns, digest)
    return files


#: The ledger's row tables (``compiler.ledger.schema``).
LEDGER_ROW_TABLES = ("recforge_experiments", "recforge_sweeps")


def ledger_rows(url: str) -> int:
    """Experiments plus sweeps recorded in a SQLite ledger (0 when the file does not exist)."""
    assert url.startswith("sqlite:///"), f"only SQLite ledgers are inspected here, got {url}"
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        return 0
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        counted = [table for table in LEDGER_ROW_TABLES if table in tables]
        # A ledger file with tables but none of these means the schema was renamed: fail loudly
        # rather than count zero rows forever.
        assert counted or not tables, f"no ledger tables among {sorted(tables)}"
        return sum(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                   for table in counted)


def _output_dir(args: Sequence[str]) -> Path | None:
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        if key == "output_dir" and value:
            return Path(value)
    return None


def assert_rejected(
    args: Sequence[str],
    *,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    key: str | None = None,
    cwd: Path | None = None,
    in_process: bool = False,
    capsys: Any = None,
) -> str:
    """Run ``python -m compiler *args``; assert it was rejected cleanly; return the error line.

    ``key``: text the error line must contain (usually the config key or file:line).
    Pass ``output_dir=<tmp_path>/out`` in ``args`` to check that nothing is written there;
    ``generated/`` is always checked. ``in_process=True`` needs ``capsys``.
    """
    environment = {**os.environ, **(env or {})}
    if not (env and "RECFORGE_LEDGER_URL" in env):
        environment["RECFORGE_LEDGER_URL"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger_url = environment["RECFORGE_LEDGER_URL"]
    ledger_before = ledger_rows(ledger_url) if ledger_url.startswith("sqlite:///") else None
    output_dir = _output_dir(args)
    if output_dir is not None and not output_dir.is_absolute():
        output_dir = (cwd or ROOT) / output_dir
    watched = [GENERATED] + ([output_dir] if output_dir is not None else [])
    before = {str(d): snapshot(d) for d in watched}
    existed = {str(d): os.path.exists(d) for d in watched}

    if in_process:
        code, stderr = _run_in_process(list(args), environment, cwd, capsys)
    else:
        completed = subprocess.run(
            [sys.executable, "-m", "compiler", *args], cwd=cwd or ROOT, capture_output=True,
            text=True, timeout=300, env=environment,
        )
        code, stderr = completed.returncode, completed.stderr

    assert code == 2, f"expected exit code 2, got {code}; stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    if key is not None:
        assert key in line, f"expected {key!r} in the error line, got: {line}"
    for directory in watched:
        assert os.path.exists(directory) == existed[str(directory)], \
            f"{directory} was created: {line}"
        assert snapshot(directory) == before[str(directory)], f"{directory} changed: {line}"
    if ledger_before is not None:
        assert ledger_rows(ledger_url) == ledger_before, f"a ledger row was recorded: {line}"
    return line


def _run_in_process(args: list[str], environment: Mapping[str, str], cwd: Path | None,
                    capsys: Any) -> tuple[int, str]:
    assert capsys is not None, "in_process=True needs the capsys fixture"
    from compiler.__main__ import main

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(environment)
    try:
        if cwd is not None:
            os.chdir(cwd)
        capsys.readouterr()
        try:
            code = main(args)
        except SystemExit as exit_:  # what the CLI would exit with
            code = exit_.code if isinstance(exit_.code, int) else 1
        return code, capsys.readouterr().err
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
