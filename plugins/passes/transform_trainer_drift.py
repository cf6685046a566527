"""transform-trainer-drift: the trainer reads a feature the Transform module does not output."""

from __future__ import annotations

import difflib
import os
from typing import Any, ClassVar

import libcst as cst

from compiler.passes import Location, Pass, Severity, SourceFile
from compiler.passes.consts import UNRESOLVED, ConstEval, ConstWalker
from compiler.passes.core import dotted_name, string_value, walk

#: Names under which trainer code holds a features dict.
FEATURE_VARS = frozenset(
    {
        "features", "feature_dict", "transformed_features", "transformed", "batch", "feats",
        "parsed_features", "transformed_inputs",
    }
)
_FEATURE_METHODS = frozenset({"call", "compute_loss", "train_step", "test_step", "__call__"})
_SPECS = frozenset(
    {"FixedLenFeature", "VarLenFeature", "FixedLenSequenceFeature", "RaggedFeature"}
)
#: The recforge naming convention for transformed features (see docs/trainer contract): a
#: read with one of these suffixes cannot be a raw feature.
TRANSFORMED_SUFFIXES = ("_id", "_bucket", "_norm", "_sin", "_cos", "_target", "_xf")

_INT = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
_FLOAT = frozenset({"float16", "bfloat16", "float32", "float64", "float", "half", "double"})
_INT_PRODUCERS = frozenset(
    {
        "compute_and_apply_vocabulary", "apply_vocabulary", "bucketize", "apply_buckets",
        "hash_strings", "to_hash_bucket_fast", "to_hash_bucket_strong", "to_hash_bucket",
        "cross_hashed", "string_to_hash_bucket_fast", "argmax", "argmin",
        "bucketize_per_key", "apply_buckets_with_interpolation_int",
    }
)
_FLOAT_PRODUCERS = frozenset(
    {
        "scale_to_z_score", "scale_to_0_1", "scale_by_min_max", "scale_to_gaussian",
        "scale_to_z_score_per_key", "scale_by_min_max_per_key", "sin", "cos", "log1p", "log",
        "sqrt", "exp", "one_hot", "sigmoid", "tanh", "truediv", "divide", "reduce_mean",
    }
)
_STRING_PRODUCERS = frozenset({"as_string", "join", "format", "regex_replace", "substr"})
_PASSTHROUGH = frozenset(
    {
        "squeeze", "reshape", "expand_dims", "identity", "ensure_shape", "to_dense",
        "clip_by_value", "abs", "round", "minimum", "maximum", "reduce_sum", "where",
        "fill_in_missing", "_fill_in_missing", "sparse_tensor_to_dense_with_shape",
    }
)


