"""Every hook recforge calls. Plugins implement them with ``@compiler.hookimpl``.

The registry (``compiler.fragments.registry``) checks every hook implementation against these specs
after loading plugins (``pm.check_pending()``), so a misspelled hook implementation is an
error instead of a silently ignored function. docs/plugins.md is generated in part from this
module (``python -m compiler.fragments.docs``); a test keeps the two in sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler import hookspec

if TYPE_CHECKING:
    from compiler.fragments import Fragment
    from compiler.passes import Pass

#: Bumped on any incompatible change to the hooks below or to the fragment API they return
#: (``compiler.fragments``). A plugin module declares the version it was written for as
#: ``RECFORGE_HOOKSPEC_VERSION = 1``; recforge refuses a plugin that declares another version
#: (with a warning naming it), and configs that don't use it compile as before.
HOOKSPEC_VERSION = 1


@hookspec
def register_fragments() -> list[type[Fragment]]:
    """Return the fragment classes this plugin provides.

    A fragment is a subclass of ``compiler.fragments.Fragment`` with a ``kind`` (``tower``,
    ``head``, ``loss``, ``retrieval_loss``, ``task``, ``optimizer``, ``retrieval_index``,
    ``evaluator``, ``callback``, ``input``, ``encoder``, ``candidates``, ``export``,
    ``trainer``, ``transform``, ``feature_transform``) and a ``name``: the config value that
    selects it (``model.optimizer: adam``, ``model.buyer_tower.type: dcn``; evaluators,
    callbacks and exports by name in the lists ``model.evaluators``, ``model.callbacks``,
    ``model.exports``). It declares the named values it ``provides`` and ``requires`` and the
    ``run_fn`` slots it ``fills``; the build checks every selected fragment's declarations
    against the others' before any code is built. If two distributions
    register the same ``(kind, name)``, a config selecting that name is an error naming both,
    and ``<distribution>:<name>`` (``recforge-dcn:dcn``) picks one. A malformed class (no
    ``contribute``, a ``Params`` that is not a valid dataclass schema, a declaration that is not
    a tuple of names or fills an unknown slot) is refused with a warning naming the plugin.
    """


@hookspec
def register_passes() -> list[type[Pass]]:
    """Return the static pass classes this plugin provides.

    A pass is a subclass of ``compiler.passes.Pass`` (see docs/passes.md). Passes run over the
    built modules before anything is written; an error-level finding stops the compile. A
    plugin's passes run on every compile that uses one of its fragments (a plugin with passes
    but no fragments: on every compile), and ``python -m compiler.check`` runs them all.
    """
