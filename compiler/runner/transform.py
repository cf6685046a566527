"""Run a Transform module's ``preprocessing_fn`` with tf.Transform on a Beam runner.

The output follows TFX's Transform layout, so a trainer cannot tell it from a pipeline's::

    <output_dir>/transform_graph/                                    # tft.TFTransformOutput
    <output_dir>/transformed_examples/Split-<name>/transformed_examples-*.gz
    <output_dir>/product_table/product_table-*.gz   # one example per product (product_table)
    <output_dir>/recforge_transform.json     # the transform settings and digest (``record``)

Analysis runs on the ``train`` split only; every split (train included) is then transformed
with that one transform graph, as TFX does.

Two ways through the pipeline, chosen by where the runner's workers run:

- the DirectRunner in memory (the default): workers share this process, so each split is one
  memory-mapped Arrow file in a local temporary directory and is written by one
  ``TFRecordWriter`` after gathering it (Beam's per-element write costs ~50 us a row);
- any other runner or mode (``--direct_running_mode=multi_processing``, Dataflow): workers
  are other processes or machines. The raw splits are staged as several Arrow files where
  they can read them (a local temporary directory for the DirectRunner, the pipeline's
  ``--temp_location``, ``gs://``, for Dataflow) and written with Beam's sharded
  ``WriteToTFRecord``, so no element ever holds a whole split.

TensorFlow, tf.Transform and Beam are imported inside :func:`run_transform` only, so importing
this module stays cheap and TF-free.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.runner._modules import load_module_from_path
from compiler.runner._tf import import_tf
from compiler.runner.beam_options import (
    DATAFLOW_RUNNER,
    DIRECT_RUNNER,
    runs_in_this_process,
    temp_location,
)
from compiler.runner.beam_options import pipeline_options as build_pipeline_options
from compiler.runner.lean_beam import lean_pipeline_construction, skip_construction_type_check
from compiler.runner.product_table import (
    PRODUCT_TABLE_DIR,
    PRODUCT_TABLE_PREFIX,
    merge_tables,
    per_product_tables,
    serialized_examples,
)
from compiler.runner.transform_digest import DIGEST_FILE

if TYPE_CHECKING:
    import pandas as pd

#: raw_schema type names and the tf.Example dtype each one means.
RAW_TYPES = ("string", "int", "float")

TRANSFORM_GRAPH_DIR = "transform_graph"
TRANSFORMED_EXAMPLES_DIR = "transformed_examples"
#: tft.TFTransformOutput.RAW_METADATA_DIR, spelled out so that importing stays TF-free.
RAW_METADATA_DIR = "metadata"
#: TFX writes every split under this prefix; trainers glob ``Split-<name>/*.gz``.
SPLIT_PREFIX = "Split-"
#: TFX's file name prefix of a split's shards, and the name of a one-shard split.
_FILE_PREFIX = "transformed_examples"

#: Rows per Arrow record batch fed to tf.Transform. Each batch is one call of the traced
#: transform graph, so larger batches mean less per-call overhead; 4096 keeps memory trivial.
_RECORD_BATCH_ROWS = 4096
#: Rows per staged Arrow file when workers are other processes: each file is one element a
#: worker reads, so a split spreads over workers file by file.
_STAGED_FILE_ROWS = 16 * _RECORD_BATCH_ROWS


@dataclass(frozen=True)
class TransformArtifacts:
    """Where :func:`run_transform` wrote its outputs (paths as strings: they may be URIs)."""

    root: str
    transform_graph: str
    transformed_examples: str
    #: split name -> directory ``.../transformed_examples/Split-<name>``
    split_dirs: dict[str, str] = field(default_factory=dict)
    #: split name -> rows read from the input DataFrame
    rows: dict[str, int] = field(default_factory=dict)
    #: ``<root>/product_table``, or None when no product columns were given
    product_table: str | None = None
    wall_seconds: float = 0.0

    def file_pattern(self, split: str) -> str:
        """The gzip TFRecord pattern of one split (what ``fn_args.train_files`` holds)."""
        return f"{self.split_dirs[split]}/*.gz"


def _join(base: str, *parts: str) -> str:
    # Plain string joining: output_dir may be a gs:// URI, which os.path would mangle.
    return "/".join([base.rstrip("/"), *parts])


def _raw_feature_spec(raw_schema: Mapping[str, str]) -> dict[str, Any]:
    tf = import_tf()
    dtypes = {"string": tf.string, "int": tf.int64, "float": tf.float32}
    spec = {}
    for name, kind in raw_schema.items():
        if kind not in dtypes:
            raise ValueError(f"raw_schema[{name!r}] = {kind!r}; expected one of {RAW_TYPES}")
        # Scalar, required features: what TFX's SchemaGen infers (infer_feature_shape=True)
        # for columns present once in every row.
        spec[name] = tf.io.FixedLenFeature([], dtypes[kind])
    return spec


def _to_record_batches(
    frame: pd.DataFrame, raw_schema: Mapping[str, str], arrow_schema: Any
) -> list[Any]:
    """Convert a DataFrame into Arrow record batches in TFXIO's layout (one value per list)."""
    # lazy: NumPy: data hashing and metrics of a run only
    import numpy as np
    import pyarrow as pa

    missing = [c for c in raw_schema if c not in frame.columns]
    if missing:
        raise ValueError(f"split is missing raw columns {missing}")
    batches = []
    for start in range(0, len(frame), _RECORD_BATCH_ROWS):
        chunk = frame.iloc[start : start + _RECORD_BATCH_ROWS]
        n = len(chunk)
        offsets = pa.array(np.arange(n + 1, dtype=np.int64))
        arrays = []
        for name in arrow_schema.names:
            kind = raw_schema[name]
            column = chunk[name]
            if column.isna().any():
                # The features are declared required; a silent default would hide bad data.
                raise ValueError(f"column {name!r} has missing values")
            if kind == "string":
                values = pa.array(column.astype(str).tolist(), type=pa.large_binary())
            elif kind == "int":
                values = pa.array(column.to_numpy(dtype=np.int64))
            else:
                values = pa.array(column.to_numpy(dtype=np.float32))
            arrays.append(pa.LargeListArray.from_arrays(offsets, values))
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=arrow_schema))
    return batches


