"""The autofix of ``gcs-local-io``: replace a local-filesystem call by its ``tf.io.gfile``
equivalent, built as libcst nodes around the call's own argument nodes, and ask for
``import tensorflow as tf`` inside the function where ``tf`` is not bound (so the module keeps
importing TensorFlow lazily). ``compiler.passes.cst_fix`` turns the two into a ``Fix``.
"""

from __future__ import annotations

import functools
import re

import libcst as cst

from compiler.passes import AddImport, Fix, NodeChange, cst_fix
from compiler.passes.dataflow import CallInfo
from compiler.passes.source import dotted_name, string_value

#: How to spell ``tensorflow`` at a call, and the import to add when it is not bound.
_TfAlias = tuple[str, AddImport | None]
_ATOMS = (
    cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.SimpleString, cst.FormattedString,
    cst.ConcatenatedString,
)
_UTF8 = re.compile(r"^utf-?8$", re.IGNORECASE)
_NO_SPACE = cst.AssignEqual(
    whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
)


class GfileFix:
    """The fix half of ``GcsLocalIo`` (mixed in; uses its ``file``)."""

    def _fix_call(self, call: CallInfo, kind: str) -> Fix | None:
        positional = [a.node.value for a in call.args if a.keyword is None]
        if any(a.star for a in call.args):
            return None
        keywords = {a.keyword: a.node.value for a in call.args if a.keyword}
        if kind == "unwrap":
            if len(positional) != 1 or keywords:
                return None
            inner = positional[0]
            if not isinstance(inner, _ATOMS):
                inner = _parenthesized(inner)
            return self._make_fix(call.node, inner, "drop the POSIX normalisation", tf=None)
        tf = self._tf_alias(call.node)
        if tf is None:
            return None
        gfile = f"{tf[0]}.io.gfile"
        new: cst.BaseExpression | None = None
        one = len(positional) == 1
        if kind in ("exists", "isdir", "listdir", "mkdir", "remove", "stat", "rmtree"):
            if one and not keywords:
                new = _call(f"{gfile}.{kind}", *positional)
        elif kind == "makedirs":
            if one and set(keywords) <= {"exist_ok", "mode"}:
                new = _call(f"{gfile}.makedirs", *positional)
        elif kind == "isfile":
            if one and not keywords and _duplicable(positional[0]):
                new = _is_file(gfile, positional[0])
        elif kind == "getsize":
            if one and not keywords:
                new = cst.Attribute(_call(f"{gfile}.stat", *positional), cst.Name("length"))
        elif kind == "getmtime":
            if one and not keywords:
                new = _parenthesized(cst.BinaryOperation(
                    cst.Attribute(_call(f"{gfile}.stat", *positional), cst.Name("mtime_nsec")),
                    cst.Divide(), cst.Float("1e9"),
                ))
        elif kind in ("rename", "replace", "copyfile"):
            if len(positional) == 2 and not keywords:
                target = "copy" if kind == "copyfile" else "rename"
                overwrite = {} if kind == "rename" else {"overwrite": cst.Name("True")}
                new = _call(f"{gfile}.{target}", *positional, **overwrite)
        elif kind == "walk":
            if one and set(keywords) <= {"topdown", "onerror"}:
                new = _call(f"{gfile}.walk", *positional, **keywords)
        elif kind == "glob":
            if one and not keywords:
                new = _call(f"{gfile}.glob", *positional)
        elif kind == "open":
            new = _gfile_open(gfile, positional, keywords)
        if new is None:
            return None
        return self._make_fix(call.node, new, f"use {gfile}", tf=tf)

    def _fix_path(self, call: CallInfo, kind: str, arg: cst.BaseExpression) -> Fix | None:
        tf = self._tf_alias(call.node)
        if tf is None:
            return None
        gfile = f"{tf[0]}.io.gfile"
        args = [a.value for a in call.node.args if a.keyword is None]
        keywords = [a for a in call.node.args if a.keyword is not None]
        new: cst.BaseExpression | None = None
        if kind in ("exists", "isdir", "remove", "stat") and not call.node.args:
            new = _call(f"{gfile}.{kind}", arg)
        elif kind == "isfile" and not call.node.args and _duplicable(arg):
            new = _is_file(gfile, arg)
        elif kind == "makedirs" and all(
            a.keyword is not None and a.keyword.value in ("parents", "exist_ok", "mode")
            for a in call.node.args
        ):
            new = _call(f"{gfile}.makedirs", arg)
        elif kind in ("read_text", "read_bytes") and not call.node.args:
            mode = '"rb"' if kind == "read_bytes" else '"r"'
            new = _method(_call(f"{gfile}.GFile", arg, cst.SimpleString(mode)), "read")
        elif kind in ("write_text", "write_bytes") and len(args) == 1 and not keywords:
            mode = '"wb"' if kind == "write_bytes" else '"w"'
            new = _method(_call(f"{gfile}.GFile", arg, cst.SimpleString(mode)), "write", args[0])
        elif kind == "open" and len(args) <= 1 and not keywords:
            new = _call(f"{gfile}.GFile", arg, *args)
        if new is None:
            return None
        return self._make_fix(call.node, new, f"use {gfile}", tf=tf)

    def _make_fix(
        self, node: cst.CSTNode, new: cst.BaseExpression, description: str, *,
        tf: _TfAlias | None
    ) -> Fix:
        assert self.file is not None
        imports = [tf[1]] if tf is not None and tf[1] is not None else []
        return cst_fix(self.file, description, [NodeChange(node, new)], imports)

    def _tf_alias(self, node: cst.CSTNode) -> _TfAlias | None:
        """How to spell ``tensorflow`` at ``node``, and the import to add when it is unbound."""
        sf = self.file
        assert sf is not None
        line = sf.pos(node)[0]
        scopes = [a for a in sf.ancestors(node) if isinstance(a, cst.FunctionDef)]
        for imp in sf.nodes(cst.Import):
            owner = sf.enclosing_function(imp)
            if owner is not None and (owner not in scopes or sf.pos(imp)[0] > line):
                continue  # imported in another function, or later in this one
            for alias in imp.names:
                if dotted_name(alias.name) == "tensorflow":
                    asname = alias.asname
                    local = (
                        asname.name.value
                        if asname is not None and isinstance(asname.name, cst.Name)
                        else "tensorflow"
                    )
                    return local, None
        if "tf" in sf.imports:
            return None  # `tf` means something else here: leave the call for a human
        # At the top of the outermost enclosing function (lazy-import convention), or of the
        # module; a one-line ``def f(): ...`` has no body to import into.
        scope = scopes[-1] if scopes else None
        if scope is not None and not isinstance(scope.body, cst.IndentedBlock):
            return None
        return "tf", AddImport("tensorflow", "tf", scope)


