"""The run ledger: a database of every compile, local run and Vertex AI submission.

    from compiler.ledger import Ledger

    ledger = Ledger()                       # sqlite:///<cwd>/.recforge/ledger.db by default
    n = ledger.record_compile(config_hash, "hybrid_v1", "cherng_v3", overrides, resolved, arts)
    ledger.start(n, kind="local")           # or "vertex", then ledger.set_job(n, job_id)
    ledger.complete(n, json.load(open("training_metrics.json")))   # or ledger.fail(n, error)

The URL is the argument, else ``$RECFORGE_LEDGER_URL``, else the project's SQLite file. It must
be a ``sqlite:///<file>`` or ``postgresql[+psycopg]://user@host/db`` URL (a team ledger, psycopg
3) or a path ending in ``.db``/``.sqlite``/``.sqlite3``; ``check_ledger_url`` says why not,
creating nothing. Provenance (``provenance``) and liveness (``liveness``: heartbeat, pid, host,
``abandoned``) are recorded beside each run. Never imports TensorFlow.

``Ledger`` and ``LATEST_VERSION`` are loaded on first use (PEP 562): they import SQLAlchemy,
which ``ledger.lite`` (a compile recorded through the stdlib ``sqlite3``) does without.
"""

import importlib
from typing import Any

from compiler.ledger.records import (
    HIGHER_IS_BETTER,
    KINDS,
    METRIC_KEYS,
    RUN_KINDS,
    SHOWN_STATUSES,
    SORTABLE_COLUMNS,
    STATUSES,
    DuplicateSubmission,
    Experiment,
    ExperimentNotFound,
    LedgerError,
    LedgerNotFound,
    check_metric_name,
    check_sort_column,
    split_metrics,
)
from compiler.ledger.urls import ENV_URL, check_ledger_url, default_url, resolve_url

#: Names loaded on first use, and the module (which imports SQLAlchemy) that defines each.
_LAZY = {"Ledger": "compiler.ledger.store", "LATEST_VERSION": "compiler.ledger.schema"}


def __getattr__(name: str) -> Any:  # PEP 562 lazy attributes
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compiler.ledger' has no attribute {name!r}")


__all__ = [
    "ENV_URL",
    "HIGHER_IS_BETTER",
    "KINDS",
    "LATEST_VERSION",
    "METRIC_KEYS",
    "RUN_KINDS",
    "SHOWN_STATUSES",
    "SORTABLE_COLUMNS",
    "STATUSES",
    "DuplicateSubmission",
    "Experiment",
    "ExperimentNotFound",
    "Ledger",
    "LedgerError",
    "LedgerNotFound",
    "check_ledger_url",
    "check_metric_name",
    "check_sort_column",
    "default_url",
    "resolve_url",
    "split_metrics",
]
