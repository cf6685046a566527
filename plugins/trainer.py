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
from compiler.fragments import name as identifier
from compiler.model import ResolvedConfig, buyer_id_column
from plugins.distribution import DISTRIBUTED_STEPS, distributed_shared, under_strategy_scope

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
def _training_callbacks(fn_args, train_dataset, eval_dataset, test_dataset, tf_transform_output):
    """The Keras callbacks of fit, in model.callbacks order (early stopping first). They get
    the splits: a callback may evaluate the model during training."""
    callbacks = []
    return callbacks
'''

#: model.eval_protocol new_products: the callbacks also get the buyers' train purchases.
TRAINING_CALLBACKS_NEW_PRODUCTS = '''
def _training_callbacks(
    fn_args, train_dataset, eval_dataset, test_dataset, tf_transform_output, purchases
):
    """The Keras callbacks of fit, in model.callbacks order (early stopping first). They get
    the splits and the train purchases: a callback may evaluate the model during training."""
    callbacks = []
    return callbacks
'''

#: model.eval_protocol new_products: each buyer's train products, built once from the train
#: split, which the ranking evaluators exclude.
PURCHASES = '''
BUYER_ID_KEY = {buyer_id_key}


def _train_purchases(dataset):
    """Each buyer's distinct products in ``dataset`` (the train split): a ragged table of
    product ids with one row per buyer id (its values and row splits), and one empty row more
    for buyer ids unseen in train."""
    buyers, products = [], []
    for batch in dataset:
        buyers.append(batch[BUYER_ID_KEY].numpy().reshape(-1))
        products.append(batch[PRODUCT_ID_KEY].numpy().reshape(-1))
    pairs = np.unique(np.stack([np.concatenate(buyers), np.concatenate(products)], axis=1), axis=0)
    per_buyer = np.bincount(pairs[:, 0], minlength=int(pairs[:, 0].max()) + 2)
    logger.info("Train purchases: %d (buyer, product) pairs to exclude", len(pairs))
    return {
        "buyer_id_key": BUYER_ID_KEY,
        "products": tf.constant(pairs[:, 1]),
        "row_splits": tf.constant(np.concatenate([[0], np.cumsum(per_buyer)]), tf.int64),
    }
'''

#: model.lr_schedule: the optimizer's schedule needs the number of steps per epoch.
STEPS_PER_EPOCH = '''
def _steps_per_epoch(dataset):
    """Batches per epoch: a cached dataset knows it; otherwise they are counted (one pass)."""
    steps = int(dataset.cardinality())
    if steps < 0:
        steps = int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
    return steps
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
    STRATEGY_STEP
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
    SHARDING_STEP
    PURCHASES_STEP

    model = RecommenderModel(tf_transform_output)
    model.compile(
        optimizer=_make_optimizer(MAKE_OPTIMIZER_ARGS),
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile=JIT_COMPILE,
    )
    # Create every variable (layers, optimizer slots) before fit: a tf.function whose first
    # trace creates variables is traced twice.
    model.compute_loss(next(iter(train_dataset)))
    model.optimizer.build(model.trainable_variables)
    callbacks = _training_callbacks(
        fn_args, train_dataset, eval_dataset, test_dataset, tf_transform_output CALLBACK_ARGS
    )
    CHIEF_CALLBACKS_STEP
    history = model.fit(
        train_dataset,
        validation_data=eval_dataset,
        epochs=epochs,
        callbacks=callbacks,
        verbose=2,
    )
    CHIEF_STEP
    metrics = _training_metrics(
        history.history, "found" if eval_files else "absent", "found" if test_files else "missing"
    )
    EVAL_PROTOCOL_STEP
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

    @classmethod
    def declare(cls, use: FragmentUse, config: ResolvedConfig) -> dict[str, tuple[str, ...]]:
        # new_products: the trainer builds the train purchases, keyed by the candidates' ids.
        new_products = use.params.get("eval_protocol") == "new_products"
        return {"provides": cls.provides + (("purchases",) if new_products else ()),
                "requires": cls.requires + (("candidates",) if new_products else ())
                + (("strategy",) if use.params.get("distribution") else ()),
                "slots": cls.slots, "fills": cls.fills}

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        for module, alias in (("json", None), ("logging", None), ("tensorflow", "tf"),
                              ("tensorflow_transform", "tft")):
            out.require_import(module, alias=alias)
        protocol = use.params.get("eval_protocol")
        new_products = protocol == "new_products"
        out.add(Section.CONSTANTS, statements(
            CONSTANTS, batch_size=use.params["batch_size"], epochs=use.params["epochs"],
            steps_per_execution=use.params.get("steps_per_execution", 1),
            jit_compile=use.params.get("jit_compile", False),
        ))
        if protocol is not None:  # a retrieval model: the ranking metrics' protocol
            out.add(Section.CONSTANTS, statements(EVAL_PROTOCOL, eval_protocol=protocol))
        out.require_import("tensorflow_recommenders", alias="tfrs")
        out.add(Section.HELPERS, statements(HELPERS))
        distributed = bool(use.params.get("distribution"))
        out.add_once("trainer-shared", Section.CONSTANTS, statements(
            distributed_shared(SHARED) if distributed else SHARED, seed=use.params["seed"]))
        if new_products:
            out.require_import("numpy", alias="np")
            out.add(Section.HELPERS, statements(
                PURCHASES, buyer_id_key=buyer_id_column(ctx.config.features)))
        if use.params.get("lr_schedule"):
            out.add(Section.HELPERS, statements(STEPS_PER_EPOCH))
        out.add(Section.HELPERS, statements(
            TRAINING_CALLBACKS_NEW_PRODUCTS if new_products else TRAINING_CALLBACKS))
        out.add(Section.ENTRY, statements(run_fn_template(
            new_products=new_products, lr_schedule=bool(use.params.get("lr_schedule")),
            eval_protocol=protocol is not None, distributed=distributed)))