def _write_tfrecords(chunks: list[list[bytes]], path: str) -> None:
    """Write serialized examples to one gzip TFRecord file (local or a URI)."""
    tf = import_tf()
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for chunk in chunks:
            for record in chunk:
                writer.write(record)


def _write_examples(chunks: Any, label: str, directory: str, prefix: str,
                    in_process: bool) -> None:
    """Beam: write ``chunks`` (a PCollection of lists of serialized tf.Examples) as gzip
    TFRecords ``<directory>/<prefix>-*.gz``. In this process, one element gathers them all for
    one ``TFRecordWriter`` (``WriteToTFRecord`` costs ~50 us per row, and the data is in this
    process's memory already); with other workers, Beam's sharded writer, so that no element
    ever holds a whole split."""
    # lazy: Beam: the Transform runner only
    import apache_beam as beam
    from apache_beam.io.filesystem import CompressionTypes

    if in_process:
        _ = (chunks
             | f"Gather{label}" >> beam.combiners.ToList()
             | f"Write{label}" >> beam.Map(_write_tfrecords,
                                           _join(directory, f"{prefix}-00000-of-00001.gz")))
    else:
        _ = (chunks
             | f"Flatten{label}" >> beam.FlatMap(lambda records: records)
             | f"Write{label}" >> beam.io.WriteToTFRecord(
                 _join(directory, prefix), file_name_suffix=".gz",
                 compression_type=CompressionTypes.GZIP))


def _write_arrow(path: str, schema: Any, batches: list[Any]) -> None:
    """Write record batches to an Arrow IPC file: a local path, or a URI through Beam's
    FileSystems (``gs://``: what Dataflow workers can read)."""
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa

    if "://" not in path:
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return
    # lazy: Beam: the Transform runner only
    from apache_beam.io.filesystems import FileSystems

    buffer = pa.BufferOutputStream()
    with pa.ipc.new_file(buffer, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    with FileSystems.create(path) as handle:
        handle.write(buffer.getvalue().to_pybytes())


def _read_arrow(path: str) -> Any:
    """Yield the record batches of an Arrow IPC file (a local one memory-mapped: no copy)."""
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa

    if "://" in path:
        # lazy: Beam: the Transform runner only
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(path) as handle:
            source = pa.py_buffer(handle.read())
    else:
        source = pa.memory_map(path, "r")
    reader = pa.ipc.open_file(source)
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i)


def _stage_splits(splits: Mapping[str, pd.DataFrame], raw_schema: Mapping[str, str],
                  arrow_schema: Any, directory: str, rows_per_file: int | None
                  ) -> dict[str, list[str]]:
    """Write each split's raw Arrow files under ``directory``: one file per split, or files
    of ``rows_per_file`` rows. Split name -> file paths."""
    per_file = (rows_per_file or 1) // _RECORD_BATCH_ROWS
    staged: dict[str, list[str]] = {}
    for name, frame in splits.items():
        batches = _to_record_batches(frame, raw_schema, arrow_schema)
        groups = [batches] if rows_per_file is None else \
            [batches[i:i + per_file] for i in range(0, len(batches), per_file)] or [[]]
        staged[name] = []
        for index, group in enumerate(groups):
            path = _join(directory, f"raw-{name}-{index:05d}.arrow")
            _write_arrow(path, arrow_schema, group)
            staged[name].append(path)
    return staged


