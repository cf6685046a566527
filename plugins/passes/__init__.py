"""recforge's built-in static passes, one module each, registered through the plugin hook."""

from __future__ import annotations

from compiler import hookimpl
from compiler.passes import Pass
from plugins.passes.double_batching import DoubleBatching
from plugins.passes.gcs_local_io import GcsLocalIo

RECFORGE_HOOKSPEC_VERSION = 1

BUILTIN_PASSES: tuple[type[Pass], ...] = (
    DoubleBatching,
    GcsLocalIo,
)


@hookimpl
def register_passes() -> list[type[Pass]]:
    return list(BUILTIN_PASSES)
