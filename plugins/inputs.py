"""Input fragments: the one function that reads and batches examples (``_input_fn``)."""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import BuildContext, Contributions, Fragment, Section, statements
from compiler.plan import FragmentUse

TFRECORD_INPUT = '''
def _gzip_reader(filenames):
    return tf.data.TFRecordDataset(
        filenames, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE
    )


def _input_fn(file_pattern, tf_transform_output, batch_size, shuffle=False):
    """Transformed examples as a dataset of feature dicts, batched here and only here.

    Every consumer (fit, evaluation, candidates) iterates these batches as they are; batching
    them again fails on the last, smaller batch ("Cannot batch tensors with different shapes").
    """
    return tf.data.experimental.make_batched_features_dataset(
        file_pattern=file_pattern,
        batch_size=batch_size,
        features=tf_transform_output.transformed_feature_spec(),
        reader=_gzip_reader,
        num_epochs=1,
        shuffle=shuffle,
        shuffle_buffer_size=10 * batch_size,
        shuffle_seed=SEED,
        prefetch_buffer_size=tf.data.AUTOTUNE,
        reader_num_threads=tf.data.AUTOTUNE,
        parser_num_threads=tf.data.AUTOTUNE,
    )
'''


class TFRecordInput(Fragment):
    kind: ClassVar[str] = "input"
    name: ClassVar[str] = "tfrecord"
    description: ClassVar[str] = "gzip TFRecords of transformed tf.Examples, batched once"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.INPUT, statements(TFRECORD_INPUT))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [TFRecordInput]
