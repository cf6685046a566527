"""The autofix of ``gcs-local-io``: rewrite a local-filesystem call to its ``tf.io.gfile``
equivalent, adding ``import tensorflow as tf`` inside the function where ``tf`` is not bound
(so the module keeps importing TensorFlow lazily).
"""

from __future__ import annotations

import re

import libcst as cst

from compiler.passes import Fix, TextEdit
from compiler.passes.dataflow import CallInfo
from compiler.passes.source import dotted_name, string_value

#: How to spell ``tensorflow`` at a call, and the import edit to add when it is not bound.
_TfAlias = tuple[str, TextEdit | None]
_ATOMS = (
    cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.SimpleString, cst.FormattedString,
    cst.ConcatenatedString,
)
_UTF8 = re.compile(r"^utf-?8$", re.IGNORECASE)


class GfileFix:
    """The fix half of ``GcsLocalIo`` (mixed in; uses its ``file``)."""

    def _fix_call(self, call: CallInfo, kind: str) -> Fix | None:
        sf = self.file
        assert sf is not None
        positional = [a for a in call.args if a.keyword is None]
        if any(a.star for a in call.args):
            return None
        keywords = {a.keyword: a.node.value for a in call.args if a.keyword}
        code = [sf.code(a.node.value) for a in positional]
        if kind == "unwrap":
            if len(positional) != 1 or keywords:
                return None
            inner = positional[0].node.value
            text = code[0] if isinstance(inner, _ATOMS) else f"({code[0]})"
            return self._make_fix(call.node, text, "drop the POSIX normalisation", tf=None)
        tf = self._tf_alias(call.node)
        if tf is None:
            return None
        gfile = f"{tf[0]}.io.gfile"
        text: str | None = None
        if kind in ("exists", "isdir", "listdir", "mkdir", "remove", "stat", "rmtree"):
            if len(code) == 1 and not keywords:
                text = f"{gfile}.{kind}({code[0]})"
        elif kind == "makedirs":
            if len(code) == 1 and set(keywords) <= {"exist_ok", "mode"}:
                text = f"{gfile}.makedirs({code[0]})"
        elif kind == "isfile":
            if len(code) == 1 and not keywords and _duplicable(positional[0].node.value):
                text = f"({gfile}.exists({code[0]}) and not {gfile}.isdir({code[0]}))"
        elif kind == "getsize":
            if len(code) == 1 and not keywords:
                text = f"{gfile}.stat({code[0]}).length"
        elif kind == "getmtime":
            if len(code) == 1 and not keywords:
                text = f"({gfile}.stat({code[0]}).mtime_nsec / 1e9)"
        elif kind in ("rename", "replace", "copyfile"):
            if len(code) == 2 and not keywords:
                target = "copy" if kind == "copyfile" else "rename"
                overwrite = "" if kind == "rename" else ", overwrite=True"
                text = f"{gfile}.{target}({code[0]}, {code[1]}{overwrite})"
        elif kind == "walk":
            if len(code) == 1 and set(keywords) <= {"topdown", "onerror"}:
                extra = "".join(f", {k}={sf.code(v)}" for k, v in keywords.items())
                text = f"{gfile}.walk({code[0]}{extra})"
        elif kind == "glob":
            if len(code) == 1 and not keywords:
                text = f"{gfile}.glob({code[0]})"
        elif kind == "open":
            extra_kw = {k: v for k, v in keywords.items() if k not in ("mode", "file")}
            encoding = extra_kw.pop("encoding", None)
            if encoding is not None and not _UTF8.match(string_value(encoding) or ""):
                return None  # GFile reads UTF-8 only
            if extra_kw or len(code) > 2 or (not code and "file" not in keywords):
                return None
            path = code[0] if code else sf.code(keywords["file"])
            mode = code[1] if len(code) == 2 else (
                sf.code(keywords["mode"]) if "mode" in keywords else None
            )
            text = f"{gfile}.GFile({path}, {mode})" if mode else f"{gfile}.GFile({path})"
        if text is None:
            return None
        return self._make_fix(call.node, text, f"use {text.split('(')[0].lstrip('(')}", tf=tf)

    def _fix_path(self, call: CallInfo, kind: str, arg: cst.BaseExpression) -> Fix | None:
        sf = self.file
        assert sf is not None
        tf = self._tf_alias(call.node)
        if tf is None:
            return None
        gfile = f"{tf[0]}.io.gfile"
        path = sf.code(arg)
        args = [sf.code(a.value) for a in call.node.args if a.keyword is None]
        keywords = [a for a in call.node.args if a.keyword is not None]
        text: str | None = None
        if kind in ("exists", "isdir", "remove", "stat") and not call.node.args:
            text = f"{gfile}.{kind}({path})"
        elif kind == "isfile" and not call.node.args and _duplicable(arg):
            text = f"({gfile}.exists({path}) and not {gfile}.isdir({path}))"
        elif kind == "makedirs" and all(
            a.keyword is not None and a.keyword.value in ("parents", "exist_ok", "mode")
            for a in call.node.args
        ):
            text = f"{gfile}.makedirs({path})"
        elif kind in ("read_text", "read_bytes") and not call.node.args:
            mode = '"rb"' if kind == "read_bytes" else '"r"'
            text = f"{gfile}.GFile({path}, {mode}).read()"
        elif kind in ("write_text", "write_bytes") and len(args) == 1 and not keywords:
            mode = '"wb"' if kind == "write_bytes" else '"w"'
            text = f"{gfile}.GFile({path}, {mode}).write({args[0]})"
        elif kind == "open" and len(args) <= 1 and not keywords:
            text = f"{gfile}.GFile({path}, {args[0]})" if args else f"{gfile}.GFile({path})"
        if text is None:
            return None
        return self._make_fix(call.node, text, "use tf.io.gfile", tf=tf)

    def _make_fix(
        self, node: cst.CSTNode, text: str, description: str, *, tf: _TfAlias | None
    ) -> Fix:
        assert self.file is not None
        span = self.file.range(node)
        edits = [
            TextEdit(span.start.line, span.start.column + 1, span.end.line, span.end.column + 1,
                     text)
        ]
        if tf is not None and tf[1] is not None:
            edits.append(tf[1])
        return Fix(description, tuple(edits))

    def _tf_alias(self, node: cst.CSTNode) -> _TfAlias | None:
        """How to spell ``tensorflow`` at ``node``, and the import to add when it is unbound."""
        sf = self.file
        assert sf is not None
        line = sf.pos(node)[0]
        scopes: list[cst.FunctionDef | cst.Module] = [
            a for a in sf.ancestors(node) if isinstance(a, cst.FunctionDef)
        ]
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
        # Insert at the top of the outermost enclosing function (lazy-import convention), or
        # at module level after the leading imports.
        block: cst.FunctionDef | cst.Module = scopes[-1] if scopes else sf.module
        body = block.body.body if isinstance(block, cst.FunctionDef) else block.body
        if isinstance(block, cst.FunctionDef) and not isinstance(block.body, cst.IndentedBlock):
            return None
        first = None
        for stmt in body:
            if not _is_preamble(stmt):
                first = stmt
                break
        if first is not None:
            start = sf.range(first).start
            indent = sf.lines[start.line - 1][: start.column]
            at = start.line
        else:
            last = body[-1]
            start = sf.range(last).start
            indent = sf.lines[start.line - 1][: start.column]
            at = sf.range(last).end.line + 1
        insert = TextEdit(at, 1, at, 1, f"{indent}import tensorflow as tf\n")
        return "tf", insert



def _duplicable(expr: cst.BaseExpression) -> bool:
    """Cheap and side-effect free, so the fix may evaluate it twice."""
    return isinstance(expr, cst.Name | cst.SimpleString) or (
        isinstance(expr, cst.Attribute) and dotted_name(expr) is not None
    )


def _is_preamble(stmt: cst.CSTNode) -> bool:
    """Docstrings, imports and os.environ set-up: an added import goes after them."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if isinstance(small, cst.Import | cst.ImportFrom):
            continue
        if isinstance(small, cst.Expr) and isinstance(
            small.value, cst.SimpleString | cst.ConcatenatedString
        ):
            continue
        if "environ" in cst.Module([]).code_for_node(small):
            continue
        return False
    return True
