"""Every hook recforge calls. Plugins implement them with ``@compiler.hookimpl``.

The registry (``compiler.registry``) calls ``pm.check_pending()`` after loading plugins, so a
misspelled hook implementation is an error instead of a silently ignored function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler import hookspec

if TYPE_CHECKING:
    from compiler.fragments import Fragment
    from compiler.passes import Pass

#: Bumped on any incompatible change to the hooks below. Plugins may declare the version they
#: target as a module attribute ``RECFORGE_HOOKSPEC_VERSION``; a different major is refused.
HOOKSPEC_VERSION = 1


@hookspec
def register_fragments() -> list[type[Fragment]]:
    """Return fragment classes this plugin provides.

    Each class has a ``kind`` (``tower``, ``head``, ``loss``, ``task``, ``optimizer``,
    ``retrieval_index``, ``evaluator``, ``input``, ``export``, ``feature_transform`` ...) and a
    ``name``; the name is what a config value uses to pick it (``model.optimizer: adam``).
    Two plugins registering the same ``(kind, name)`` is an error naming both.
    """


@hookspec
def register_passes() -> list[type[Pass]]:
    """Return static pass classes this plugin provides.

    Every compile runs every registered pass over the built modules before anything is
    written; ``python -m compiler.check`` runs them over any trainer module.
    """
