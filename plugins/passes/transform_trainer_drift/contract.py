"""The feature contract between a Transform module and a trainer, read statically.

``transform_outputs`` folds the names (and infers the int/float/string kind) of what
``preprocessing_fn`` outputs; ``trainer_reads`` finds every feature name a trainer reads. The
``transform-trainer-drift`` pass (``check``) compares the two.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import libcst as cst

from compiler.passes.source import SourceFile, dotted_name, string_value, walk
from plugins.passes.transform_trainer_drift.consts import UNRESOLVED, ConstEval, ConstWalker

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


def transform_outputs(sf: SourceFile) -> TransformOutputs:
    """What ``preprocessing_fn`` of ``sf`` outputs, and which raw features it reads."""
    fn = sf.top_level_functions()["preprocessing_fn"]
    consts = ConstEval(sf)
    out = TransformOutputs()
    inputs_name = fn.params.params[0].name.value if fn.params.params else "inputs"
    out_vars: set[str] = set()
    for node in walk(fn.body):
        if isinstance(node, cst.Return) and node.value is not None:
            if isinstance(node.value, cst.Name):
                out_vars.add(node.value.value)
            elif not isinstance(node.value, cst.Dict):
                out.open = True
    local_values: dict[str, cst.BaseExpression] = {}
    local_functions = sf.top_level_functions()

    def visit(node: cst.CSTNode, env: dict[str, Any]) -> None:
        if isinstance(node, cst.Assign):
            for target in node.targets:
                t = target.target
                if isinstance(t, cst.Tuple | cst.List):
                    # outputs["a_sin"], outputs["a_cos"] = _cycle(...): names known,
                    # types only when the right side is a literal tuple too.
                    values = (
                        [e.value for e in node.value.elements]
                        if isinstance(node.value, cst.Tuple | cst.List)
                        and len(node.value.elements) == len(t.elements)
                        else [None] * len(t.elements)
                    )
                    for element, value in zip(t.elements, values, strict=True):
                        item = element.value
                        if isinstance(item, cst.Subscript) and _name_of(item.value) in out_vars:
                            key = (
                                consts.eval(item.slice[0].slice.value, env)
                                if _index(item)
                                else None
                            )
                            out.add(key, value, node, env)
                    continue
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


def trainer_reads(sf: SourceFile, skip: cst.FunctionDef | None = None) -> list[FeatureRead]:
    """Every feature name the module reads with a key we can fold (``skip``: a function to
    leave out, e.g. ``preprocessing_fn`` when one file is both modules)."""
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
    reads: list[FeatureRead] = []

    def key_of(expr: cst.BaseExpression, env: dict[str, Any]) -> str | None:
        value = consts.eval(expr, env)
        return value if isinstance(value, str) else None

    def visit(node: cst.CSTNode, env: dict[str, Any]) -> None:
        if isinstance(node, cst.Subscript):
            if _name_of(node.value) in names and _index(node):
                key = key_of(node.slice[0].slice.value, env)
                if key is not None:
                    reads.append(FeatureRead(key, None, node, "read"))
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
                reads.append(FeatureRead(key, None, node, "read"))
        elif last in _SPECS:
            key = _spec_key(sf, node, consts, env)
            if key is not None:
                dtype_arg = _arg(node, 0 if last == "VarLenFeature" else 1, "dtype")
                if last == "RaggedFeature":
                    dtype_arg = _arg(node, 0, "dtype")
                kind = dtype_kind(_dtype_name(dtype_arg))
                reads.append(FeatureRead(key, kind, node, f"tf.io.{last}"))
        elif last == "Input":
            name_arg = _arg(node, None, "name")
            key = key_of(name_arg, env) if name_arg is not None else None
            if key is not None:
                reads.append(FeatureRead(key, None, node, "keras Input"))
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
                reads.append(FeatureRead(key, kind, node, f"feature column {last}"))
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "label_key":
                key = key_of(arg.value, env)
                if key is not None:
                    reads.append(FeatureRead(key, None, arg, "label_key"))

    walker = ConstWalker(consts, visit)
    for stmt in sf.module.body:
        if stmt is skip:
            continue
        if isinstance(stmt, cst.ClassDef):
            # Methods often read names held in self.<attr>, set in __init__ from a
            # constructor argument: walk the class once per constructor call we can fold.
            for env in _instance_envs(sf, stmt, consts):
                walker.run_stmt(stmt, env)
            continue
        walker.run_stmt(stmt, {})
    return reads


def _instance_envs(
    sf: SourceFile, cls: cst.ClassDef, consts: ConstEval
) -> list[dict[str, Any]]:
    """``{"self.attr": value}`` for each call ``Cls(...)`` in the module that folds."""
    init = next(
        (s for s in cls.body.body
         if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"),
        None,
    )
    if init is None:
        return [{}]
    params = [p.name.value for p in init.params.params][1:]
    envs: list[dict[str, Any]] = []
    for call in sf.nodes(cst.Call):
        if not (isinstance(call.func, cst.Name) and call.func.value == cls.name.value):
            continue
        bound: dict[str, Any] = {}
        positional = [a for a in call.args if a.keyword is None and not a.star]
        for name, arg in zip(params, positional, strict=False):
            bound[name] = consts.eval(arg.value, {})
        for arg in call.args:
            if arg.keyword is not None:
                bound[arg.keyword.value] = consts.eval(arg.value, {})
        attrs: dict[str, Any] = {}
        for stmt in init.body.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    dotted = dotted_name(small.targets[0].target)
                    if dotted is not None and dotted.startswith("self."):
                        value = consts.eval(small.value, bound)
                        if value is not UNRESOLVED:
                            attrs[dotted] = value
        if attrs:
            envs.append(attrs)
    return envs or [{}]


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


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureRead:
    """A feature name the trainer reads: key, the dtype kind it fixes (if any), where, how."""

    key: str
    kind: str | None
    node: cst.CSTNode
    what: str


class TransformOutputs:
    """What ``preprocessing_fn`` returns (key -> producing node), and the raw keys it reads.

    ``open``: some output name could not be folded; ``raw_open``: some raw input name could not.
    """

    def __init__(self) -> None:
        self.keys: dict[str, cst.CSTNode] = {}
        self.values: dict[str, cst.BaseExpression] = {}
        self.open = False
        self.raw: set[str] = set()
        self.raw_open = False
        self.local_values: dict[str, cst.BaseExpression] = {}
        self.sf: SourceFile | None = None

    def add(
        self, key: Any, value: cst.BaseExpression | None, node: cst.CSTNode, env: Any
    ) -> None:
        if not isinstance(key, str):
            self.open = True
            return
        self.keys.setdefault(key, node)
        if value is not None:
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
