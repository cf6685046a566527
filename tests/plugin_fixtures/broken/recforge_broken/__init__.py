"""A deliberately broken plugin: everything the conformance kit must catch, one per fragment.

* ``tower/leaky`` emits code with an undefined name (the pyflakes pass fails it);
* ``tower/crash`` emits code that compiles and passes every pass but fails at import;
* ``loss/ghost`` has no EXAMPLES, and the base config does not select it;
* ``tower/badparams`` has a Params schema OmegaConf cannot use (refused at load);
* the module does not declare RECFORGE_HOOKSPEC_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import Fragment, Section, name, statements
from plugins.losses import MSE
from plugins.towers import MLP_HELPERS, MLPTower

LEAKY_TOWER = '''
def {function}(tf_transform_output):
    return Tower(
        FeatureEncoder({features}, tf_transform_output),
        _mlp_layers([HIDDEN_WIDTH, 32], activation="relu", l2=0.0),
        name={tower_name},
    )
'''


class LeakyTower(Fragment):
    kind: ClassVar[str] = "tower"
    name: ClassVar[str] = "leaky"
    description: ClassVar[str] = "uses a constant nobody defines"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.buyer_tower.type=leaky"]]
    provides: ClassVar[tuple[str, ...]] = ("{role}_tower",)
    requires: ClassVar[tuple[str, ...]] = ("feature_tables", "FeatureEncoder")

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        out.require_import("tensorflow", alias="tf")
        out.add_once("mlp-helpers", Section.TOWERS, statements(MLP_HELPERS))
        side = use.role or "buyer"
        out.add(Section.TOWERS, statements(
            LEAKY_TOWER, function=name(f"_build_{side}_tower"),
            features=name(f"{side.upper()}_FEATURES"), tower_name=f"{side}_tower",
        ))


class CrashTower(MLPTower):
    name: ClassVar[str] = "crash"
    description: ClassVar[str] = "fine to every pass, broken at import"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.product_tower.type=crash"]]

    def contribute(self, use, ctx, out) -> None:  # noqa: ANN001
        super().contribute(use, ctx, out)
        out.add(Section.TOWERS, statements("CROSS_LAYER = tf.keras.layers.NoSuchLayer\n"))


class GhostLoss(MSE):
    name: ClassVar[str] = "ghost"
    description: ClassVar[str] = "a loss no example selects"
    EXAMPLES: ClassVar[list[list[str]]] = []


@dataclass
class BadParams:
    widths: set[int] = field(default_factory=set)  # OmegaConf has no set type


class BadParamsTower(MLPTower):
    name: ClassVar[str] = "badparams"
    description: ClassVar[str] = "its Params schema is not a valid config schema"
    Params: ClassVar[type] = BadParams


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [LeakyTower, CrashTower, GhostLoss, BadParamsTower]