def dtype_kind(name: str | None) -> str | None:
    """"int" / "float" / "string" for a dtype name like int64, tf.float32, 'string'."""
    if not name:
        return None
    last = name.rsplit(".", 1)[-1]
    if last in _INT:
        return "int"
    if last in _FLOAT:
        return "float"
    if last in ("string", "str", "bytes"):
        return "string"
    return None


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

    # -- the Transform side -------------------------------------------------------------------
    def _outputs(self, sf: SourceFile) -> _Outputs:
        fn = _functions(sf)["preprocessing_fn"]
        consts = ConstEval(sf)
        out = _Outputs()
        inputs_name = fn.params.params[0].name.value if fn.params.params else "inputs"
        out_vars: set[str] = set()
        for node in walk(fn.body):
            if isinstance(node, cst.Return) and node.value is not None:
                if isinstance(node.value, cst.Name):
                    out_vars.add(node.value.value)
                elif not isinstance(node.value, cst.Dict):
                    out.open = True
        local_values: dict[str, cst.BaseExpression] = {}
        local_functions = _functions(sf)

        def visit(node: cst.CSTNode, env: dict[str, Any]) -> None:
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    t = target.target
                    if isinstance(t, cst.Subscript) and _name_of(t.value) in out_vars:
                        key = consts.eval(t.slice[0].slice.value, env) if _index(t) else None
                        out.add(key, node.value, node, env)
                    elif isinstance(t, cst.Name) and t.value in out_vars:
                        if isinstance(node.value, cst.Dict):
                            out.add_dict(node.value, consts, env)
                        elif not _empty_dict(node.value):
                            out.open = True
                    elif isinstance(t, cst.Name):
                        local_values[t.value] = node.value
            elif isinstance(node, cst.Return) and isinstance(node.value, cst.Dict):
                out.add_dict(node.value, consts, env)
            elif isinstance(node, cst.Call):
                func = node.func
                if (
                    isinstance(func, cst.Attribute)
                    and _name_of(func.value) in out_vars
                    and func.attr.value in ("update", "setdefault", "__setitem__")
                ):
                    if func.attr.value == "update" and node.args and isinstance(
                        node.args[0].value, cst.Dict
                    ):
                        out.add_dict(node.args[0].value, consts, env)
                    else:
                        out.open = True
                elif (
                    isinstance(func, cst.Name)
                    and func.value in local_functions
                    and any(_name_of(a.value) in out_vars for a in node.args)
                ):
                    out.open = True  # a helper fills the outputs: we cannot see what
                elif (
                    isinstance(func, cst.Attribute)
                    and _name_of(func.value) == inputs_name
                    and func.attr.value in ("get", "pop")
                    and node.args
                ):
                    out.add_raw(consts.eval(node.args[0].value, env))
                elif (
                    isinstance(func, cst.Attribute)
                    and _name_of(func.value) == inputs_name
                    and func.attr.value in ("keys", "items", "values", "copy")
                ):
                    out.raw_open = True
            elif isinstance(node, cst.Subscript) and _name_of(node.value) == inputs_name:
                out.add_raw(consts.eval(node.slice[0].slice.value, env) if _index(node) else None)
            elif isinstance(node, cst.StarredDictElement) and _name_of(node.value) == inputs_name:
                out.open = out.raw_open = True

        ConstWalker(consts, visit).run_function(fn)
        out.local_values = local_values
        out.sf = sf
        return out

    # -- the trainer side ---------------------------------------------------------------------
    def _reads(self, sf: SourceFile, skip: cst.FunctionDef | None) -> list[_Read]:
        consts = ConstEval(sf)
        names = set(FEATURE_VARS)
        for fn in sf.nodes(cst.FunctionDef):
            params = [p.name.value for p in fn.params.params]
            if fn.name.value in _FEATURE_METHODS and len(params) >= 2 and params[0] == "self":
                names.add(params[1])
        for call in sf.nodes(cst.Call):
            if (
                isinstance(call.func, cst.Attribute)
                and call.func.attr.value == "map"
                and call.args
                and isinstance(call.args[0].value, cst.Lambda)
            ):
                names.update(p.name.value for p in call.args[0].value.params.params)
        reads: list[_Read] = []

        def key_of(expr: cst.BaseExpression, env: dict[str, Any]) -> str | None:
            value = consts.eval(expr, env)
            return value if isinstance(value, str) else None

        def visit(node: cst.CSTNode, env: dict[str, Any]) -> None:
            if isinstance(node, cst.Subscript):
                if _name_of(node.value) in names and _index(node):
                    key = key_of(node.slice[0].slice.value, env)
                    if key is not None:
                        reads.append(_Read(key, None, node, "read"))
                return
            if not isinstance(node, cst.Call):
                return
            func = node.func
            last = (dotted_name(func) or "").rsplit(".", 1)[-1]
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value in ("get", "pop")
                and _name_of(func.value) in names
                and node.args
            ):
                key = key_of(node.args[0].value, env)
                if key is not None:
                    reads.append(_Read(key, None, node, "read"))
            elif last in _SPECS:
                key = self._spec_key(sf, node, consts, env)
                if key is not None:
                    dtype_arg = _arg(node, 0 if last == "VarLenFeature" else 1, "dtype")
                    if last == "RaggedFeature":
                        dtype_arg = _arg(node, 0, "dtype")
                    kind = dtype_kind(_dtype_name(dtype_arg))
                    reads.append(_Read(key, kind, node, f"tf.io.{last}"))
            elif last == "Input":
                name_arg = _arg(node, None, "name")
                key = key_of(name_arg, env) if name_arg is not None else None
                if key is not None:
                    reads.append(_Read(key, None, node, "keras Input"))
            elif last.startswith(("numeric_column", "categorical_column_with_")):
                key_arg = _arg(node, 0, "key")
                key = key_of(key_arg, env) if key_arg is not None else None
                if key is not None:
                    dtype = _dtype_name(_arg(node, None, "dtype"))
                    if last == "numeric_column":
                        kind = dtype_kind(dtype) or "float"
                    elif last == "categorical_column_with_identity":
                        kind = "int"
                    elif last == "categorical_column_with_hash_bucket":
                        kind = dtype_kind(dtype) or "string"
                    else:
                        kind = dtype_kind(dtype)
                    reads.append(_Read(key, kind, node, f"feature column {last}"))
            for arg in node.args:
                if arg.keyword is not None and arg.keyword.value == "label_key":
                    key = key_of(arg.value, env)
                    if key is not None:
                        reads.append(_Read(key, None, arg, "label_key"))

        walker = ConstWalker(consts, visit)
        for stmt in sf.module.body:
            if stmt is skip:
                continue
            walker.run_stmt(stmt, {})
        return reads

    @staticmethod
    def _spec_key(
        sf: SourceFile, node: cst.Call, consts: ConstEval, env: dict[str, Any]
    ) -> str | None:
        parent = sf.parent(node)
        key: Any = UNRESOLVED
        if isinstance(parent, cst.DictElement) and parent.value is node:
            key = consts.eval(parent.key, env)
        elif isinstance(parent, cst.DictComp) and parent.value is node:
            key = consts.eval(parent.key, env)
        elif isinstance(parent, cst.Assign) and parent.value is node:
            target = parent.targets[0].target
            if isinstance(target, cst.Subscript) and _index(target):
                key = consts.eval(target.slice[0].slice.value, env)
        return key if isinstance(key, str) else None

    # -- comparing ----------------------------------------------------------------------------
    def _compare(self, transform: SourceFile, trainer: SourceFile) -> None:
        out = self._outputs(transform)
        skip = _functions(trainer).get("preprocessing_fn") if trainer is transform else None
        seen: set[tuple[str, cst.CSTNode]] = set()
        for read in self._reads(trainer, skip):
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


