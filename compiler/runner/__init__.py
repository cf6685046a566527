"""Runners for recforge's emitted modules: tf.Transform on Beam, the trainer's ``run_fn``, and
the job entry point a Vertex AI Custom Job runs.

Importing this package never imports TensorFlow; each runner imports it inside its functions.

- :func:`compiler.runner.transform.run_transform`
- :class:`compiler.runner.fn_args.FnArgs`, :func:`compiler.runner.fn_args.fn_args_from_transform`
- :func:`compiler.runner.trainer.run_trainer`
- ``python -m compiler.runner.job`` (:func:`compiler.runner.job.main`)
"""

from __future__ import annotations
