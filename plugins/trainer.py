"""The trainer skeleton: ``run_fn(fn_args)``, its I/O helpers and the metrics file.

Other fragments add their steps into ``run_fn`` at the ``FRAGMENTS`` slot, in plan order, which
is slot order (``after_fit``: candidates and the index; ``evaluate``: the evaluators;
``export``), and callbacks (slot ``callbacks``) into ``_training_callbacks``.
"""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

CONSTANTS = '''
BATCH_SIZE = {batch_size}
EPOCHS = {epochs}
#: Batches per call of the compiled train / evaluation step (model.performance): fewer calls
#: from Python per epoch.
STEPS_PER_EXECUTION = {steps_per_execution}
#: Compile the train / evaluation steps with XLA (model.performance.jit_compile).
JIT_COMPILE = {jit_compile}
METRICS_FILE = "training_metrics.json"
'''

HELPERS = '''
def _transform_output_dir(fn_args):
    return getattr(fn_args, "transform_output", None) or fn_args.transform_graph_path


def _eval_split_files(eval_files):
    """Files of the eval split; none in a two-way split (no eval data), which then trains
    without validation and leaves the val_* metrics out instead of computing them on nothing."""
    patterns = eval_files if isinstance(eval_files, (list, tuple)) else [eval_files]
    files = sorted(path for pattern in patterns if pattern for path in tf.io.gfile.glob(pattern))
    if not files:
        logger.warning(
            "No eval split: no validation, no val_* metrics "
            "(training_metrics.json records eval_split=absent)"
        )
    return files


def _test_split_files(train_files):
    """Files of the ``Split-test`` sibling of the train split, found with tf.io.gfile
    (os.path and glob cannot see gs:// paths)."""
    train_location = train_files[0] if isinstance(train_files, (list, tuple)) else train_files
    train_dir = (
        train_location if tf.io.gfile.isdir(train_location) else train_location.rsplit("/", 1)[0]
    )
    test_dir = train_dir.rstrip("/").rsplit("/", 1)[0] + "/Split-test"
    files = tf.io.gfile.glob(test_dir + "/*.gz") if tf.io.gfile.isdir(test_dir) else []
    if not files:
        logger.error(
            "NO TEST SPLIT at %s: test metrics are not computed "
            "(training_metrics.json records test_split=missing)",
            test_dir,
        )
    return files


def _training_metrics(history, eval_split, test_split):
    rows = [
        {"epoch": epoch + 1, **{key: float(values[epoch]) for key, values in history.items()}}
        for epoch in range(len(history["loss"]))
    ]
    return {
        "model_type": MODEL_TYPE,
        "history": rows,
        "final": {"loss": rows[-1]["loss"]},
        "eval_split": eval_split,
        "test_split": test_split,
    }


def _write_metrics(metrics, fn_args):
    """Write training_metrics.json to the run dir, and beside a remote serving model."""
    text = json.dumps(metrics, indent=2, sort_keys=True)
    directories = [fn_args.model_run_dir]
    if "://" in fn_args.serving_model_dir:
        directories.append(fn_args.serving_model_dir.rstrip("/").rsplit("/", 1)[0])
    for directory in directories:
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(directory.rstrip("/") + "/" + METRICS_FILE, "w") as handle:
            handle.write(text)
'''

TRAINING_CALLBACKS = '''
def _training_callbacks(fn_args):
    """The Keras callbacks of fit, in model.callbacks order."""
    callbacks = []
    return callbacks
'''

#: What the other fragments' code uses of the trainer: the seed (the input's shuffle), the
#: logger and the base class of every task's model. Emitted as a shared block, before its users.
SHARED = '''
SEED = {seed}

logger = logging.getLogger(__name__)


class MeanLossModel(tfrs.models.Model):
    """A TFRS model that reports each epoch's mean losses (TFRS reports the last batch's)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_means = [
            tf.keras.metrics.Mean(name=name)
            for name in ("loss", "regularization_loss", "total_loss")
        ]

    @property
    def metrics(self):
        # Keras resets everything listed here at the start of each epoch.
        return [*super().metrics, *self.loss_means]

    def train_step(self, inputs):
        return self._mean_losses(super().train_step(inputs))

    def test_step(self, inputs):
        return self._mean_losses(super().test_step(inputs))

    def _mean_losses(self, logs):
        for mean in self.loss_means:
            mean.update_state(logs[mean.name])
            logs[mean.name] = mean.result()
        return logs
'''

