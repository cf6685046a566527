"""Head fragments: the rating head of ranking and multitask models."""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)
from plugins.towers import MLP_HELPERS_KEY, MLP_LAYERS

MLP_HEAD = '''
def _build_rating_head():
    """Rating head over the concatenated buyer and product embeddings."""
    return tf.keras.Sequential(
        _mlp_layers({widths}, activation={activation}, l2={l2}), name="rating_head"
    )
'''


class MLPHead(Fragment):
    kind: ClassVar[str] = "head"
    name: ClassVar[str] = "mlp"
    description: ClassVar[str] = "dense layers down to one predicted value"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["model=ranking_v1"]]
    provides: ClassVar[tuple[str, ...]] = ("rating_head",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        # A dense tower has added _mlp_layers with its Tower class under this key already;
        # beside embeddings-only towers the head adds the one function it uses.
        out.add_once(MLP_HELPERS_KEY, Section.TOWERS, statements(MLP_LAYERS))
        out.add(Section.HEADS, statements(
            MLP_HEAD, widths=tuple(use.params["layers"]), activation=use.params["activation"],
            l2=float(use.params["l2"]),
        ))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [MLPHead]
