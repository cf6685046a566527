"""The ``dcn`` tower: DCN-V2 cross layers over the feature encodings, then dense layers.

Wang et al., "DCN V2: Improved Deep & Cross Network" (2020), stacked form: the cross layers
learn explicit bounded-degree feature crosses, ``x_{l+1} = x0 * (W x_l + b) + x_l``; the dense
layers after them learn the rest and project to the embedding width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

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

# The built-in mlp tower's helpers (``_mlp_layers``, ``Tower``) under the key the built-ins use,
# so a model mixing dcn and mlp towers (or an mlp rating head) carries one copy of them.
from plugins.towers import MLP_HELPERS

MLP_HELPERS_KEY = "mlp-helpers"

CROSS_TOWER = '''
class CrossTower(tf.keras.Model):
    """Deep & Cross Network tower: cross layers over the feature encodings, then dense layers."""

    def __init__(self, encoder, cross_layers, projection_dim, l2, dense_layers, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        self.cross_layers = [
            tfrs.layers.dcn.Cross(
                projection_dim=projection_dim,
                kernel_initializer="glorot_uniform",
                kernel_regularizer=regularizer,
            )
            for _ in range(cross_layers)
        ]
        self.dense = tf.keras.Sequential(dense_layers)

    def call(self, features, training=False):
        x0 = self.encoder(features)
        x = x0
        for cross in self.cross_layers:
            # Every layer crosses with the tower's input: x0 * (W x + b) + x.
            x = cross(x0, x)
        return self.dense(x, training=training)
'''

DCN_TOWER = '''
def {function}(tf_transform_output):
    {doc}
    return CrossTower(
        FeatureEncoder({features}, tf_transform_output),
        cross_layers={cross_layers},
        projection_dim={projection_dim},
        l2={l2},
        dense_layers=_mlp_layers({widths}, activation={activation}, l2={l2}, dropout={dropout}),
        name={tower_name},
    )
'''


@dataclass
class DCNParams:
    """``model.<side>_tower.params`` of a dcn tower."""

    #: Number of stacked Cross layers.
    cross_layers: int = 2
    #: Rank of each Cross layer's kernel (low-rank DCN-V2: 2 * d * r weights instead of d * d);
    #: null: full rank.
    projection_dim: Optional[int] = None  # noqa: UP045 - OmegaConf reads the annotation

    def __post_init__(self) -> None:
        # recforge reports "<field>: <problem>" as an error at model.<side>_tower.params.<field>.
        if self.cross_layers < 1:
            raise ValueError(f"cross_layers: expected a positive integer, got {self.cross_layers}")
        if self.projection_dim is not None and self.projection_dim < 1:
            raise ValueError(
                f"projection_dim: expected a positive integer or null, got {self.projection_dim}"
            )


class DCNTower(Fragment):
    kind: ClassVar[str] = "tower"
    name: ClassVar[str] = "dcn"
    description: ClassVar[str] = "Deep & Cross Network: tfrs Cross layers, then dense layers"
    Params: ClassVar[type] = DCNParams
    #: Configs the conformance kit compiles (on top of hybrid_v1 / cherng_v3) to check the tower.
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.buyer_tower.type=dcn"],
        ["model=retrieval_v1", "model.buyer_tower.type=dcn", "model.product_tower.type=dcn",
         "+model.buyer_tower.params.cross_layers=3",
         "+model.buyer_tower.params.projection_dim=8", "model.product_tower.layers=[]",
         "model.product_tower.projection=linear"],
    ]
    # ``{role}`` is buyer or product: the buyer tower provides buyer_tower. It reads the
    # built-in encoder's feature tables and FeatureEncoder layer.
    provides: ClassVar[tuple[str, ...]] = ("{role}_tower",)
    requires: ClassVar[tuple[str, ...]] = ("feature_tables", "FeatureEncoder")

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("tensorflow_recommenders", alias="tfrs")
        out.add_once(MLP_HELPERS_KEY, Section.TOWERS, statements(MLP_HELPERS))
        out.add_once("dcn-cross-tower", Section.TOWERS, statements(CROSS_TOWER))
        params = use.params
        side = use.role or "buyer"
        widths = tuple(params["layers"]) or (params["output_dim"],)
        rank = params["projection_dim"]
        count = int(params["cross_layers"])
        crosses = f"{count} cross layer{'s' if count > 1 else ''}" + (
            f" of rank {rank}" if rank else " (full rank)"
        )
        out.add(Section.TOWERS, statements(
            DCN_TOWER,
            function=name(f"_build_{side}_tower"),
            doc=docstring(f"{side.capitalize()} tower: {crosses}, then "
                          f"{' -> '.join(map(str, widths))}"),
            features=name(f"{side.upper()}_FEATURES"),
            cross_layers=count,
            projection_dim=None if rank is None else int(rank),
            widths=widths,
            activation=params["activation"],
            l2=float(params["l2"]),
            dropout=float(params["dropout"]),
            tower_name=f"{side}_tower",
        ))
