"""What one ``python -m compiler`` command keeps on disk for the next: Hydra's composition of a
group selection, and the static passes' findings for a set of module texts.

Composing ``model=hybrid_v1 features=cherng_v3`` with Hydra (initialising it, storing the group
schemas as structured configs, reading and merging the YAML files) and running the passes over
freshly parsed modules are most of a one-compile command. Each result depends only on what its
key covers, so it is kept, pickled, in the user's cache directory (``$RECFORGE_CACHE_DIR``,
else ``$XDG_CACHE_HOME/recforge``, else ``~/.cache/recforge``), like ``__pycache__``:

- ``compose/``: the composition of a group selection; value overrides (``model.learning_rate=
  ...``) are applied after, so editing a value still hits. Key: the config directory's path and
  the path and bytes of every file under it, the config name, the group overrides in order.
- ``passes/``: the findings of the passes over a compile's files (a config whose emitted code is
  unchanged: another run, data or submit setting, a dry run). Key: each file's name and text
  digest; each pass's name, class, distribution, version and the digest of the ``.py`` files of
  the package that defines it.

Both keys also cover recforge's own sources (``ledger.provenance.source_digest``: the group
schemas and the pass framework are in ``compiler/``) and the Python, Hydra and OmegaConf
versions. Only a result that was computed without error is written (atomically: a temporary
file renamed into place), and findings only when they survive pickling unchanged (a fix made
of libcst nodes does not); a cache that cannot be read or written is skipped, never an error.
The files are pickles, so a file is read only when it and its directory belong to this user
and no one else can write them (the directories are made ``0700``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import omegaconf

from compiler.ledger.provenance import source_digest

#: Where the caches live, when set (else the XDG cache directory).
CACHE_DIR_ENV = "RECFORGE_CACHE_DIR"
_FORMAT = b"recforge-disk-cache-1"


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recforge"


def _key(parts: Iterable[str | bytes]) -> str:
    digest = hashlib.sha256(_FORMAT)
    for part in (source_digest(), sys.version, hydra.__version__, omegaconf.__version__,
                 *parts):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def composition_key(conf_dir: Path, config_name: str, groups: Sequence[str]) -> str:
    def files() -> Iterable[str | bytes]:
        for path in sorted(conf_dir.rglob("*")):
            if path.is_file():
                yield path.relative_to(conf_dir).as_posix()
                yield path.read_bytes()

    return _key([str(conf_dir), config_name, *groups, "", *files()])


def cached_composition(conf_dir: Path, config_name: str, groups: tuple[str, ...],
                       compose: Callable[[], bytes]) -> bytes:
    """The pickled composition from the cache, else ``compose()``'s, which is then kept."""
    try:
        path = cache_dir() / "compose" / f"{composition_key(conf_dir, config_name, groups)}.pkl"
    except OSError:  # an unreadable config file: Hydra reports it
        return compose()
    kept = _read(path)
    if kept is not None:
        return kept
    composed = compose()
    _write(path, composed)
    return composed


def cached_findings(sources: Mapping[str, str], passes: Sequence[tuple[str, type, Any]],
                    run: Callable[[], list[Any]]) -> list[Any]:
    """The findings of ``passes`` (name, class, provider) over ``sources`` from the cache, else
    ``run()``'s, which are then kept when they pickle unchanged."""
    try:
        key = _key([*(part for name, text in sources.items()
                      for part in (name, hashlib.sha256(text.encode()).hexdigest())), "",
                    *(part for name, cls, provider in passes
                      for part in (name, cls.__module__, cls.__qualname__,
                                   str(provider.distribution), str(provider.version),
                                   _package_digest(cls.__module__)))])
    except OSError:
        return run()
    path = cache_dir() / "passes" / f"{key}.pkl"
    kept = _read(path)
    if kept is not None:
        return list(pickle.loads(kept))  # noqa: S301 - checked by _read
    found = run()
    blob = pickle.dumps(tuple(found), protocol=pickle.HIGHEST_PROTOCOL)
    if pickle.loads(blob) == tuple(found):  # noqa: S301 - just made
        _write(path, blob)
    return found


@functools.lru_cache(maxsize=64)
def _package_digest(module: str) -> str:
    """sha256 of the ``.py`` files of the top-level package that ``module`` is in."""
    top = sys.modules[module.split(".")[0]]
    origin = Path(getattr(top, "__file__", "") or "")
    root = origin.parent if origin.name == "__init__.py" else origin
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
        digest.update(path.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _private(path: Path) -> bool:
    """True when ``path`` and its directory belong to this user and no one else can write
    them: a pickle anyone else could have written is never loaded."""
    for item in (path.parent, path):
        info = item.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return False
    return True


def _read(path: Path) -> bytes | None:
    try:
        if not _private(path):
            return None
        kept = path.read_bytes()
        pickle.loads(kept)  # noqa: S301 - a pickle this user's recforge wrote; checks it whole
    except Exception:  # noqa: BLE001 - missing, unreadable or damaged: computed again
        return None
    return kept


def _write(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=".new-")
        with os.fdopen(handle, "wb") as file:
            file.write(blob)
        os.replace(scratch, path)
    except OSError:  # a read-only or full cache directory: computed again next time
        pass