EVAL_PROTOCOL = '''
#: Which test lines the ranking metrics score (model.eval_protocol).
EVAL_PROTOCOL = {eval_protocol}
'''


def run_fn_template(*, new_products: bool, lr_schedule: bool, eval_protocol: bool,
                    distributed: bool = False) -> str:
    """``RUN_FN`` with the lines the training knobs add (fixed code, never config text):
    the train purchases (new_products), the schedule's steps per epoch (lr_schedule), the
    protocol in training_metrics.json (a retrieval model) and the strategy (distributed)."""
    markers = {
        "    PURCHASES_STEP\n":
            "    purchases = _train_purchases(train_dataset)\n" if new_products else "",
        "MAKE_OPTIMIZER_ARGS": "_steps_per_epoch(train_dataset), epochs" if lr_schedule else "",
        " CALLBACK_ARGS": ", purchases" if new_products else "",
        "    EVAL_PROTOCOL_STEP\n":
            '    metrics["eval_protocol"] = EVAL_PROTOCOL\n' if eval_protocol else "",
        **{marker: code if distributed else "" for marker, code in DISTRIBUTED_STEPS.items()},
    }
    template = RUN_FN
    for marker, code in markers.items():
        template = template.replace(marker, code)
    return under_strategy_scope(template) if distributed else template


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


EARLY_STOPPING = '''
#: model.early_stopping: the validation metric watched, and how (Keras EarlyStopping).
EARLY_STOPPING_METRIC = {metric}
EARLY_STOPPING_MODE = {mode}
EARLY_STOPPING_PATIENCE = {patience}
EARLY_STOPPING_MIN_DELTA = {min_delta}
RESTORE_BEST_WEIGHTS = {restore_best_weights}


class ValidationMetric(tf.keras.callbacks.Callback):
    """Adds EARLY_STOPPING_METRIC, computed over the eval split with the current weights, to
    each epoch's logs, where Keras' EarlyStopping (next in the list) and the history read it:
    Recall@K over all candidates is no metric Keras computes itself."""

    def __init__(self, evaluate):
        super().__init__()
        self.evaluate = evaluate

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[EARLY_STOPPING_METRIC] = self.evaluate(self.model)


def _early_stopping(evaluate):
    """The callbacks of early stopping: the metric, then tf.keras.callbacks.EarlyStopping
    (patience and min_delta as Keras defines them; with restore_best_weights, Keras puts the
    best epoch's weights back when training ends, stopped early or not)."""
    return [
        ValidationMetric(evaluate),
        tf.keras.callbacks.EarlyStopping(
            monitor=EARLY_STOPPING_METRIC,
            mode=EARLY_STOPPING_MODE,
            patience=EARLY_STOPPING_PATIENCE,
            min_delta=EARLY_STOPPING_MIN_DELTA,
            restore_best_weights=RESTORE_BEST_WEIGHTS,
            verbose=1,
        ),
    ]
'''

#: A ranking metric: the candidates are embedded again with the current weights each epoch.
RANKING_METRIC = '''
def _validation_metric(model, splits, eval_dataset, tf_transform_output):
    """EARLY_STOPPING_METRIC with the current weights. The candidates are rebuilt from the
    splits and embedded again each epoch (one pass over the cached splits)."""
    candidates = _unique_candidates(model, splits, tf_transform_output)
    return {evaluate}(model, eval_dataset, candidates)[{key}]
'''

RANKING_METRIC_NEW_PRODUCTS = '''
def _validation_metric(model, splits, eval_dataset, tf_transform_output, purchases):
    """EARLY_STOPPING_METRIC with the current weights, without the buyers' train products
    (new_products). The candidates are rebuilt from the splits and embedded again each epoch
    (one pass over the cached splits)."""
    candidates = _unique_candidates(model, splits, tf_transform_output)
    return {evaluate}(model, eval_dataset, candidates, purchases)[{key}]
'''