class _Read:
    __slots__ = ("key", "kind", "node", "what")

    def __init__(self, key: str, kind: str | None, node: cst.CSTNode, what: str) -> None:
        self.key, self.kind, self.node, self.what = key, kind, node, what


class _Outputs:
    """What ``preprocessing_fn`` returns: key -> producing statement, plus the raw keys read."""

    def __init__(self) -> None:
        self.keys: dict[str, cst.CSTNode] = {}
        self.values: dict[str, cst.BaseExpression] = {}
        self.open = False
        self.raw: set[str] = set()
        self.raw_open = False
        self.local_values: dict[str, cst.BaseExpression] = {}
        self.sf: SourceFile | None = None

    def add(self, key: Any, value: cst.BaseExpression, node: cst.CSTNode, env: Any) -> None:
        if not isinstance(key, str):
            self.open = True
            return
        self.keys.setdefault(key, node)
        self.values.setdefault(key, value)

    def add_dict(self, value: cst.Dict, consts: ConstEval, env: dict[str, Any]) -> None:
        for element in value.elements:
            if isinstance(element, cst.DictElement):
                self.add(consts.eval(element.key, env), element.value, element, env)
            else:
                self.open = True

    def add_raw(self, key: Any) -> None:
        if isinstance(key, str):
            self.raw.add(key)
        else:
            self.raw_open = True

    def kind(self, key: str) -> str | None:
        return self._infer(self.values.get(key), 0)

    def _infer(self, expr: cst.BaseExpression | None, depth: int) -> str | None:
        if expr is None or depth > 6:
            return None
        if isinstance(expr, cst.Name):
            return self._infer(self.local_values.get(expr.value), depth + 1)
        if isinstance(expr, cst.BinaryOperation):
            kinds = {self._infer(expr.left, depth + 1), self._infer(expr.right, depth + 1)}
            if "float" in kinds or isinstance(expr.operator, cst.Divide):
                return "float"
            return "int" if kinds == {"int"} else None
        if not isinstance(expr, cst.Call):
            return None
        last = (dotted_name(expr.func) or "").rsplit(".", 1)[-1]
        if last == "cast":
            return dtype_kind(_dtype_name(_arg(expr, 1, "dtype")))
        if last in _INT_PRODUCERS:
            return "int"
        if last in _FLOAT_PRODUCERS:
            return "float"
        if last in _STRING_PRODUCERS and (dotted_name(expr.func) or "").startswith(
            ("tf.strings", "tensorflow.strings")
        ):
            return "string"
        if last in _PASSTHROUGH and expr.args:
            index = 1 if last == "where" and len(expr.args) == 3 else 0
            return self._infer(expr.args[index].value, depth + 1)
        return None


def _functions(sf: SourceFile) -> dict[str, cst.FunctionDef]:
    return sf.top_level_functions()


def _name_of(expr: cst.CSTNode) -> str | None:
    return expr.value if isinstance(expr, cst.Name) else None


def _index(node: cst.Subscript) -> bool:
    return len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)


def _empty_dict(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Dict):
        return True
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value == "dict"
        and not expr.args
    )


def _arg(call: cst.Call, index: int | None, keyword: str) -> cst.BaseExpression | None:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == keyword:
            return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if index is not None and index < len(positional):
        return positional[index].value
    return None


def _dtype_name(expr: cst.BaseExpression | None) -> str | None:
    if expr is None:
        return None
    return string_value(expr) or dotted_name(expr)