def run_transform(
    splits: Mapping[str, pd.DataFrame],
    raw_schema: Mapping[str, str],
    module_file: str | Path,
    output_dir: str,
    *,
    record: str | None = None,
    runner: str = DIRECT_RUNNER,
    pipeline_options: Sequence[str] = (),
    product_columns: Sequence[str] = (),
    lean_construction: bool = True,
) -> TransformArtifacts:
    """Analyze ``splits["train"]`` and transform every split with ``module_file``'s
    ``preprocessing_fn``, writing TFX-layout artifacts under ``output_dir``.

    Args:
        splits: split name (``train``, ``eval``, ``test`` ...) -> DataFrame of raw columns.
            ``train`` is required.
        raw_schema: raw column -> ``"string"`` | ``"int"`` | ``"float"``. Only these columns
            are read; each is a required scalar feature.
        module_file: path of a Transform module defining ``preprocessing_fn(inputs)``.
        output_dir: local directory or any URI tf.io.gfile can write (``gs://``, ``ram://``):
            everything under it is written through tf.io.gfile or Beam's FileSystems. With
            ``DataflowRunner`` it must be ``gs://`` (the workers write it).
        record: the text of ``recforge_transform.json`` (the feature config's transform
            settings and their digest, see :mod:`compiler.runner.transform_digest`), written
            at the root of ``output_dir`` once the Transform succeeded.
        runner: the Beam runner (``compiler.runner.beam_options.RUNNERS``).
        pipeline_options: Beam flags (``"--name=value"``) passed straight to
            ``PipelineOptions``; unset DirectRunner options default to in memory, one worker.
        product_columns: the transformed product columns, the product id column first
            (``compiler.runner.product_table.product_columns``). Given, the per-product table
            is written under ``<output_dir>/product_table``; empty, it is not.
        lean_construction: memoize Beam's per-transform bookkeeping while the pipeline is
            built and run, and skip its construction-time type check
            (:mod:`compiler.runner.lean_beam`); False runs Beam untouched, the reference the
            tests compare the output against.

    Returns:
        The written paths, row counts and the wall time.
    """
    if "train" not in splits:
        raise ValueError(f"splits must contain 'train'; got {sorted(splits)}")
    if runner == DATAFLOW_RUNNER and not output_dir.startswith("gs://"):
        raise ValueError(f"DataflowRunner writes through its workers: output_dir must be "
                         f"gs://, got {output_dir}")
    started = time.perf_counter()
    options = build_pipeline_options(runner, pipeline_options)
    in_process = runs_in_this_process(options)
    if lean_construction:
        skip_construction_type_check(options)
    tf = import_tf()
    # lazy: Beam: the Transform runner only
    import apache_beam as beam
    import pyarrow as pa
    import tensorflow_transform.beam as tft_beam
    from apache_beam.io.filesystems import FileSystems
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx_bsl.coders import example_coder
    from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

    module = load_module_from_path(module_file, prefix="recforge_transform_module")
    preprocessing_fn = getattr(module, "preprocessing_fn", None)
    if not callable(preprocessing_fn):
        raise AttributeError(f"{module_file} defines no preprocessing_fn")
    if not in_process:
        # lazy: Beam: the Transform runner only
        from apache_beam.internal.cloudpickle import cloudpickle

        # Workers in other processes cannot import the module by its generated name, so
        # Beam's pickler (cloudpickle) ships its functions by value instead of by reference.
        cloudpickle.register_pickle_by_value(module)

    feature_spec = _raw_feature_spec(raw_schema)
    schema = schema_utils.schema_from_feature_spec(feature_spec)
    arrow_types = {"string": pa.large_binary(), "int": pa.int64(), "float": pa.float32()}
    arrow_schema = pa.schema(
        [
            pa.field(name, pa.large_list(arrow_types[raw_schema[name]]))
            for name in sorted(raw_schema)
        ]
    )
    adapter_config = tensor_adapter.TensorAdapterConfig(
        arrow_schema, tensor_representation_util.InferTensorRepresentationsFromSchema(schema)
    )

    root = output_dir.rstrip("/")
    transform_graph = _join(root, TRANSFORM_GRAPH_DIR)
    examples_root = _join(root, TRANSFORMED_EXAMPLES_DIR)
    split_dirs = {name: _join(examples_root, SPLIT_PREFIX + name) for name in splits}
    product_table = _join(root, PRODUCT_TABLE_DIR) if product_columns else None
    for directory in [*split_dirs.values(), *([product_table] if product_table else [])]:
        tf.io.gfile.makedirs(directory)

    with tempfile.TemporaryDirectory(prefix="recforge_tft_") as local_temp:
        # Dataflow workers read the staged splits and tf.Transform's temporary files from the
        # pipeline's gs:// temp_location; DirectRunner workers (threads or local processes)
        # from this machine's temporary directory.
        remote_temp = temp_location(options) if runner == DATAFLOW_RUNNER else None
        temp_dir = _join(remote_temp, f"recforge_tft_{uuid.uuid4().hex}") if remote_temp \
            else local_temp
        # The pipeline carries only the staged files' paths: beam.Create(<the batches>) would
        # pickle and bz2-compress all the data into the pipeline proto (most of the run time
        # for 100k+ rows).
        split_files = _stage_splits(splits, raw_schema, arrow_schema, temp_dir,
                                    None if in_process else _STAGED_FILE_ROWS)
        try:
            with lean_pipeline_construction(lean_construction), \
                    beam.Pipeline(options=options) as pipeline:
                # force_tf_compat_v1=False: trace preprocessing_fn as a TF2 tf.function, the
                # mode whose transform layer drops outputs whose inputs are not fed (serving).
                with tft_beam.Context(
                    temp_dir=_join(temp_dir, "tft"),
                    force_tf_compat_v1=False,
                    desired_batch_size=_RECORD_BATCH_ROWS,
                ):
                    inputs = {
                        name: (
                            pipeline
                            # reshuffle: spread the staged files over the workers.
                            | f"Path[{name}]" >> beam.Create(paths, reshuffle=not in_process)
                            | f"Read[{name}]" >> beam.FlatMap(_read_arrow)
                        )
                        for name, paths in split_files.items()
                    }
                    transform_fn = (
                        inputs["train"],
                        adapter_config,
                    ) | "Analyze" >> tft_beam.AnalyzeDataset(preprocessing_fn)
                    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(
                        transform_graph)
                    transformed_splits = []
                    for name, pcoll in inputs.items():
                        transformed, _metadata = (
                            (pcoll, adapter_config),
                            transform_fn,
                        ) | f"Transform[{name}]" >> tft_beam.TransformDataset(
                            output_record_batches=True
                        )
                        transformed_splits.append(transformed)
                        # (record_batch, passthrough) pairs -> serialized tf.Examples, encoded
                        # in C++ per batch rather than one Python dict per row.
                        encoded = transformed | f"Encode[{name}]" >> beam.Map(
                            lambda pair: example_coder.RecordBatchToExamples(pair[0]))
                        _write_examples(encoded, f"[{name}]", split_dirs[name], _FILE_PREFIX,
                                        in_process)
                    if product_table is not None:
                        shards = per_product_tables(transformed_splits, product_columns)
                        if in_process:  # one id-ordered file: the shards merged once more
                            shards = (shards
                                      | "GatherProducts" >> beam.combiners.ToList()
                                      | "MergeShards" >> beam.Map(merge_tables))
                        examples = shards | "ProductExamples" >> beam.Map(serialized_examples)
                        _write_examples(examples, "[products]", product_table,
                                        PRODUCT_TABLE_PREFIX, in_process)
        finally:
            if remote_temp:
                # (a trailing slash: GCS deletes everything under the prefix)
                FileSystems.delete([temp_dir + "/"])
    # TFX's Transform executor also writes the *raw* schema beside transform_fn; trainers need
    # it (TFTransformOutput.raw_feature_spec()) to parse raw tf.Examples at serving time.
    # WriteTransformFn cannot, because it only sees the Arrow adapter config.
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema), _join(transform_graph, RAW_METADATA_DIR)
    )
    if record is not None:
        with tf.io.gfile.GFile(_join(root, DIGEST_FILE), "w") as handle:
            handle.write(record)
    return TransformArtifacts(
        root=root,
        transform_graph=transform_graph,
        transformed_examples=examples_root,
        split_dirs=split_dirs,
        product_table=product_table,
        rows={name: len(frame) for name, frame in splits.items()},
        wall_seconds=time.perf_counter() - started,
    )


__all__ = [
    "RAW_TYPES",
    "SPLIT_PREFIX",
    "TRANSFORMED_EXAMPLES_DIR",
    "TRANSFORM_GRAPH_DIR",
    "TransformArtifacts",
    "run_transform",
]
