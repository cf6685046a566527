"""Another distribution's ``dcn`` tower: a name clash with recforge-dcn."""

from __future__ import annotations

from compiler import hookimpl
from plugins.towers import MLPTower

RECFORGE_HOOKSPEC_VERSION = 1


class OtherDCN(MLPTower):
    name = "dcn"
    description = "not really a DCN: the mlp tower under a clashing name"


@hookimpl
def register_fragments() -> list[type]:
    return [OtherDCN]