RUN_FN = '''
def run_fn(fn_args):
    """TFX Trainer entry point: train, evaluate on the eval and test splits, export."""
    tf.keras.utils.set_random_seed(SEED)
    custom_config = fn_args.custom_config or {}
    epochs = int(custom_config.get("epochs", EPOCHS))
    batch_size = int(custom_config.get("batch_size", BATCH_SIZE))
    tf_transform_output = tft.TFTransformOutput(_transform_output_dir(fn_args))

    train_dataset = _input_fn(fn_args.train_files, tf_transform_output, batch_size, shuffle=True)
    eval_files = _eval_split_files(fn_args.eval_files)
    eval_dataset = _input_fn(eval_files, tf_transform_output, batch_size) if eval_files else None
    test_files = _test_split_files(fn_args.train_files)
    test_dataset = _input_fn(test_files, tf_transform_output, batch_size) if test_files else None

    model = RecommenderModel(tf_transform_output)
    model.compile(
        optimizer=_make_optimizer(),
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile=JIT_COMPILE,
    )
    # Create every variable (layers, optimizer slots) before fit: a tf.function whose first
    # trace creates variables is traced twice.
    model.compute_loss(next(iter(train_dataset)))
    model.optimizer.build(model.trainable_variables)
    history = model.fit(
        train_dataset,
        validation_data=eval_dataset,
        epochs=epochs,
        callbacks=_training_callbacks(fn_args),
        verbose=2,
    )
    metrics = _training_metrics(
        history.history, "found" if eval_files else "absent", "found" if test_files else "missing"
    )
    index = None
    FRAGMENTS
    _write_metrics(metrics, fn_args)
    return metrics
'''


#: The function callback fragments add to (slot ``callbacks``).
CALLBACKS_FUNCTION = "_training_callbacks"


class RunFn(Fragment):
    kind: ClassVar[str] = "trainer"
    name: ClassVar[str] = "run_fn"
    description: ClassVar[str] = "TFX run_fn: fit, evaluate, export, write training_metrics.json"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]  # every config uses it
    provides: ClassVar[tuple[str, ...]] = (
        "seed", "logger", "MeanLossModel", "metrics", "datasets", "trained_model",
    )
    requires: ClassVar[tuple[str, ...]] = ("input_fn", "RecommenderModel", "optimizer")
    slots: ClassVar[tuple[str, ...]] = ("callbacks", "after_fit", "evaluate", "export")
    writes: ClassVar[tuple[str, ...]] = ("loss",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        for module, alias in (("json", None), ("logging", None), ("tensorflow", "tf"),
                              ("tensorflow_transform", "tft")):
            out.require_import(module, alias=alias)
        out.add(Section.CONSTANTS, statements(
            CONSTANTS, batch_size=use.params["batch_size"], epochs=use.params["epochs"],
            steps_per_execution=use.params.get("steps_per_execution", 1),
            jit_compile=use.params.get("jit_compile", False),
        ))
        out.require_import("tensorflow_recommenders", alias="tfrs")
        out.add(Section.HELPERS, statements(HELPERS))
        out.add_once("trainer-shared", Section.CONSTANTS,
                     statements(SHARED, seed=use.params["seed"]))
        out.add(Section.HELPERS, statements(TRAINING_CALLBACKS))
        out.add(Section.ENTRY, statements(RUN_FN))


TENSORBOARD = '''
callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir + "/logs"))
'''


class TensorBoardCallback(Fragment):
    kind: ClassVar[str] = "callback"
    name: ClassVar[str] = "tensorboard"
    description: ClassVar[str] = "TensorBoard logs under <model_run_dir>/logs"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    fills: ClassVar[tuple[str, ...]] = ("callbacks",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add_to_function(CALLBACKS_FUNCTION, statements(TENSORBOARD))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [RunFn, TensorBoardCallback]
