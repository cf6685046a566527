"""candidates-not-deduplicated: retrieval candidates taken straight from interaction data."""

from __future__ import annotations

from typing import Any, ClassVar

import libcst as cst

from compiler.passes import Severity, SourceFile
from compiler.passes.dataflow import UNKNOWN, CallInfo, DataflowPass, Fact, TupleV
from compiler.passes.source import dotted_name

# Readers of TFX example splits: every row is an interaction (a transaction), so a product
# appears once per purchase.
_INTERACTION_READERS_METHODS = frozenset({"tf_dataset_factory", "TensorFlowDataset"})
_INTERACTION_READERS = frozenset({"make_batched_features_dataset"})
_KEEP = frozenset(
    {
        "map", "batch", "unbatch", "padded_batch", "rebatch", "prefetch", "cache", "filter",
        "shuffle", "take", "skip", "repeat", "with_options", "shard", "concatenate",
        "prefetch_to_device", "ignore_errors", "enumerate",
    }
)
_DEDUP_FUNCTIONS = frozenset(
    {
        "tensorflow.unique", "tensorflow.raw_ops.Unique", "numpy.unique", "pandas.unique",
        "builtins.set", "builtins.frozenset", "dict.fromkeys", "builtins.dict.fromkeys",
    }
)


class CandidatesNotDeduplicated(DataflowPass):
    """Candidates for ``FactorizedTopK`` or a retrieval index come straight from interaction data.

    The training/eval splits hold one row per interaction: a product bought 500 times is 500
    candidates. Indexing or scoring against them repeats each product in every top-K list
    (recall looks worse, serving returns duplicates) and multiplies the work
    (tensorflow/recommenders#119). The platform's trainer dedupes explicitly ("1040 unique
    products from 13252 transactions").

    Reported: ``tfrs.metrics.FactorizedTopK(candidates=...)`` and ``.index_from_dataset(...)``
    whose dataset derives (through ``map``/``batch``/``unbatch``/``filter``/... chains,
    variables, parameters and return values) from ``tf_dataset_factory``, TFXIO
    ``TensorFlowDataset`` or ``make_batched_features_dataset`` with no ``.unique()`` (or
    ``apply(tf.data.experimental.unique())``) on the way. Candidates built from anything else
    (a vocabulary, ``tf.unique``, ``np.unique``, a product catalogue) are not reported.
    """

    name: ClassVar[str] = "candidates-not-deduplicated"
    severity: ClassVar[Severity] = Severity.WARNING
    MESSAGE: ClassVar[str] = "retrieval candidates are not deduplicated"
    HAZARD: ClassVar[str] = "Candidate dataset not deduplicated before indexing or FactorizedTopK"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow as tf
import tensorflow_recommenders as tfrs


def _candidates(fn_args, schema):
    ds = fn_args.data_accessor.tf_dataset_factory(fn_args.train_files, None, schema)
    return ds.unbatch().map(lambda x: x["product_id"]).unique().batch(128)


def build(fn_args, schema, product_model, tft_output):
    ids = _candidates(fn_args, schema)
    metric = tfrs.metrics.FactorizedTopK(candidates=ids.map(product_model))
    vocab = tft_output.vocabulary_by_name("product_id_vocab")
    catalogue = tf.data.Dataset.from_tensor_slices(vocab).batch(128)
    index = tfrs.layers.factorized_top_k.BruteForce(product_model)
    index.index_from_dataset(catalogue.map(lambda p: (p, product_model(p))))
    return metric, index
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow_recommenders as tfrs


def _input_fn(files, accessor, schema):
    return accessor.tf_dataset_factory(files, None, schema)


def build(fn_args, schema, product_model, query_model):
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema)
    products = train.map(lambda x: x["product_id"])
    metric = tfrs.metrics.FactorizedTopK(candidates=products.map(product_model))  # <-
    index = tfrs.layers.factorized_top_k.BruteForce(query_model)
    index.index_from_dataset(products.map(lambda p: (p, product_model(p))))  # <-
    return metric, index
''',
    )

    def wants(self, sf: SourceFile) -> bool:
        return "FactorizedTopK" in sf.source or "index_from_dataset" in sf.source

    def df_join(self, a: Any, b: Any) -> Any:
        for value in (a, b):
            if isinstance(value, Fact) and value.kind == "interactions":
                return value
        return UNKNOWN

    def df_call(self, call: CallInfo) -> Any:
        q = call.qname
        recv = call.receiver
        here = call.node.func.attr if isinstance(call.node.func, cst.Attribute) else call.node
        if q is not None:
            last = q.rsplit(".", 1)[-1]
            if last in _INTERACTION_READERS:
                return Fact("interactions", here, f"`{last}(...)`")
            if last == "FactorizedTopK":
                self._check(call, call.value(0, "candidates"), "FactorizedTopK candidates")
            if q in _DEDUP_FUNCTIONS or last == "unique":
                return Fact("dedup")
            if last == "zip" and ".data." in q:
                items = call.value(0, "datasets")
                for item in items.items if isinstance(items, TupleV) else (items,):
                    if isinstance(item, Fact) and item.kind == "interactions":
                        return item
            return UNKNOWN
        method = call.method
        if method is None:
            return UNKNOWN
        if method in _INTERACTION_READERS_METHODS:
            return Fact("interactions", here, f"`{method}(...)`")
        if method == "index_from_dataset":
            self._check(call, call.value(0, "candidates"), "the indexed candidates")
            return UNKNOWN
        if method in ("unique", "drop_duplicates"):
            return Fact("dedup")
        if method == "apply" and call.args:
            inner = call.args[0].node.value
            target = inner.func if isinstance(inner, cst.Call) else inner
            if (dotted_name(target) or "").endswith("unique"):
                return Fact("dedup")
        if method in _KEEP or method == "apply":
            return recv if isinstance(recv, Fact) else UNKNOWN
        return UNKNOWN

    def _check(self, call: CallInfo, value: Any, what: str) -> None:
        if not (isinstance(value, Fact) and value.kind == "interactions" and value.origin):
            return
        assert self.file is not None
        source = self.file.location(value.origin, f"interaction data read by {value.note}")
        self.report(
            call.node,
            f"{what} come from interaction data ({value.note}, line {source.line}) with no "
            "deduplication: each product appears once per interaction; use .unique() on the "
            "ids (after unbatch) or a vocabulary",
            related=[source],
        )
