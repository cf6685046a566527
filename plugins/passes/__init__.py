"""recforge's built-in static passes, one module each, registered through the plugin hook."""

from __future__ import annotations

from compiler import hookimpl
from compiler.passes import Pass
from plugins.passes.candidates_not_deduplicated import CandidatesNotDeduplicated
from plugins.passes.double_batching import DoubleBatching
from plugins.passes.gcs_local_io import GcsLocalIo
from plugins.passes.keras3_save_format import Keras3SaveFormat
from plugins.passes.legacy_keras_order import LegacyKerasOrder
from plugins.passes.pyflakes_check import Pyflakes
from plugins.passes.scann_save_namespace import ScannSaveNamespace
from plugins.passes.swallowed_exception import SwallowedException
from plugins.passes.topk_metrics_in_training import TopkMetricsInTraining
from plugins.passes.transform_trainer_drift import TransformTrainerDrift
from plugins.passes.unused_private_function import UnusedPrivateFunction

RECFORGE_HOOKSPEC_VERSION = 1

#: In the order docs/passes.md lists them: the two named in the issue first, then hazards.md's.
BUILTIN_PASSES: tuple[type[Pass], ...] = (
    DoubleBatching,
    GcsLocalIo,
    LegacyKerasOrder,
    TopkMetricsInTraining,
    CandidatesNotDeduplicated,
    SwallowedException,
    ScannSaveNamespace,
    Keras3SaveFormat,
    Pyflakes,
    TransformTrainerDrift,
    UnusedPrivateFunction,
)


@hookimpl
def register_passes() -> list[type[Pass]]:
    return list(BUILTIN_PASSES)
