"""Distribution fragments (``model.distribution``): the ``tf.distribute`` strategy ``run_fn``
trains under, and the helpers a strategy needs (who writes, how input is sharded, each
replica's share of the loss).

``none`` plans no fragment: the trainer is the one recforge always emitted. ``mirrored`` and
``multi_worker`` add ``_distribution_strategy()``; ``run_fn`` (plugins/trainer.py) then builds
and compiles the model under ``strategy.scope()``, trains on input sharded by data, and hands
the trained weights to a single-device copy on the chief for the candidates, evaluation and
export.
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

MIRRORED = '''
def _distribution_strategy():
    """tf.distribute.MirroredStrategy over this machine's devices (model.distribution)."""
    return tf.distribute.MirroredStrategy()
'''

MULTI_WORKER = '''
def _distribution_strategy():
    """tf.distribute.MultiWorkerMirroredStrategy (model.distribution): one process per
    worker, the cluster and this process's task read from TF_CONFIG."""
    return tf.distribute.MultiWorkerMirroredStrategy()
'''

HELPERS = '''
def _is_chief():
    """Whether this process writes the outputs: TF_CONFIG's task is the chief, or worker 0 of
    a cluster without a chief (tf.distribute's multi-worker convention); without TF_CONFIG
    (one process), it is."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    if task.get("type") in (None, "chief"):
        return True
    return (
        task["type"] == "worker"
        and int(task.get("index", 0)) == 0
        and "chief" not in tf_config.get("cluster", {})
    )


def _replica_shares(strategy, dataset):
    """``dataset`` (global batches) as the strategy's distributed input, sharded by data: every
    worker reads all files and replica j of R trains on rows j, j + R, ... of each global
    batch (tf.distribute.Strategy.distribute_datasets_from_function; each input pipeline
    yields its replicas' shares in turn, pass after pass). All replicas thus run the same
    number of steps, and their shares of a step make up the one-device batch. tf.data's own
    auto-sharding cannot rewrite a dataset whose cache is already filled in memory."""
    replicas = strategy.num_replicas_in_sync

    def pipeline(context):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        shares = dataset.flat_map(
            lambda batch: tf.data.Dataset.range(first, first + local).map(
                lambda share: {key: value[share::replicas] for key, value in batch.items()}
            )
        )
        # Keras keeps one iterator over a distributed input across epochs and stops each
        # epoch after steps_per_epoch: the passes follow one another as the epochs do.
        return shares.repeat()

    return strategy.distribute_datasets_from_function(pipeline)


def _global_batches(dataset):
    """Global batches per pass over ``dataset`` (Keras needs the steps of a distributed
    input): a cached dataset knows them; otherwise they are counted (one pass)."""
    batches = int(dataset.cardinality())
    if batches < 0:
        batches = int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
    return batches


class ReplicaShareLoss:
    """A Keras loss as one replica's share of the global batch's loss: the optimizer sums the
    replicas' gradients, so the shares must add up to the one-device loss of the global batch.
    A SUM-reduced loss is the replica's sum; a mean-reduced one (AUTO, SUM_OVER_BATCH_SIZE) is
    the replica's sum over the global batch size (the replica's size times the number of
    replicas: tf.nn.compute_average_loss, as Keras' own compiled losses scale them; that
    function itself refuses the cross-replica call that creates the variables). Keras raises
    when a mean-reduced loss is called inside a
    strategy outside compile, as the TFRS tasks call theirs; this calls its per-example form.
    The TFRS Retrieval task's negatives are the whole global batch's products
    (``_all_replica_rows``); the score-matrix loss (``InBatchSoftmax``) keeps the replica's own.
    """

    def __init__(self, loss):
        self.summed = loss.reduction == tf.keras.losses.Reduction.SUM
        self.per_example = loss.__class__.from_config(
            {**loss.get_config(), "reduction": tf.keras.losses.Reduction.NONE}
        )

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = self.per_example(y_true, y_pred, sample_weight)
        if self.summed:
            return tf.reduce_sum(losses)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # divide_no_nan: a replica's share of a short last batch may hold no examples.
        return tf.math.divide_no_nan(
            tf.reduce_sum(losses), tf.cast(tf.size(losses) * replicas, losses.dtype)
        )


def _all_replica_rows(embeddings):
    """The rows of every replica's share of the global batch (ReplicaContext.all_gather, whose
    gradient reaches each replica's own rows), this replica's first: the TFRS Retrieval task
    then scores each buyer against all the batch's products, as on one device, and its labels
    (the diagonal) still mark the buyer's own product. Outside a replica, the rows as given."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return embeddings
    sizes = context.all_gather(tf.shape(embeddings)[:1], axis=0)
    gathered = context.all_gather(embeddings, axis=0)
    return tf.roll(gathered, -tf.reduce_sum(sizes[: context.replica_id_in_sync_group]), axis=0)


