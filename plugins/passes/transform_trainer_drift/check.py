"""transform-trainer-drift: the trainer reads a feature the Transform module does not output."""

from __future__ import annotations

import difflib
import os
from typing import ClassVar

import libcst as cst

from compiler.model import TRANSFORMED_SUFFIXES
from compiler.passes import Location, Pass, Severity, SourceFile
from plugins.passes.transform_trainer_drift.contract import trainer_reads, transform_outputs


class TransformTrainerDrift(Pass):
    """The trainer reads a feature the Transform module never outputs, or expects another dtype.

    Transform and trainer are written (or generated) separately but must agree on every
    transformed feature name and type; a mismatch surfaces only when the trainer runs on real
    Transform output ("Feature customer_id_idx is required but could not be found", or a parse
    error for a FixedLenFeature of the wrong type).

    The pass sees every file of the compile: the Transform module is the one defining
    ``preprocessing_fn``, the trainer the one defining ``run_fn``/``trainer_fn`` (one file may be
    both, as in TFX's examples; with several candidates they are paired by directory). Output
    names are folded from ``outputs[...] = ...``, dict literals and ``update`` in
    ``preprocessing_fn`` (loops over constant key lists and helpers like
    ``_transformed_name(key)`` included) and their types inferred from the tf.Transform call
    that makes them (``compute_and_apply_vocabulary``/``bucketize``/hashing: int,
    ``scale_to_z_score``/``sin``/``log1p``: float, ``tf.cast``). Trainer reads are string keys of
    features dicts (``features["x"]``, ``.get``/``.pop``, parameters of ``call``/``compute_loss``,
    lambdas given to ``.map``), ``tf.io.FixedLenFeature``/``VarLenFeature`` specs,
    ``label_key=``, ``tf.keras.Input(name=...)`` and feature columns. Raw feature names read by
    ``preprocessing_fn`` are fine to read (serving parses raw examples). When some output name
    cannot be folded, missing names are not reported; when raw input names cannot be folded,
    only names with a transformed suffix (``_id``, ``_bucket``, ``_norm``, ``_sin``, ``_cos``,
    ``_target``, ``_xf``) are. Types are compared as int/float/string, only where the trainer
    fixes one (specs and identity/numeric feature columns: Keras ``Input`` casts).
    """

    name: ClassVar[str] = "transform-trainer-drift"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = "trainer and Transform module disagree on a feature"
    HAZARD: ClassVar[str] = "A feature read by the trainer that the Transform module never outputs"
    project_wide: ClassVar[bool] = True

    _TRANSFORM = '''\
import tensorflow as tf
import tensorflow_transform as tft

_EMBEDDED = ["customer_id", "product_id"]


def _name(key, suffix):
    return f"{key}_{suffix}"


def preprocessing_fn(inputs):
    outputs = {}
    for key in _EMBEDDED:
        outputs[_name(key, "id")] = tft.compute_and_apply_vocabulary(
            inputs[key], num_oov_buckets=1, vocab_filename=f"{key}_vocab"
        )
    outputs["cust_value_norm"] = tft.scale_to_z_score(inputs["cust_value"])
    outputs["sales_target"] = tf.math.log1p(tf.cast(inputs["sales"], tf.float32))
    return outputs
'''
    VALID: ClassVar[tuple[dict[str, str], ...]] = (
        {
            "transform_module.py": _TRANSFORM,
            "trainer_module.py": '''\
import tensorflow as tf

_SPEC = {
    "customer_id_id": tf.io.FixedLenFeature([], tf.int64),
    "cust_value_norm": tf.io.FixedLenFeature([], tf.float32),
}


class Model(tf.keras.Model):
    def call(self, inputs):
        return self.tower(inputs["customer_id_id"], inputs["product_id_id"])


def run_fn(fn_args):
    ds = tf.data.TFRecordDataset(fn_args.train_files).map(
        lambda x: tf.io.parse_example(x, _SPEC)
    )
    labels = ds.map(lambda f: f.pop("sales_target"))
    raw = {"customer_id": tf.io.FixedLenFeature([], tf.string)}  # serving: raw names
    return labels, raw
''',
        },
    )
    INVALID: ClassVar[tuple[dict[str, str], ...]] = (
        {
            "transform_module.py": _TRANSFORM,
            "trainer_module.py": '''\
import tensorflow as tf

_SPEC = {
    "customer_id_id": tf.io.FixedLenFeature([], tf.string),  # <-
    "cust_value_norm": tf.io.FixedLenFeature([], tf.float32),
}


class Model(tf.keras.Model):
    def compute_loss(self, features, training=False):
        return self.tower(features["product_idx"])  # <-


def run_fn(fn_args):
    return tf.data.TFRecordDataset(fn_args.train_files).map(
        lambda x: tf.io.parse_example(x, _SPEC)
    )
''',
        },
    )

    def check_project(self) -> None:
        transforms = [sf for sf in self.project if "preprocessing_fn" in _functions(sf)]
        trainers = [
            sf for sf in self.project
            if {"run_fn", "trainer_fn"} & set(_functions(sf))
        ]
        for trainer in trainers:
            transform = self._pair(trainer, transforms)
            if transform is not None:
                self._compare(transform, trainer)

    @staticmethod
    def _pair(trainer: SourceFile, transforms: list[SourceFile]) -> SourceFile | None:
        if trainer in transforms:
            return trainer
        separate = [t for t in transforms if "run_fn" not in _functions(t)]
        here = [t for t in separate if os.path.dirname(t.path) == os.path.dirname(trainer.path)]
        if len(here) == 1:
            return here[0]
        if not here and len(separate) == 1:
            return separate[0]
        return None  # ambiguous: better silent than wrong

    def _compare(self, transform: SourceFile, trainer: SourceFile) -> None:
        out = transform_outputs(transform)
        skip = _functions(trainer).get("preprocessing_fn") if trainer is transform else None
        seen: set[tuple[str, cst.CSTNode]] = set()
        for read in trainer_reads(trainer, skip):
            if (read.key, read.node) in seen:
                continue
            seen.add((read.key, read.node))
            if read.key in out.keys:
                kind, where = out.kind(read.key), out.keys[read.key]
                if read.kind and kind and read.kind != kind:
                    self.report(
                        read.node,
                        f"trainer reads `{read.key}` as {read.kind} ({read.what}) but "
                        f"{transform.path} outputs it as {kind} (line "
                        f"{transform.pos(where)[0]})",
                        file=trainer,
                        related=[transform.location(where, f"`{read.key}` produced here")],
                    )
                continue
            if out.open or read.key in out.raw:
                continue
            if out.raw_open and not read.key.endswith(TRANSFORMED_SUFFIXES):
                continue
            close = difflib.get_close_matches(read.key, sorted(out.keys), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            fn = _functions(transform)["preprocessing_fn"]
            self.report(
                read.node,
                f"trainer reads feature `{read.key}` ({read.what}) that {transform.path} "
                f"never outputs{hint}",
                file=trainer,
                related=[Location(transform.path, *transform.pos(fn), "preprocessing_fn")],
            )


def _functions(sf: SourceFile) -> dict[str, cst.FunctionDef]:
    return sf.top_level_functions()
