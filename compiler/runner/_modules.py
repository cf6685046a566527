"""Import a generated module from a file path under a unique name."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType

_counter = itertools.count()


def load_module_from_path(path: str | Path, prefix: str = "recforge_user_module") -> ModuleType:
    """Import the Python file at ``path`` as a fresh module.

    The name is unique per call so that two modules with the same file name (every trainer is a
    ``trainer_module.py``) never share a ``sys.modules`` entry, and re-running a changed file in
    the same process really runs the new code. The module is registered in ``sys.modules``
    because Keras / tf.function / Beam pickling look classes and functions up through it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"module file not found: {path}")
    stem = re.sub(r"\W", "_", path.stem)
    name = f"{prefix}_{stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd suffixes
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