def _single_device_copy(weights, tf_transform_output, batch):
    """A model built outside the strategy holding the trained ``weights``. The candidates, the
    evaluation and the export run on it, on the chief alone: a MultiWorkerMirroredStrategy
    model's every call would wait for the other workers' collectives."""
    model = RecommenderModel(tf_transform_output)
    model.compute_loss(batch)  # creates the variables, in the trained model's order
    model.set_weights(weights)
    return model
'''


#: model.distribution: what MeanLossModel (plugins/trainer.py) says and does under a
#: tf.distribute strategy, in place of its default docstring and train / test steps (TFRS's own).
MEAN_LOSS_DOCSTRING_DISTRIBUTED = '''\
    """A TFRS model that reports each epoch's mean losses (TFRS reports the last batch's),
    trained under a tf.distribute strategy. Its train step is TFRS's (tfrs.models.Model) with
    each replica's share of the loss: the task losses are shares already (ReplicaShareLoss)
    and the regularization loss is divided by the number of replicas
    (tf.nn.scale_regularization_loss), so the gradients the optimizer sums over the replicas
    are those of the global batch."""'''

MEAN_LOSS_STEPS_DISTRIBUTED = '''\
    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            losses = self._replica_losses(inputs, training=True)
        gradients = tape.gradient(losses[-1], self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._mean_losses(losses)

    def test_step(self, inputs):
        return self._mean_losses(self._replica_losses(inputs, training=False))

    def _replica_losses(self, inputs, training):
        """(loss, regularization_loss, total_loss): this replica's shares."""
        loss = self.compute_loss(inputs, training=training)
        regularization_loss = tf.nn.scale_regularization_loss(
            tf.reduce_sum([tf.reduce_sum(term) for term in self.losses])
        )
        return loss, regularization_loss, loss + regularization_loss

    def _mean_losses(self, losses):
        # The shares summed over all replicas are the global batch's losses, the same on
        # every worker (Keras would log each worker's own metrics).
        context = tf.distribute.get_replica_context()
        for mean, share in zip(self.loss_means, losses):
            mean.update_state(context.all_reduce(tf.distribute.ReduceOp.SUM, share))
        return {metric.name: metric.result() for metric in self.metrics}
'''

def distributed_shared(shared: str) -> str:
    """``shared`` (plugins/trainer.py's ``SHARED``, which defines MeanLossModel) with the
    class's one-line docstring and its train / test steps (TFRS's own, to the end) replaced
    by their forms under a strategy."""
    docstring_start = shared.index('    """A TFRS model')
    docstring = shared[docstring_start : shared.index("\n", docstring_start)]
    steps = shared[shared.index("    def train_step(self, inputs):") :]
    return shared.replace(docstring, MEAN_LOSS_DOCSTRING_DISTRIBUTED).replace(
        steps, MEAN_LOSS_STEPS_DISTRIBUTED
    )


#: model.distribution: the steps run_fn adds with a strategy (fixed code).
DISTRIBUTED_STEPS = {
    "    STRATEGY_STEP\n": (
        "    # First of all: MultiWorkerMirroredStrategy sets up TensorFlow's collectives, which\n"
        "    # must happen before any other operation.\n"
        "    strategy = _distribution_strategy()\n"
    ),
    "    SHARDING_STEP\n": (
        "    # batch_size stays the global batch: each replica trains on its share of each one.\n"
        "    train_shares = _replica_shares(strategy, train_dataset)\n"
        "    eval_shares = _replica_shares(strategy, eval_dataset) if eval_dataset else None\n"
    ),
    "    CHIEF_CALLBACKS_STEP\n": (
        "    if not _is_chief():  # only the chief writes TensorBoard logs\n"
        "        callbacks = [\n"
        "            callback\n"
        "            for callback in callbacks\n"
        "            if not isinstance(callback, tf.keras.callbacks.TensorBoard)\n"
        "        ]\n"
    ),
    "    CHIEF_STEP\n": (
        "    # On every worker: reading the metrics' variables is a collective of all of them.\n"
        "    weights = model.get_weights()\n"
        "    if not _is_chief():  # the chief evaluates and writes every output\n"
        "        return None\n"
        "    model = _single_device_copy(weights, tf_transform_output, next(iter(train_dataset)))\n"
    ),
}

#: The lines that build the model: under the strategy's scope with model.distribution.
BUILD_MODEL_START = "    model = RecommenderModel(tf_transform_output)\n"
BUILD_MODEL_END = "    model.optimizer.build(model.trainable_variables)\n"


def under_strategy_scope(template: str) -> str:
    """``template`` with the model's construction, compile and variable creation indented
    under ``with strategy.scope():``."""
    start = template.index(BUILD_MODEL_START)
    end = template.index(BUILD_MODEL_END) + len(BUILD_MODEL_END)
    block = "".join("    " + line if line.strip() else line
                    for line in template[start:end].splitlines(keepends=True))
    # In a replica, as fit calls it: the metrics the task updates accept no cross-replica call.
    block = block.replace("model.compute_loss(next(iter(train_dataset)))",
                          "strategy.run(model.compute_loss, args=(next(iter(train_dataset)),))")
    indent = " " * 12
    block = block.replace(
        f"{indent}steps_per_execution=STEPS_PER_EXECUTION,\n",
        f"{indent}# One step per call: with several, the workers of a MultiWorkerMirroredStrategy\n"
        f"{indent}# fell out of step (a collective's shapes differed between them; measured).\n"
        f"{indent}steps_per_execution=1,\n")
    template = template[:start] + "    with strategy.scope():\n" + block + template[end:]
    return template.replace("        train_dataset,\n        validation_data=eval_dataset,\n",
                            "        train_shares,\n        validation_data=eval_shares,\n"
                            "        steps_per_epoch=_global_batches(train_dataset),\n"
                            "        validation_steps=_global_batches(eval_dataset) if eval_dataset"
                            " else None,\n")


class _Distribution(Fragment):
    kind: ClassVar[str] = "distribution"
    provides: ClassVar[tuple[str, ...]] = ("strategy",)
    requires: ClassVar[tuple[str, ...]] = ("RecommenderModel",)
    strategy_code: ClassVar[str]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        for module, alias in (("json", None), ("os", None), ("tensorflow", "tf")):
            out.require_import(module, alias=alias)
        out.add(Section.HELPERS, statements(self.strategy_code + HELPERS))


class Mirrored(_Distribution):
    """Synchronous training on every device of one machine:
    ``tf.distribute.MirroredStrategy`` (TensorFlow's distributed-training guide)."""

    name: ClassVar[str] = "mirrored"
    description: ClassVar[str] = "tf.distribute.MirroredStrategy: every device of one machine"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.distribution=mirrored"]]
    strategy_code: ClassVar[str] = MIRRORED


class MultiWorker(_Distribution):
    """Synchronous training over several machines, the cluster from ``TF_CONFIG``:
    ``tf.distribute.MultiWorkerMirroredStrategy`` (TensorFlow's multi-worker training with
    Keras tutorial)."""

    name: ClassVar[str] = "multi_worker"
    description: ClassVar[str] = "tf.distribute.MultiWorkerMirroredStrategy from TF_CONFIG"
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.distribution=multi_worker"],
        ["model=retrieval_v1", "model.distribution=multi_worker"],
    ]
    strategy_code: ClassVar[str] = MULTI_WORKER


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [Mirrored, MultiWorker]
