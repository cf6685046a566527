"""transform-trainer-drift: the pass and the two readers it alone uses.

- ``consts``: constant folding of feature keys (``ConstEval``, ``ConstWalker``).
- ``contract``: what ``preprocessing_fn`` outputs and what a trainer reads, read statically.
- ``check``: the ``TransformTrainerDrift`` pass that compares the two.

They lived in the pass framework (``compiler/passes/``) although only this pass uses them.
"""

from plugins.passes.transform_trainer_drift.check import TransformTrainerDrift

__all__ = ["TransformTrainerDrift"]
