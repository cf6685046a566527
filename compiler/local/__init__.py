"""Local runs (``run=local``): the Beam DirectRunner Transform, the emitted ``run_fn``, and the
step log they print.

- ``config``: the run config check (``check_run_config``, part of preflight).
- ``run``: the local run.
- ``baselines``: the baselines printed and recorded beside the model's metrics.
- ``transform``: runs the emitted Transform module on the loaded data (cached by digest).
- ``run_logging``: the quiet/verbose step log of a run.

TensorFlow, Beam and pandas are imported only inside the functions that run them.
"""

from compiler.local.config import check_run_config
from compiler.schema import LocalRunConfig

__all__ = ["LocalRunConfig", "check_run_config"]