REGRESSION_METRIC = '''
def _validation_metric(model, eval_dataset):
    """EARLY_STOPPING_METRIC with the current weights."""
    return _evaluate_regression(model, eval_dataset)[{key}]
'''

NO_EVAL_SPLIT = '''
if eval_dataset is None:
    raise ValueError(
        "model.early_stopping watches a validation metric, but this run has no eval split: "
        "split the data three ways or set model.early_stopping=null"
    )
'''

RANKING_CALLBACKS_STEP = '''
splits = [split for split in (train_dataset, eval_dataset, test_dataset) if split is not None]
callbacks.extend(
    _early_stopping(
        lambda model: _validation_metric(model, splits, eval_dataset, tf_transform_output)
    )
)
'''

RANKING_CALLBACKS_STEP_NEW_PRODUCTS = '''
splits = [split for split in (train_dataset, eval_dataset, test_dataset) if split is not None]
callbacks.extend(
    _early_stopping(
        lambda model: _validation_metric(
            model, splits, eval_dataset, tf_transform_output, purchases
        )
    )
)
'''

REGRESSION_CALLBACKS_STEP = '''
callbacks.extend(_early_stopping(lambda model: _validation_metric(model, eval_dataset)))
'''

#: After fit: what early stopping did, in training_metrics.json.
EARLY_STOPPING_STEP = '''
stopping = next(c for c in callbacks if isinstance(c, tf.keras.callbacks.EarlyStopping))
metrics["best_epoch"] = stopping.best_epoch + 1
metrics["epochs_trained"] = len(metrics["history"])
metrics["early_stopping"] = {
    "metric": EARLY_STOPPING_METRIC,
    "best": float(stopping.best),
    "restored_best_weights": RESTORE_BEST_WEIGHTS,
}
'''

#: The evaluator function behind each validation metric early stopping can watch.
METRIC_FUNCTIONS = {"val_recall_at_": "_evaluate_recall", "val_ndcg_at_": "_evaluate_ndcg",
                    "val_mrr": "_evaluate_mrr", "val_rmse": "_evaluate_regression",
                    "val_mae": "_evaluate_regression"}
#: Metrics that are errors: smaller is better.
MINIMISED = ("val_rmse", "val_mae")


class EarlyStoppingCallback(Fragment):
    """Early stopping on a validation metric computed at each epoch end, with best-weights
    restore: Keras ``tf.keras.callbacks.EarlyStopping`` semantics (``patience``,
    ``min_delta``, ``restore_best_weights``). Selected by ``model.early_stopping`` (or, with
    the default settings, by listing it in ``model.callbacks``); it comes first among the
    callbacks."""

    kind: ClassVar[str] = "callback"
    name: ClassVar[str] = "early_stopping"
    description: ClassVar[str] = "stop when a validation metric stops improving; restore best"
    # model.callbacks=[early_stopping, ...] selects it with the default settings.
    EXAMPLES: ClassVar[list[list[str]]] = [["model.callbacks=[early_stopping,tensorboard]"]]

    @classmethod
    def declare(cls, use: FragmentUse, config: ResolvedConfig) -> dict[str, tuple[str, ...]]:
        ranking = not str(use.params["metric"]).startswith(MINIMISED)
        new_products = ranking and use.params.get("eval_protocol") == "new_products"
        return {"fills": ("callbacks", "after_fit"),
                "requires": ("datasets", "metrics", *(("candidates",) if ranking else ()),
                             *(("purchases",) if new_products else ()))}

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        metric = str(use.params["metric"])
        function = next(f for prefix, f in METRIC_FUNCTIONS.items() if metric.startswith(prefix))
        ranking = metric not in MINIMISED
        new_products = ranking and use.params.get("eval_protocol") == "new_products"
        out.add(Section.HELPERS, statements(
            EARLY_STOPPING, metric=metric, mode="min" if metric in MINIMISED else "max",
            patience=int(use.params["patience"]), min_delta=float(use.params["min_delta"]),
            restore_best_weights=bool(use.params["restore_best_weights"]),
        ))
        if ranking:
            template = RANKING_METRIC_NEW_PRODUCTS if new_products else RANKING_METRIC
            step = RANKING_CALLBACKS_STEP_NEW_PRODUCTS if new_products \
                else RANKING_CALLBACKS_STEP
        else:
            template, step = REGRESSION_METRIC, REGRESSION_CALLBACKS_STEP
        out.add(Section.EVALUATION, statements(
            template, evaluate=identifier(function), key=metric.removeprefix("val_")))
        out.add_to_function(CALLBACKS_FUNCTION, statements(NO_EVAL_SPLIT + step))
        out.add_to_function("run_fn", statements(EARLY_STOPPING_STEP))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [RunFn, TensorBoardCallback, EarlyStoppingCallback]
