"""Data the benchmarks share: compiled modules, loaded splits and their Transform output.

Everything is produced by the same code ``python -m compiler ... run=local`` runs
(``compiler.core.pipeline``, ``compiler.data``, ``compiler.runner.transform``); a Transform output
is reused from the local runner's cache (``.recforge/transform_cache/``, same key) when there.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: model config, feature config and data config of each benchmark dataset
DATASETS = {
    "default": ("hybrid_v1", "cherng_v3", "default"),
    "online_retail": ("hybrid_v1", "online_retail", "online_retail"),
    # the TFRS multitask tutorial's settings on the default data (benchmarks/tutorial_parity.py)
    "tfrs_tutorial": ("tfrs_tutorial", "tfrs_tutorial", "default"),
}


def compile_modules(output_dir: Path, dataset: str = "default",
                    overrides: tuple[str, ...] = ()) -> Any:
    """Compile the dataset's model + features into ``output_dir``; the CompileResult."""
    from compiler.core.compose import compose
    from compiler.core.pipeline import compile_config

    model, features, data = DATASETS[dataset]
    selection = [f"model={model}", f"features={features}", f"data={data}", *overrides]
    return compile_config(compose(selection), output_dir=output_dir, overrides=selection)


def load_splits(result: Any) -> Any:
    """The dataset's splits, loaded as ``run=local`` loads them (a ``LoadedData``)."""
    from compiler.core.compose import compose
    from compiler.data import as_data_config, load_data
    from compiler.local.run import raw_schema

    config = result.config
    data = compose([f"model={config.model.name}", f"features={config.features.name}",
                    f"data={_data_name(config.features.name)}"]).data
    target = config.features.target.column if config.features.target else None
    return load_data(as_data_config(data), raw_schema(result), target)


def _data_name(features: str) -> str:
    return next(data for _, f, data in DATASETS.values() if f == features)


def transform_kinds(result: Any) -> dict[str, str]:
    from compiler.local.run import _transform_kinds, raw_schema

    return _transform_kinds(raw_schema(result))


def transformed(dataset: str, scratch: Path) -> tuple[str, Any]:
    """(Transform output directory, CompileResult) for ``dataset``: the local runner's cached
    output when it has one, else a fresh Transform, stored in that cache for next time."""
    from compiler.local.run import _store_in_cache, transform_cache_key
    from compiler.runner.product_table import product_columns
    from compiler.runner.transform import run_transform

    result = compile_modules(scratch / f"modules-{dataset}", dataset)
    loaded = load_splits(result)
    key = transform_cache_key(loaded.splits, result.sources["transform_module.py"])
    cached = ROOT / ".recforge" / "transform_cache" / key
    if (cached / "DONE").exists():
        return str(cached), result
    target = scratch / f"transform-{dataset}"
    run_transform(loaded.splits, transform_kinds(result),
                  scratch / f"modules-{dataset}" / "transform_module.py", str(target),
                  product_columns=product_columns(result.plan, result.config.features.product_id))
    _store_in_cache(target, cached)
    return str(cached), result
