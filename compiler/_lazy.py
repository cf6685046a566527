"""The one list of modules that ``compiler`` imports inside functions, on purpose.

Every other import sits at module top, so the dependency graph is what the imports say.
These stay lazy so that importing the compiler loads none of TensorFlow, Beam, pandas,
SQLAlchemy or the Google Cloud SDK: a command loads each only where it uses it; a few modules
that are cheap but measurable (the process pool, tarfile, packaging, rich tables) stay lazy
because one rarely taken path needs them; and the internal entries at the end are the modules
that pull SQLAlchemy or pandas in, or (the local runner) only a ``run=local`` needs.
``tests/test_architecture.py`` checks that every import inside a function in ``compiler/`` is
of a module listed here (the module itself or a submodule of it) and carries a comment.

``compiler.data`` also loads its loader (pandas) on first attribute access (PEP 562
``__getattr__``), for the same reason.
"""

from __future__ import annotations

#: module (or package prefix) -> why it is imported lazily.
LAZY_IMPORTS: dict[str, str] = {
    "tensorflow": "TensorFlow: the runners only; compiling never imports it",
    "tensorflow_transform": "tf.Transform (TensorFlow): running a Transform only",
    "tensorboard": "TensorBoard's HParams API (TensorFlow): writing a run's summaries only",
    "tensorflow_metadata": "TFMD schema protos: reading a Transform schema only",
    "tfx_bsl": "TFX Beam helpers: the Transform runner only",
    "apache_beam": "Beam: the Transform runner only",
    "pyarrow": "Arrow: the Transform runner's record batches only",
    "numpy": "NumPy: data hashing and metrics of a run only",
    "pandas": "pandas: loading data for a run only",
    "sqlalchemy": "SQLAlchemy: the ledger's database only",
    "google": "Google Cloud SDK (storage, aiplatform, auth, protobuf): GCS/Vertex calls only",
    "requests": "HTTP errors of the Google SDK's transport: cloud calls only",
    "matplotlib": "matplotlib: the runs report's charts only",
    "jinja2": "Jinja2 (the ledger extra): the runs report's page only",
    "multiprocessing": "process pool: only a sweep with workers",
    "concurrent.futures": "process pool: only a sweep with workers",
    "packaging": "pip requirement parser: only a submit config that lists packages",
    "tarfile": "tar archives: only staging a package for submit",
    "rich.table": "rich tables: printed only at the end of a run or sweep",
    "rich.prompt": "rich prompt: asked only on an interactive cancel",
    "hydra": "Hydra internals: only inside a Hydra app (the job side runs without)",
    "plugins": "the built-in plugins import compiler's APIs; reached at call time, after both load",
    "compiler.ledger": "the ledger imports SQLAlchemy at module top",
    "compiler.runs": "the runs CLI imports the ledger (SQLAlchemy)",
    "compiler.local.run": "the local runner (data loading, the runners' modules): run=local only",
    "compiler.data.load": "the data loader imports pandas and pyarrow at module top",
}


def lazy_reason(module: str) -> str | None:
    """Why ``module`` may be imported inside a function, or None when it may not."""
    for name, reason in LAZY_IMPORTS.items():
        if module == name or module.startswith(name + "."):
            return reason
    return None
