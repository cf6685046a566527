"""The feature encoder: transformed features -> one dense vector per example and side.

Its tables come from the feature transforms' declared outputs (``TransformedFeature``), so the
trainer reads exactly what the Transform writes.
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
    block_literal,
    statements,
)

FEATURE_TABLES = '''
# What each tower reads from the transformed examples, and how it encodes it:
# "embedding" (vocabulary id), "bucket" / "hashed" (index in [0, size)) or "dense" (a float).
BUYER_FEATURES = {buyer}
PRODUCT_FEATURES = {product}
'''

ENCODER = '''
class FeatureEncoder(tf.keras.layers.Layer):
    """Embeds ids, buckets and hashed crosses; concatenates them with the dense features."""

    def __init__(self, features, tf_transform_output, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.embeddings = {}
        for spec in features:
            if spec["encoding"] == "embedding":
                size = tf_transform_output.vocabulary_size_by_name(spec["vocab"])
                size += spec.get("extra_ids", 0)
            elif spec["encoding"] in ("bucket", "hashed"):
                # tft.bucketize may return index `size` for values above the last boundary.
                size = spec["size"] + 1
            else:
                continue
            self.embeddings[spec["name"]] = tf.keras.layers.Embedding(
                size, spec["dim"], name=spec["name"] + "_embedding"
            )

    def call(self, inputs):
        encoded = []
        for spec in self.features:
            value = inputs[spec["name"]]
            if spec["name"] in self.embeddings:
                encoded.append(self.embeddings[spec["name"]](tf.reshape(value, [-1])))
            else:
                encoded.append(tf.reshape(tf.cast(value, tf.float32), [-1, 1]))
        return tf.concat(encoded, axis=1)
'''


class ConcatEncoder(Fragment):
    kind: ClassVar[str] = "encoder"
    name: ClassVar[str] = "concat"
    description: ClassVar[str] = "embeddings + dense features, concatenated per side"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    provides: ClassVar[tuple[str, ...]] = ("feature_tables", "FeatureEncoder")

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        tables = {
            side: block_literal(tuple(f.as_table_row() for f in ctx.plan.features_for(side)))
            for side in ("buyer", "product")
        }
        out.add(Section.CONSTANTS, statements(FEATURE_TABLES, **tables))
        out.add(Section.FEATURES, statements(ENCODER))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [ConcatEncoder]
