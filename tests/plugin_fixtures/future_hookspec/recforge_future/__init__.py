"""A plugin written for a hook spec recforge does not provide yet: it must be refused."""

from __future__ import annotations

from compiler import hookimpl
from plugins.towers import MLPTower

RECFORGE_HOOKSPEC_VERSION = 2


class FutureTower(MLPTower):
    name = "future"


@hookimpl
def register_fragments() -> list[type]:
    return [FutureTower]
