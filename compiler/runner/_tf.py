"""Lazy TensorFlow import shared by the runners.

``compiler.runner`` must be importable without TensorFlow (compiling never needs it), so every
runner function calls :func:`import_tf` instead of importing ``tensorflow`` at module level.
"""

from __future__ import annotations

import os
from types import ModuleType


def import_tf() -> ModuleType:
    """Import TensorFlow with Keras 2 selected.

    TFRS needs Keras 2 (tf-keras); ``TF_USE_LEGACY_KERAS`` is read when TensorFlow is first
    imported, so it is set here, before that import. ``setdefault`` keeps a caller's explicit
    choice.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    # Quiets the C++ INFO lines (oneDNN notices, CPU feature hints) that swamp job logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    # lazy: TensorFlow: the runners only; compiling never imports it
    import tensorflow as tf

    return tf
