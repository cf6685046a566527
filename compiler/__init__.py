"""recforge: a declarative config compiler for TFX / TensorFlow Recommenders trainers.

Compiling never imports TensorFlow; only the runners (``compiler.runner``) do, lazily.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "recforge"
__version__ = "0.1.0"

#: Marker for hook implementations. Plugins write ``from compiler import hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
#: Marker for hook specifications (used only by ``compiler.fragments.hookspecs``).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
