"""Where relative data paths and the dataset cache live."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path | None:
    """The source checkout this package runs from, or None when installed elsewhere.

    A checkout is recognised by ``pyproject.toml`` next to the ``compiler`` package; an installed
    wheel has none, and then there is no repository to anchor paths to.
    """
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "compiler").is_dir() else None


def original_cwd() -> Path:
    """The directory the user started in, even when Hydra has changed into its run directory."""
    try:
        # lazy: Hydra internals: only inside a Hydra app (the job side runs without)
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            # lazy: Hydra internals: only inside a Hydra app (the job side runs without)
            from hydra.utils import get_original_cwd

            return Path(get_original_cwd())
    except ImportError:  # hydra is a core dependency, but the data layer works without it
        pass
    return Path.cwd()


def default_cache_dir() -> Path:
    """``<repo>/.recforge/datasets`` in a checkout (git-ignored), else the user cache dir."""
    root = repo_root()
    if root is not None:
        return root / ".recforge" / "datasets"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recforge" / "datasets"


def base_dirs() -> list[Path]:
    """Directories a relative local path is tried against, in order (deduplicated)."""
    dirs = [original_cwd().resolve()]
    root = repo_root()
    if root is not None and root not in dirs:
        dirs.append(root)
    return dirs
