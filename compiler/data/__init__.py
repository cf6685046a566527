"""The data layer for local runs: config schema, embedded dataset, loader.

Pure Python (pandas, numpy, pyarrow; google-cloud-storage for ``gs://``); never imports TensorFlow.
"""

import importlib

from compiler.data.errors import DataError
from compiler.data.schema import (
    DataConfig,
    DerivedColumn,
    DeriveOp,
    DirtyAction,
    DirtyRowsConfig,
    FilterOp,
    RowFilter,
    SourceFormat,
    SplitConfig,
    SplitKind,
    SplitRatios,
    as_data_config,
)

# The loader and generator need pandas/pyarrow; they load on first use, so that composing a
# config (which imports the schema above) stays fast and light.
_LAZY = {
    "KINDS": "compiler.data.load",
    "LoadedData": "compiler.data.load",
    "load_data": "compiler.data.load",
    "SYNTHETIC_COLUMNS": "compiler.data.synthetic",
    "SYNTHETIC_TARGET": "compiler.data.synthetic",
}


def __getattr__(name: str):  # PEP 562 lazy attributes
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compiler.data' has no attribute {name!r}")

__all__ = [
    "KINDS",
    "SYNTHETIC_COLUMNS",
    "SYNTHETIC_TARGET",
    "DataConfig",
    "DataError",
    "DeriveOp",
    "DerivedColumn",
    "DirtyAction",
    "DirtyRowsConfig",
    "FilterOp",
    "LoadedData",
    "RowFilter",
    "SourceFormat",
    "SplitConfig",
    "SplitKind",
    "SplitRatios",
    "as_data_config",
    "load_data",
]
