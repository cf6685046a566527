"""Tower fragments: one embedding model per side (buyer, product)."""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    docstring,
    name,
    statements,
)

MLP_LAYERS = '''
def _mlp_layers(widths, activation, l2, dropout=0.0):
    """Dense layers of the given widths; the last one is linear (it outputs an embedding or a
    prediction, not an activation)."""
    regularizer = tf.keras.regularizers.l2(l2) if l2 else None
    layers = []
    for position, width in enumerate(widths):
        last = position == len(widths) - 1
        layers.append(
            tf.keras.layers.Dense(
                width, activation=None if last else activation, kernel_regularizer=regularizer
            )
        )
        if dropout and not last:
            layers.append(tf.keras.layers.Dropout(dropout))
    return layers
'''

TOWER_CLASS = '''

class Tower(tf.keras.Model):
    """Feature encoder followed by dense layers: one side's embedding model."""

    def __init__(self, encoder, layers, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.dense = tf.keras.Sequential(layers)

    def call(self, features, training=False):
        return self.dense(self.encoder(features), training=training)
'''

#: The helpers of dense towers and heads, under one ``add_once`` key (third-party towers
#: use it too, so a model carries one copy).
MLP_HELPERS = MLP_LAYERS + TOWER_CLASS
MLP_HELPERS_KEY = "mlp-helpers"

EMBEDDINGS_ONLY_TOWER = '''
def {function}(tf_transform_output):
    {doc}
    return FeatureEncoder({features}, tf_transform_output, name={tower_name})
'''

MLP_TOWER = '''
def {function}(tf_transform_output):
    {doc}
    return Tower(
        FeatureEncoder({features}, tf_transform_output),
        _mlp_layers({widths}, activation={activation}, l2={l2}, dropout={dropout}),
        name={tower_name},
    )
'''


class MLPTower(Fragment):
    kind: ClassVar[str] = "tower"
    name: ClassVar[str] = "mlp"
    description: ClassVar[str] = (
        "dense layers with L2 over the concatenated feature encodings, or none (embeddings only)"
    )
    EXAMPLES: ClassVar[list[list[str]]] = [
        [],
        ["model.buyer_tower.layers=[]", "model.buyer_tower.projection=linear",
         "model.product_tower.dropout=0.2"],
        ["model=tfrs_tutorial", "features=tfrs_tutorial"],
    ]
    provides: ClassVar[tuple[str, ...]] = ("{role}_tower",)
    requires: ClassVar[tuple[str, ...]] = ("feature_tables", "FeatureEncoder")

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        side = use.role or "buyer"
        if not use.params["layers"] and use.params.get("projection") != "linear":
            # Embeddings only: the feature encoder is the tower; validation made sure its
            # concatenated output is output_embedding_dim wide. No dense layer at all.
            out.add(Section.TOWERS, statements(
                EMBEDDINGS_ONLY_TOWER,
                function=name(f"_build_{side}_tower"),
                doc=docstring(f"{side.capitalize()} tower: embeddings only, "
                              f"{use.params['output_dim']} wide, no dense layer"),
                features=name(f"{side.upper()}_FEATURES"),
                tower_name=f"{side}_tower",
            ))
            return
        out.require_import("tensorflow", alias="tf")
        out.add_once(MLP_HELPERS_KEY, Section.TOWERS, statements(MLP_HELPERS))
        widths = tuple(use.params["layers"]) or (use.params["output_dim"],)
        doc = (f"{side.capitalize()} tower: {' -> '.join(map(str, widths))}"
               if use.params["layers"] else
               f"{side.capitalize()} tower: embeddings only, projected to {widths[0]}")
        out.add(Section.TOWERS, statements(
            MLP_TOWER,
            function=name(f"_build_{side}_tower"),
            doc=docstring(doc),
            features=name(f"{side.upper()}_FEATURES"),
            widths=widths,
            activation=use.params["activation"],
            l2=float(use.params["l2"]),
            dropout=float(use.params["dropout"]),
            tower_name=f"{side}_tower",
        ))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [MLPTower]
