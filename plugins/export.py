"""Export: a SavedModel whose signatures take serialized tf.Examples of RAW features.

Raw examples are parsed with the raw feature spec and passed through the tf.Transform layer, as
TFX serving does, so clients never re-implement the preprocessing.
"""

from __future__ import annotations

import textwrap
from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    expression,
    statements,
)
from compiler.model import ResolvedConfig

RAW_FEATURES = '''
BUYER_RAW_FEATURES = {buyer}
PRODUCT_RAW_FEATURES = {product}
'''

EXPORT_HEAD = '''
def _export_serving_model(model, tf_transform_output, serving_model_dir, index):
    """Save ``model`` with signatures over serialized raw tf.Examples."""
    serving = tf.Module()
    serving.model = model
'''

#: How the index's state reaches the SavedModel. BruteForce's own state is the candidates'
#: embeddings, and the model tracks its query tower; tracking the Keras layer itself would make
#: tf.saved_model.save trace that tower's layers once more for Keras' metadata, which the
#: signatures never read (about a fifth of the export). ScaNN's searcher is a resource that
#: only its layer tracks.
INDEX_TRACKING = {
    "brute_force": "    serving.index_variables = index.variables\n",
    "scann": "    serving.index = index\n",
}

EXPORT_INPUTS = '''\
    serving.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    signatures = {}
'''

RETRIEVAL_SIGNATURE = '''
buyer_spec = {name: raw_spec[name] for name in BUYER_RAW_FEATURES}

@tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
def recommend(examples):
    """Buyer features -> the top-K product ids and their scores."""
    transformed = serving.tft_layer(tf.io.parse_example(examples, buyer_spec))
    scores, product_ids = index(transformed)
    return {"product_ids": product_ids, "scores": scores}

signatures["serving_default"] = recommend
'''

RANKING_SIGNATURE = '''
pair_spec = {name: raw_spec[name] for name in BUYER_RAW_FEATURES + PRODUCT_RAW_FEATURES}

@tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
def rank(examples):
    """Buyer + product features -> the predicted target, in the target's own units."""
    transformed = serving.tft_layer(tf.io.parse_example(examples, pair_spec))
    predictions = serving.model.predict_rating(transformed, training=False)
    return {"predictions": {untransform}}

signatures[{signature}] = rank
'''

EXPORT_TAIL = '''
tf.saved_model.save(serving, serving_model_dir, signatures=signatures, options=_save_options())
'''

#: Without a retrieval index there is nothing to whitelist: TensorFlow's default options (the
#: longer call, wrapped as ruff format wraps it).
EXPORT_TAIL_DEFAULT_OPTIONS = '''
tf.saved_model.save(
    serving, serving_model_dir, signatures=signatures, options=tf.saved_model.SaveOptions()
)
'''

EXPORT_STEP = '''
_export_serving_model(model, tf_transform_output, fn_args.serving_model_dir, index)
'''


class ServingExport(Fragment):
    kind: ClassVar[str] = "export"
    name: ClassVar[str] = "serving"
    description: ClassVar[str] = "SavedModel: serving_default (top-K) and serve_ranking"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["model=retrieval_v1"], ["model=ranking_v1"]]
    requires: ClassVar[tuple[str, ...]] = ("trained_model", "datasets")
    fills: ClassVar[tuple[str, ...]] = ("export",)

    @classmethod
    def declare(cls, use: FragmentUse, config: ResolvedConfig) -> dict[str, tuple[str, ...]]:
        """The top-K signature needs the index, the ranking signature ``predict_rating``."""
        requires = cls.requires + (("index",) if config.has_retrieval else ()) \
            + (("predict_rating",) if config.has_ranking else ())
        return {"requires": requires, "fills": cls.fills}

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        config = ctx.config
        features = config.features
        out.add(Section.CONSTANTS, statements(
            RAW_FEATURES,
            buyer=tuple(f.name for f in features.buyer),
            product=tuple(f.name for f in features.product),
        ))
        # The function is assembled from our own template text (never from config values,
        # which arrive as CST nodes below), so it reads as one hand-written function.
        parts = [EXPORT_HEAD]
        if config.has_retrieval:
            parts.append(INDEX_TRACKING[config.model.retrieval_algorithm])
        parts.append(EXPORT_INPUTS)
        if config.has_retrieval:
            parts.append(textwrap.indent(RETRIEVAL_SIGNATURE, "    "))
        if config.has_ranking:
            parts.append(textwrap.indent(RANKING_SIGNATURE, "    "))
        tail = EXPORT_TAIL if config.has_retrieval else EXPORT_TAIL_DEFAULT_OPTIONS
        parts.append(textwrap.indent(tail, "    "))
        log = features.target is not None and features.target.log
        definition = statements(
            "".join(parts),
            untransform=expression("tf.math.expm1(predictions)" if log else "predictions"),
            signature="serve_ranking" if config.has_retrieval else "serving_default",
        ).body[0]
        out.add(Section.EXPORT, [definition])
        out.add_to_function("run_fn", statements(EXPORT_STEP))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [ServingExport]
