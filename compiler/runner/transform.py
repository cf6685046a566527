"""Run a Transform module's ``preprocessing_fn`` with tf.Transform on Beam's DirectRunner.

The output follows TFX's Transform layout, so a trainer cannot tell it from a pipeline's::

    <output_dir>/transform_graph/                                    # tft.TFTransformOutput
    <output_dir>/transformed_examples/Split-<name>/transformed_examples-00000-of-00001.gz
    <output_dir>/recforge_transform.json     # the transform settings and digest (``record``)

Analysis runs on the ``train`` split only; every split (train included) is then transformed
with that one transform graph, as TFX does.

TensorFlow, tf.Transform and Beam are imported inside :func:`run_transform` only, so importing
this module stays cheap and TF-free.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.runner._modules import load_module_from_path
from compiler.runner._tf import import_tf
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
#: TFX's file name for a one-shard split.
_FILE_NAME = "transformed_examples-00000-of-00001.gz"

#: Rows per Arrow record batch fed to tf.Transform. Each batch is one call of the traced
#: transform graph, so larger batches mean less per-call overhead; 4096 keeps memory trivial.
_RECORD_BATCH_ROWS = 4096


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


def _write_arrow(path: str, schema: Any, batches: list[Any]) -> None:
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa

    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)


def _read_arrow(path: str) -> Any:
    """Yield the record batches of an Arrow IPC file (memory-mapped: no copy)."""
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.memory_map(path, "r"))
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i)


def run_transform(
    splits: Mapping[str, pd.DataFrame],
    raw_schema: Mapping[str, str],
    module_file: str | Path,
    output_dir: str,
    *,
    record: str | None = None,
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
            everything under it is written through tf.io.gfile. Beam's temporary files stay
            in a local temporary directory.
        record: the text of ``recforge_transform.json`` (the feature config's transform
            settings and their digest, see :mod:`compiler.runner.transform_digest`), written
            at the root of ``output_dir`` once the Transform succeeded.

    Returns:
        The written paths, row counts and the wall time.
    """
    if "train" not in splits:
        raise ValueError(f"splits must contain 'train'; got {sorted(splits)}")
    started = time.perf_counter()
    tf = import_tf()
    # lazy: Beam: the Transform runner only
    import apache_beam as beam
    import pyarrow as pa
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx_bsl.coders import example_coder
    from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

    module = load_module_from_path(module_file, prefix="recforge_transform_module")
    preprocessing_fn = getattr(module, "preprocessing_fn", None)
    if not callable(preprocessing_fn):
        raise AttributeError(f"{module_file} defines no preprocessing_fn")

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
    for directory in split_dirs.values():
        tf.io.gfile.makedirs(directory)

    # in_memory + one worker: for data this small, the multi-process / multi-thread runner
    # modes only add start-up and serialisation cost on a 2-core machine.
    # flags=[]: without it Beam parses the process's sys.argv (Hydra overrides such as
    # model=hybrid_v1) and warns "Unparseable argument" for each.
    options = PipelineOptions(
        flags=[], runner="DirectRunner", direct_running_mode="in_memory", direct_num_workers=1
    )
    with tempfile.TemporaryDirectory(prefix="recforge_tft_") as temp_dir:
        # Each split goes to a local Arrow IPC file and the pipeline carries only its path:
        # beam.Create(<the batches>) would pickle and bz2-compress all the data into the
        # pipeline proto (most of the run time for 100k+ rows).
        split_files = {}
        for name, frame in splits.items():
            split_files[name] = str(Path(temp_dir) / f"raw-{name}.arrow")
            batches = _to_record_batches(frame, raw_schema, arrow_schema)
            _write_arrow(split_files[name], arrow_schema, batches)
        with beam.Pipeline(options=options) as pipeline:
            # force_tf_compat_v1=False: trace preprocessing_fn as a TF2 tf.function, the
            # mode whose transform layer drops outputs whose inputs are not fed (serving).
            with tft_beam.Context(
                temp_dir=temp_dir,
                force_tf_compat_v1=False,
                desired_batch_size=_RECORD_BATCH_ROWS,
            ):
                inputs = {
                    name: (
                        pipeline
                        | f"Path[{name}]" >> beam.Create([path], reshuffle=False)
                        | f"Read[{name}]" >> beam.FlatMap(_read_arrow)
                    )
                    for name, path in split_files.items()
                }
                transform_fn = (
                    inputs["train"],
                    adapter_config,
                ) | "Analyze" >> tft_beam.AnalyzeDataset(preprocessing_fn)
                _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(transform_graph)
                for name, pcoll in inputs.items():
                    transformed, _metadata = (
                        (pcoll, adapter_config),
                        transform_fn,
                    ) | f"Transform[{name}]" >> tft_beam.TransformDataset(
                        output_record_batches=True
                    )
                    _ = (
                        transformed
                        # (record_batch, passthrough) pairs -> serialized tf.Examples,
                        # encoded in C++ per batch rather than one Python dict per row.
                        | f"Encode[{name}]"
                        >> beam.Map(lambda pair: example_coder.RecordBatchToExamples(pair[0]))
                        # One element for the whole split, written by one TFRecordWriter:
                        # Beam's WriteToTFRecord costs ~50 us of per-element overhead per row.
                        # The data is in memory already (it came from DataFrames).
                        | f"Gather[{name}]" >> beam.combiners.ToList()
                        | f"Write[{name}]"
                        >> beam.Map(_write_tfrecords, _join(split_dirs[name], _FILE_NAME))
                    )
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
