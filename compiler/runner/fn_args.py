"""The ``fn_args`` a Trainer module's ``run_fn`` receives, outside TFX.

TFX builds ``tfx.components.FnArgs``; recforge's local and Vertex AI runners build this
dataclass instead, with the fields the trainer contract lets a module use and the same names.
Paths are strings because they may be ``gs://`` URIs; they are found with ``tf.io.gfile`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.runner._tf import import_tf

TRANSFORM_GRAPH_DIR = "transform_graph"
TRANSFORMED_EXAMPLES_DIR = "transformed_examples"
SERVING_MODEL_DIR = "serving_model"
MODEL_RUN_DIR = "model_run"


@dataclass
class FnArgs:
    """The trainer contract's ``fn_args`` fields (a subset of TFX's ``FnArgs``)."""

    train_files: list[str]
    eval_files: list[str]
    #: the transform graph directory (what ``tft.TFTransformOutput`` opens)
    transform_output: str
    serving_model_dir: str
    model_run_dir: str
    custom_config: dict[str, Any] = field(default_factory=dict)
    train_steps: int | None = None
    eval_steps: int | None = None
    schema_path: str | None = None

    @property
    def transform_graph_path(self) -> str:
        """TFX's older name for :attr:`transform_output`."""
        return self.transform_output


def _join(base: str, *parts: str) -> str:
    # String joining, not os.path: the base may be a gs:// URI.
    return "/".join([base.rstrip("/"), *parts])


def _resolve_artifact_dir(path: str, marker: str) -> str:
    """``path`` itself when it holds ``marker``; else its only child that does.

    TFX's local orchestrators put an execution-id level under each artifact
    (``Transform/transform_graph/7/``); Vertex Pipelines do not. Both are accepted.
    """
    gfile = import_tf().io.gfile
    if gfile.exists(_join(path, marker)):
        return path.rstrip("/")
    if gfile.isdir(path):
        children = [c.rstrip("/") for c in gfile.listdir(path)]
        matches = [c for c in children if gfile.exists(_join(path, c, marker))]
        if len(matches) == 1:
            return _join(path, matches[0])
    raise FileNotFoundError(f"no {marker!r} under {path}")


def split_file_pattern(examples_dir: str, split: str) -> str:
    """The file pattern of ``Split-<split>`` under a transformed_examples directory.

    ``*.gz`` when the split has gzip files (TFX's naming), else every file in it (``*``, what
    TFX itself passes). Raises FileNotFoundError when the split has no files.
    """
    gfile = import_tf().io.gfile
    split_dir = _join(examples_dir, f"Split-{split}")
    for pattern in (_join(split_dir, "*.gz"), _join(split_dir, "*")):
        if gfile.glob(pattern):
            return pattern
    raise FileNotFoundError(f"split {split!r} has no files in {split_dir}")


def _eval_files(examples_dir: str) -> list[str]:
    """``[pattern]`` of the eval split, or ``[]`` when there is none (a two-way split, whose
    trainer then skips validation); a ``Split-eval`` without files is still an error."""
    if not import_tf().io.gfile.exists(_join(examples_dir, "Split-eval")):
        return []
    return [split_file_pattern(examples_dir, "eval")]


def fn_args_from_transform(
    transform_dir: str,
    run_dir: str,
    custom_config: Mapping[str, Any] | None = None,
    *,
    train_steps: int | None = None,
    eval_steps: int | None = None,
    schema_path: str | None = None,
) -> FnArgs:
    """FnArgs for training on a Transform output root.

    Args:
        transform_dir: a Transform output root (``transform_graph/`` and
            ``transformed_examples/Split-train[|eval][|test]/``), local or a URI; without
            ``Split-eval`` (a two-way split) ``eval_files`` is empty.
        run_dir: where this run writes: ``<run_dir>/serving_model`` and ``<run_dir>/model_run``.
        custom_config: passed to ``run_fn`` as ``fn_args.custom_config`` (e.g. ``epochs``).
        train_steps, eval_steps, schema_path: passed through.
    """
    transform_dir = transform_dir.rstrip("/")
    transform_graph = _resolve_artifact_dir(
        _join(transform_dir, TRANSFORM_GRAPH_DIR), "transform_fn"
    )
    examples = _resolve_artifact_dir(_join(transform_dir, TRANSFORMED_EXAMPLES_DIR), "Split-train")
    run_dir = run_dir.rstrip("/")
    return FnArgs(
        train_files=[split_file_pattern(examples, "train")],
        eval_files=_eval_files(examples),
        transform_output=transform_graph,
        serving_model_dir=_join(run_dir, SERVING_MODEL_DIR),
        model_run_dir=_join(run_dir, MODEL_RUN_DIR),
        custom_config=dict(custom_config or {}),
        train_steps=train_steps,
        eval_steps=eval_steps,
        schema_path=schema_path,
    )


__all__ = ["FnArgs", "fn_args_from_transform", "split_file_pattern"]
