"""Stage 6 — emit: write the modules and the manifest atomically, byte-for-byte reproducibly."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class EmitResult:
    output_dir: Path
    files: tuple[Path, ...]


def manifest_json(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def emit(files: Mapping[str, str], manifest: Mapping[str, Any], output_dir: Path | str
         ) -> EmitResult:
    """Write every file into ``output_dir`` so readers see all old or all new files.

    Files are written into a sibling temporary directory first; each is then moved into place
    with ``os.replace`` (atomic per file). Nothing is left behind if writing fails. A file that
    already holds exactly its new text is left as it is (compiling a config again rewrites
    nothing, and its files keep their times).
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    contents = {**files, MANIFEST_FILE: manifest_json(manifest)}
    changed = {name: text for name, text in contents.items()
               if (current := _current_text(output_dir / name)) is None or current != text}
    if not changed:
        return EmitResult(output_dir, tuple(output_dir / name for name in contents))
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        for name, text in changed.items():
            with open(staging / name, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        output_dir.mkdir(exist_ok=True)
        for name in changed:
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EmitResult(output_dir, tuple(output_dir / name for name in contents))


def _current_text(path: Path) -> str | None:
    """The text ``emit`` wrote at ``path`` (None: no such file, or not text it could write)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None
