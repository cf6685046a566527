"""double-batching: a dataset batched again after it is already batched."""

from __future__ import annotations

from typing import Any, ClassVar

import libcst as cst

from compiler.passes import Severity, SourceFile
from compiler.passes.dataflow import UNKNOWN, CallInfo, DataflowPass, Fact, TupleV
from compiler.passes.source import dotted_name

# Methods that batch the elements of a tf.data.Dataset.
_BATCHING = frozenset({"batch", "padded_batch", "ragged_batch", "sparse_batch"})
# Methods whose result has the receiver's batching (they keep the element structure).
_PRESERVING = frozenset(
    {
        "shuffle", "map", "prefetch", "cache", "repeat", "filter", "take", "skip", "shard",
        "with_options", "enumerate", "concatenate", "take_while", "ignore_errors", "unique",
        "assert_cardinality", "map_with_legacy_function", "filter_with_legacy_function",
        "snapshot", "rebatch",  # rebatch re-splits existing batches: not a second batching
    }
)
# tf.data.experimental transformations used through Dataset.apply(...).
_APPLY_BATCHING = frozenset(
    {
        "dense_to_ragged_batch", "dense_to_sparse_batch", "padded_batch", "map_and_batch",
        "batch_and_drop_remainder", "bucket_by_sequence_length",
    }
)
# Readers that return batched datasets.
_BATCHED_SOURCES = frozenset(
    {"make_batched_features_dataset", "make_csv_dataset", "make_batched_features_dataset_v2"}
)
_KERAS_BATCHED_SOURCES = frozenset(
    {
        "image_dataset_from_directory", "text_dataset_from_directory",
        "timeseries_dataset_from_array", "audio_dataset_from_directory",
    }
)
_DATASET_SOURCES = frozenset(
    {
        "from_tensor_slices", "from_tensors", "range", "from_generator", "list_files", "load",
        "sample_from_datasets", "choose_from_datasets", "TFRecordDataset", "TextLineDataset",
        "FixedLengthRecordDataset", "CsvDataset", "counter",
    }
)


class DoubleBatching(DataflowPass):
    """A dataset that is already batched is batched again.

    Batching a batched dataset adds a second batch dimension: shapes become
    ``[outer, inner, ...]``, the last short batch no longer stacks ("Cannot batch tensors with
    different shapes"), and a TFRS index built from it gets rank-3 candidates
    (tensorflow/recommenders#237). The platform's multitask trainer failed this way: its
    ``_input_fn`` already batched with ``BATCH_SIZE=1024`` and
    ``_precompute_candidate_embeddings`` called ``.batch(128)`` on the result.

    "Batched" comes from ``.batch()``/``.padded_batch()``/``.ragged_batch()``,
    ``make_batched_features_dataset``/``make_csv_dataset``, ``tf_dataset_factory(...,
    TensorFlowDatasetOptions(batch_size=...))``, TFXIO's ``TensorFlowDataset(options)``, Keras'
    ``*_dataset_from_directory`` and any function of the module that returns such a value. The
    fact follows variables, method chains (``shuffle``, ``map``, ``prefetch``, ``cache``,
    ``repeat``, ``filter`` ...), return values and arguments into parameters. ``.unbatch()``
    resets it, ``.rebatch()`` is not a second batching, and a value is batched after an ``if``
    only when it is batched on every branch. Passing a batched dataset to Keras
    ``fit``/``evaluate``/``predict`` together with ``batch_size=`` is reported too. Objects that
    merely have a ``batch`` method (a storage client's ``batch()``) are not datasets.
    """

    name: ClassVar[str] = "double-batching"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = "dataset is batched again after it was already batched"
    HAZARD: ClassVar[str] = "A dataset already batched is .batch()ed or .padded_batch()ed again"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf


def candidates(ds):
    # unbatch() first: the ids are re-batched exactly once.
    return ds.unbatch().map(lambda x: x["product_id"]).batch(128)


def make(files, training):
    ds = tf.data.TFRecordDataset(files).map(tf.io.parse_tensor)
    if training:
        ds = ds.shuffle(1000).batch(256)
    else:
        ds = ds.batch(1024)
    return ds.prefetch(tf.data.AUTOTUNE)
''',
        '''\
from google.cloud import storage


def delete_all(bucket_name, names):
    client = storage.Client()
    bucket = client.bucket(bucket_name)
    with client.batch():  # a storage batch, not a dataset
        for name in names:
            bucket.delete_blob(name)


def per_replica(ds, strategy):
    ds = ds.batch(64)
    return ds.rebatch(64 // strategy.num_replicas_in_sync)
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf
from tfx_bsl.public import tfxio


def _input_fn(file_pattern, data_accessor, schema, batch_size):
    return data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size), schema
    )


def _precompute_candidate_embeddings(model, candidates_dataset, batch_size=128):
    embeddings = []
    for batch in candidates_dataset.batch(batch_size):  # <-
        embeddings.append(model(batch))
    return tf.concat(embeddings, axis=0)


def run_fn(fn_args):
    candidates = _input_fn(fn_args.eval_files, fn_args.data_accessor, None, 1024)
    _precompute_candidate_embeddings(None, candidates)
''',
        '''\
import tensorflow as tf


