"""The fragment API: what a plugin writes against.

- ``base``: ``Fragment``, ``Contributions``, ``ModuleBuilder`` and the CST helpers fragments
  write code with (``statements``, ``expression``, ``literal`` …).
- ``hookspecs``: the pluggy hooks a plugin implements (``register_fragments``, ``register_passes``).
- ``registry``: loads plugins, checks them, and answers "which class is fragment kind/name".
- ``docs``: generates docs/plugins.md from the hooks and the registered fragments.

The data a fragment reads (``BuildContext``, ``FragmentUse``, ``TransformedFeature``) lives in
the data-only ``compiler.model`` and is re-exported here, so plugins import everything they need
from ``compiler.fragments``.
"""

from compiler.fragments.base import (
    TRAINER_FILE,
    TRANSFORM_FILE,
    Contributions,
    Fragment,
    ImportRequest,
    ModuleBuilder,
    Section,
    block_literal,
    docstring,
    expression,
    literal,
    name,
    origin_label,
    shared_label,
    statements,
    unique,
)
from compiler.fragments.layout import LINE_LENGTH, SLOT_MARKER, block_origin, fit_line
from compiler.model import BuildContext, FragmentUse, Plan, TransformedFeature

__all__ = [
    "LINE_LENGTH",
    "SLOT_MARKER",
    "TRAINER_FILE",
    "TRANSFORM_FILE",
    "BuildContext",
    "Contributions",
    "Fragment",
    "FragmentUse",
    "ImportRequest",
    "ModuleBuilder",
    "Plan",
    "Section",
    "TransformedFeature",
    "block_literal",
    "block_origin",
    "docstring",
    "expression",
    "fit_line",
    "literal",
    "name",
    "origin_label",
    "shared_label",
    "statements",
    "unique",
]
