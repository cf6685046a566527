"""Source distributions a Vertex AI ``pythonPackageSpec`` installs before running the job.

Two archives:
- ``recforge-<version>.tar.gz``: this distribution (``compiler`` and ``plugins``), so the job can
  run ``python -m compiler.runner.job``;
- ``recforge_job_requirements-1.0.tar.gz``: no code, only ``dependencies`` = the configured pip
  requirements (``submit.packages``). Vertex installs package URIs with pip, which also
  installs their dependencies from PyPI; ``packageUris`` itself can only name archives.

Both are built by setuptools' PEP 517 backend in a subprocess, from a copy of the source tree,
so building never writes into the checkout (no ``*.egg-info`` there) and two builds at once do
not collide. Each archive is then rewritten reproducibly (sorted members, fixed times, owners
and modes, no gzip time stamp): the same sources give the same bytes, so the same content
digest and the same staged object (see ``job_spec.staging_plan``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import compiler
from compiler.cloud.errors import SubmitError

DISTRIBUTION = "recforge"
REQUIREMENTS_DISTRIBUTION = "recforge_job_requirements"
#: What of the checkout goes into the sdist: the packages pyproject's find config includes,
#: plus the files setuptools reads while building.
_TREE = ("pyproject.toml", "README.md", "LICENSE", "compiler", "plugins")
_BUILD = (
    "import sys\n"
    "from setuptools import build_meta\n"
    "print(build_meta.build_sdist(sys.argv[1]))\n"
)


def source_root() -> Path:
    """The checkout holding recforge's ``pyproject.toml`` (``compiler`` is imported from it)."""

    root = Path(compiler.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or f'name = "{DISTRIBUTION}"' not in pyproject.read_text():
        raise SubmitError(
            f"cannot package recforge: no recforge pyproject.toml next to {root / 'compiler'}",
            hint="submit from a source checkout of recforge",
        )
    return root


def requirements_hash(requirements: Sequence[str]) -> str:
    """Short content hash of a requirement list (names the staging folder of its archive)."""
    return hashlib.sha256(json.dumps(list(requirements)).encode()).hexdigest()[:12]


def sdist_name(version: str) -> str:
    return f"{DISTRIBUTION}-{version}.tar.gz"


REQUIREMENTS_SDIST = f"{REQUIREMENTS_DISTRIBUTION}-1.0.tar.gz"


def build_recforge_sdist(out_dir: Path, root: Path | None = None) -> Path:
    """Build recforge's sdist into ``out_dir`` and return its path."""
    return build_packages(out_dir, (), root)[0]


def build_requirements_sdist(requirements: Sequence[str], out_dir: Path) -> Path:
    """Build a code-free sdist whose only content is ``dependencies = requirements``."""
    with tempfile.TemporaryDirectory(prefix="recforge-reqs-") as tmp:
        return _finish(_start(_requirements_tree(requirements, Path(tmp)), out_dir))


def build_packages(out_dir: Path, requirements: Sequence[str] = (), root: Path | None = None
                   ) -> tuple[Path, Path | None]:
    """Both sdists (the second only with requirements), built side by side: each build is
    mostly interpreter and setuptools start-up, so two processes take the time of one."""
    root = root or source_root()
    with tempfile.TemporaryDirectory(prefix="recforge-sdist-") as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in _TREE:
            path = root / name
            if path.is_dir():
                shutil.copytree(path, tree / name, ignore=ignore)
            elif path.is_file():
                shutil.copy2(path, tree / name)
        recforge = _start(tree, out_dir / "recforge")
        reqs = (_start(_requirements_tree(requirements, Path(tmp) / "reqs"), out_dir / "reqs")
                if requirements else None)
        return _finish(recforge), (_finish(reqs) if reqs else None)


def _requirements_tree(requirements: Sequence[str], tree: Path) -> Path:
    tree.mkdir(parents=True, exist_ok=True)
    deps = ",\n".join(f"    {json.dumps(r)}" for r in requirements)
    (tree / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f'name = "{REQUIREMENTS_DISTRIBUTION}"\n'
        'version = "1.0"\n'
        'description = "pip requirements of a recforge Vertex AI job"\n'
        f"dependencies = [\n{deps}\n]\n\n"
        "[tool.setuptools]\n"
        "packages = []\n"
    )
    return tree


def _start(tree: Path, out_dir: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(out_dir)],
        cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return proc, tree, out_dir


def _finish(build: tuple[subprocess.Popen[str], Path, Path]) -> Path:
    proc, tree, out_dir = build
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise SubmitError(f"building a source distribution in {tree} failed:\n{tail}",
                          exit_code=1)
    archive = out_dir / stdout.strip().splitlines()[-1]
    make_reproducible(archive)
    return archive


#: 2000-01-01: any fixed time works; wheels built from the sdist need one after 1980.
_FIXED_MTIME = 946684800


def make_reproducible(archive: Path) -> None:
    """Rewrite a ``.tar.gz`` so its bytes depend on its files' contents and names only."""

    # lazy: tarfile, only when staging a package for submit
    import tarfile

    out = io.BytesIO()
    with tarfile.open(archive, "r:gz") as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in sorted(src.getmembers(), key=lambda m: m.name):
            data = src.extractfile(member) if member.isfile() else None
            member.mtime = _FIXED_MTIME
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
            member.pax_headers = {}
            dst.addfile(member, data)
    archive.write_bytes(gzip.compress(out.getvalue(), compresslevel=9, mtime=0))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