def _dotted(dotted: str) -> cst.Name | cst.Attribute:
    first, *rest = dotted.split(".")
    return functools.reduce(
        lambda value, attr: cst.Attribute(value, cst.Name(attr)), rest, cst.Name(first)
    )


def _call(function: str, *args: cst.BaseExpression, **keywords: cst.BaseExpression) -> cst.Call:
    return cst.Call(_dotted(function), [
        *(cst.Arg(arg) for arg in args),
        *(cst.Arg(value, keyword=cst.Name(key), equal=_NO_SPACE)
          for key, value in keywords.items()),
    ])


def _method(receiver: cst.BaseExpression, method: str, *args: cst.BaseExpression) -> cst.Call:
    return cst.Call(cst.Attribute(receiver, cst.Name(method)), [cst.Arg(arg) for arg in args])


def _parenthesized(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.with_changes(
        lpar=[cst.LeftParen(), *expr.lpar], rpar=[*expr.rpar, cst.RightParen()]
    )


def _is_file(gfile: str, path: cst.BaseExpression) -> cst.BaseExpression:
    """``(gfile.exists(path) and not gfile.isdir(path))``: GFile has no isfile."""
    return _parenthesized(cst.BooleanOperation(
        _call(f"{gfile}.exists", path),
        cst.And(),
        cst.UnaryOperation(cst.Not(), _call(f"{gfile}.isdir", path.deep_clone())),
    ))


def _gfile_open(
    gfile: str, positional: list[cst.BaseExpression], keywords: dict[str, cst.BaseExpression]
) -> cst.BaseExpression | None:
    """``gfile.GFile(path[, mode])`` for ``open(...)``, when nothing else is passed."""
    extra = {k: v for k, v in keywords.items() if k not in ("mode", "file")}
    encoding = extra.pop("encoding", None)
    if encoding is not None and not _UTF8.match(string_value(encoding) or ""):
        return None  # GFile reads UTF-8 only
    if extra or len(positional) > 2 or (not positional and "file" not in keywords):
        return None
    path = positional[0] if positional else keywords["file"]
    mode = positional[1] if len(positional) == 2 else keywords.get("mode")
    return _call(f"{gfile}.GFile", path, *([mode] if mode is not None else []))


def _duplicable(expr: cst.BaseExpression) -> bool:
    """Cheap and side-effect free, so the fix may evaluate it twice."""
    return isinstance(expr, cst.Name | cst.SimpleString) or (
        isinstance(expr, cst.Attribute) and dotted_name(expr) is not None
    )

