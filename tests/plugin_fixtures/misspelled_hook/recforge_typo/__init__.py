"""A plugin whose hook name is misspelled (register_fragment): an error, not silence."""

from __future__ import annotations

from compiler import hookimpl
from plugins.towers import MLPTower

RECFORGE_HOOKSPEC_VERSION = 1


class TypoTower(MLPTower):
    name = "typo"


@hookimpl
def register_fragment() -> list[type]:
    return [TypoTower]
