"""recforge-dcn: a Deep & Cross Network tower, a sampled-softmax retrieval loss, an NDCG@K
evaluator, an epoch-time training callback and one pass.

recforge finds this module through the ``recforge`` entry point in pyproject.toml and calls
the two hooks below. Compiling never imports TensorFlow: the fragments only write code.
"""

from __future__ import annotations

from compiler import hookimpl
from compiler.fragments import Fragment
from compiler.passes import Pass
from recforge_dcn.callbacks import EpochTimeCallback
from recforge_dcn.evaluators import NDCGAtK
from recforge_dcn.losses import SampledSoftmaxLoss
from recforge_dcn.passes import CrossStackX0
from recforge_dcn.towers import DCNTower

__version__ = "0.1.0"

#: The recforge hook spec version this plugin is written for; recforge refuses the plugin
#: (with a warning) if it provides another one.
RECFORGE_HOOKSPEC_VERSION = 1


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [DCNTower, SampledSoftmaxLoss, NDCGAtK, EpochTimeCallback]


@hookimpl
def register_passes() -> list[type[Pass]]:
    return [CrossStackX0]
