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


class TFRecordInput(Fragment):
    kind: ClassVar[str] = "input"
    name: ClassVar[str] = "tfrecord"
    description: ClassVar[str] = "gzip TFRecords of transformed tf.Examples, batched once"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    provides: ClassVar[tuple[str, ...]] = ("input_fn",)
    requires: ClassVar[tuple[str, ...]] = ("seed",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.INPUT, statements(TFRECORD_INPUT, cache=use.params.get("cache", True)))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [TFRecordInput]
