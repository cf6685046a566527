"""Input fragments: the one function that reads and batches examples (``_input_fn``)."""

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

TFRECORD_INPUT = '''
CACHE_DATASETS = {cache}  # keep each split's parsed batches in memory (model.performance)


def _input_fn(file_pattern, tf_transform_output, batch_size, shuffle=False):
    """Transformed examples as a dataset of feature dicts, batched here and only here.

    Every consumer (fit, evaluation, candidates) iterates these batches as they are; batching
    them again fails on the last, smaller batch ("Cannot batch tensors with different shapes").
    Records are read in parallel, shuffled once with a fixed seed (every epoch sees the same
    batches, cached or not), then parsed a whole batch at a time.
    """
    patterns = file_pattern if isinstance(file_pattern, (list, tuple)) else [file_pattern]
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    dataset = tf.data.TFRecordDataset(
        files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE
    )
    if shuffle:
        dataset = dataset.shuffle(10 * batch_size, seed=SEED, reshuffle_each_iteration=False)
    feature_spec = tf_transform_output.transformed_feature_spec()
    dataset = dataset.batch(batch_size).map(
        lambda records: tf.io.parse_example(records, feature_spec),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if CACHE_DATASETS:
        dataset = dataset.cache()
        # Counting the batches fills the cache (the first epoch's reading, done now) and gives
        # the dataset the known size that Keras needs for steps_per_execution > 1.
        batches = dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)
'''


#: ``model.reshuffle_each_epoch``: the same reading and parsing, but the training examples are
#: shuffled anew every epoch (seeded), cached or not.
TFRECORD_INPUT_RESHUFFLED = '''
CACHE_DATASETS = {cache}  # keep each split's parsed examples in memory (model.performance)


def _shuffled_each_epoch(batches, batch_size):
    """The examples of ``batches``, in a new seeded order every epoch, batched again.

    The split's parsed columns are kept in memory (the cache); each iteration of the dataset
    (each epoch) shuffles the row numbers (``tf.data.Dataset.shuffle`` with
    reshuffle_each_iteration=True) and gathers each batch's rows, one op per column.
    Shuffling row numbers rather than examples keeps the cache's speed, and the size stays
    known (range, shuffle and batch keep it), as Keras needs for steps_per_execution > 1.
    """
    parsed = list(batches)
    columns = {name: tf.concat([batch[name] for batch in parsed], axis=0) for name in parsed[0]}
    rows = int(tf.shape(next(iter(columns.values())))[0])
    order = tf.data.Dataset.range(rows).shuffle(rows, seed=SEED, reshuffle_each_iteration=True)
    # A batch's gathers are cheap: a parallel map would cost more than it saves.
    return order.batch(batch_size).map(
        lambda indices: {name: tf.gather(column, indices) for name, column in columns.items()}
    )


def _input_fn(file_pattern, tf_transform_output, batch_size, shuffle=False):
    """Transformed examples as a dataset of feature dicts, batched here and only here.

    Every consumer (fit, evaluation, candidates) iterates these batches as they are; batching
    them again fails on the last, smaller batch ("Cannot batch tensors with different shapes").
    Records are read in parallel and parsed a whole batch at a time. With ``shuffle``, every
    epoch sees the training examples in a new order (seeded), so in new batches with new
    in-batch negatives (model.reshuffle_each_epoch).
    """
    patterns = file_pattern if isinstance(file_pattern, (list, tuple)) else [file_pattern]
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    dataset = tf.data.TFRecordDataset(
        files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE
    )
    if shuffle and not CACHE_DATASETS:
        # Uncached, the records are read again every epoch: shuffle them anew each time.
        dataset = dataset.shuffle(10 * batch_size, seed=SEED, reshuffle_each_iteration=True)
    feature_spec = tf_transform_output.transformed_feature_spec()
    dataset = dataset.batch(batch_size).map(
        lambda records: tf.io.parse_example(records, feature_spec),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if not CACHE_DATASETS:
        return dataset.prefetch(tf.data.AUTOTUNE)
    if shuffle:
        return _shuffled_each_epoch(dataset, batch_size).prefetch(tf.data.AUTOTUNE)
    dataset = dataset.cache()
    # Counting the batches fills the cache (the first epoch's reading, done now) and gives
    # the dataset the known size that Keras needs for steps_per_execution > 1.
    batches = dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)
'''


class TFRecordInput(Fragment):
    kind: ClassVar[str] = "input"
    name: ClassVar[str] = "tfrecord"
    description: ClassVar[str] = "gzip TFRecords of transformed tf.Examples, batched once"
    EXAMPLES: ClassVar[list[list[str]]] = [
        [], ["model.reshuffle_each_epoch=true"],
        ["model.reshuffle_each_epoch=true", "model.performance.cache=false",
         "model.performance.steps_per_execution=1"],
    ]
    provides: ClassVar[tuple[str, ...]] = ("input_fn",)
    requires: ClassVar[tuple[str, ...]] = ("seed",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        template = TFRECORD_INPUT_RESHUFFLED if use.params.get("reshuffle_each_epoch") \
            else TFRECORD_INPUT
        out.add(Section.INPUT, statements(template, cache=use.params.get("cache", True)))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [TFRecordInput]