def products(files, spec):
    ds = tf.data.experimental.make_batched_features_dataset(files, 256, spec)
    ids = ds.shuffle(10).map(lambda x: x["product_id"]).prefetch(2)
    return ids.padded_batch(128)  # <-


def index(model, ds):
    batched = ds.batch(32)
    alias = batched
    return model.fit(alias.cache(), batch_size=32)  # <-
''',
    )

    def wants(self, sf: SourceFile) -> bool:
        return "batch" in sf.source  # every second batching spells "batch" somewhere

    # -- transfer functions -------------------------------------------------------------------
    def df_join(self, a: Any, b: Any) -> Any:
        if isinstance(a, Fact) and isinstance(b, Fact):
            if a.kind == b.kind == "batched":
                return a  # batched on both paths (each may have batched once: that is fine)
            if {a.kind, b.kind} <= {"batched", "dataset"}:
                return Fact("dataset")  # batched on some path only: not reported (must-analysis)
        return UNKNOWN

    def df_call(self, call: CallInfo) -> Any:
        if call.qname is not None:
            return self._function(call)
        if call.method is not None:
            return self._method(call)
        return UNKNOWN

    def _function(self, call: CallInfo) -> Any:
        assert call.qname is not None
        last = call.qname.rsplit(".", 1)[-1]
        here = _name_node(call.node)
        if last in _BATCHED_SOURCES:
            return Fact("batched", here, f"`{last}(...)`")
        if last in _KERAS_BATCHED_SOURCES:
            size = call.arg(None, "batch_size")
            if size is not None and isinstance(size.node.value, cst.Name) and (
                size.node.value.value == "None"
            ):
                return Fact("dataset")
            return Fact("batched", here, f"`{last}(...)` (batch_size defaults to 32)")
        if call.qname.startswith("tensorflow_datasets.") and last == "load":
            if call.arg(None, "batch_size") is not None:
                return Fact("batched", here, "`tfds.load(..., batch_size=...)`")
            return Fact("dataset")
        if ".data." in call.qname or call.qname.startswith("tensorflow.data"):
            if last == "zip":
                items = call.value(0, "datasets")
                members = items.items if isinstance(items, TupleV) else (items,)
                for member in members:
                    if isinstance(member, Fact) and member.kind == "batched":
                        return member
                return Fact("dataset")
            if last in _DATASET_SOURCES:
                return Fact("dataset")
        return UNKNOWN

    def _method(self, call: CallInfo) -> Any:
        method, recv = call.method, call.receiver
        assert method is not None
        here = _name_node(call.node)
        is_dataset = isinstance(recv, Fact) and recv.kind in ("batched", "dataset")
        if method == "tf_dataset_factory":
            return Fact(
                "batched", here, "`tf_dataset_factory(...)` (TensorFlowDatasetOptions batch_size)"
            )
        if method == "TensorFlowDataset" and call.args:
            return Fact("batched", here, "TFXIO `TensorFlowDataset(options)`")
        if method in _BATCHING:
            if not is_dataset and recv is not UNKNOWN:
                return UNKNOWN
            if not is_dataset and call.arg(0, "batch_size") is None:
                return UNKNOWN  # client.batch(): not a dataset batching
            self._check(call, recv, f"`.{method}()`")
            return Fact("batched", here, f"`.{method}()`")
        if method == "unbatch":
            return Fact("dataset") if is_dataset or recv is UNKNOWN else UNKNOWN
        if method == "apply" and call.args:
            inner = call.args[0].node.value
            target = inner.func if isinstance(inner, cst.Call) else inner
            last = (dotted_name(target) or "").rsplit(".", 1)[-1]
            if last == "unbatch":
                return Fact("dataset") if is_dataset or recv is UNKNOWN else UNKNOWN
            if last in _APPLY_BATCHING:
                if is_dataset or recv is UNKNOWN:
                    self._check(call, recv, f"`.apply({last}(...))`")
                    return Fact("batched", here, f"`.apply({last}(...))`")
                return UNKNOWN
            return recv if is_dataset else UNKNOWN
        if method in _PRESERVING:
            return recv if is_dataset else UNKNOWN
        if method in ("interleave", "flat_map", "window", "group_by_window"):
            return Fact("dataset") if is_dataset else UNKNOWN
        if method in ("fit", "evaluate", "predict") and call.arg(None, "batch_size") is not None:
            data = call.value(0, "x")
            size = call.arg(None, "batch_size")
            if size is not None and not (
                isinstance(size.node.value, cst.Name) and size.node.value.value == "None"
            ):
                self._check(call, data, f"`{method}(..., batch_size=...)`")
        return UNKNOWN

    def _check(self, call: CallInfo, value: Any, what: str) -> None:
        if not (isinstance(value, Fact) and value.kind == "batched" and value.origin is not None):
            return
        assert self.file is not None
        first = self.file.location(value.origin, f"first batched here by {value.note}")
        self.report(
            _name_node(call.node),
            f"dataset is batched again by {what}: it was already batched at line {first.line} "
            f"by {value.note}; batching twice adds a second batch dimension",
            related=[first],
        )


def _name_node(call: cst.Call) -> cst.CSTNode:
    """Where to point for a call: the method or function name, not the receiver chain."""
    return call.func.attr if isinstance(call.func, cst.Attribute) else call.func
