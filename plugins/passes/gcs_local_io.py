"""gcs-local-io: a local-filesystem call on a value that may be a gs:// URI."""

from __future__ import annotations

from typing import Any, ClassVar

import libcst as cst

from compiler.passes import Severity, SourceFile
from compiler.passes.dataflow import UNKNOWN, CallInfo, DataflowPass, Fact, SeqV, TupleV
from compiler.passes.source import dotted_name, string_value
from plugins.passes.gcs_gfile_fix import GfileFix

#: fn_args fields that hold artifact URIs (gs:// when the trainer runs on Vertex AI).
PATH_FIELDS = frozenset(
    {
        "train_files", "eval_files", "transform_output", "transform_graph_path",
        "serving_model_dir", "model_run_dir", "schema_path", "schema_file", "working_dir",
        "base_model",
    }
)
#: Entry points whose first parameter is TFX's FnArgs.
_ENTRY_POINTS = frozenset({"run_fn", "trainer_fn", "tuner_fn", "_run_fn"})

#: Local-filesystem calls -> how the autofix rewrites them (None: reported, not fixed).
_SINKS: dict[str, str | None] = {
    "os.path.exists": "exists", "os.path.lexists": "exists", "os.path.isdir": "isdir",
    "os.path.isfile": "isfile", "os.path.getsize": "getsize", "os.path.getmtime": "getmtime",
    "os.listdir": "listdir", "os.makedirs": "makedirs", "os.mkdir": "mkdir",
    "os.remove": "remove", "os.unlink": "remove", "os.rename": "rename",
    "os.replace": "replace", "os.walk": "walk", "os.scandir": None, "os.stat": "stat",
    "glob.glob": "glob", "glob.iglob": "glob", "builtins.open": "open", "io.open": "open",
    "shutil.copyfile": "copyfile", "shutil.move": "replace", "shutil.rmtree": "rmtree",
    # Not I/O, but POSIX normalisation turns gs://b/x into gs:/b/x.
    "os.path.normpath": "unwrap", "os.path.abspath": "unwrap", "os.path.realpath": "unwrap",
}
#: TFX helpers that return artifact URIs (gs:// on Vertex AI), like every artifact's ``.uri``.
_ARTIFACT_URIS = frozenset(
    {
        "tfx.types.artifact_utils.get_split_uri", "tfx.types.artifact_utils.get_single_uri",
        "tfx.types.artifact_utils.get_split_uris", "tfx.v1.types.artifact_utils.get_split_uri",
    }
)
_NORMALISING = frozenset({"os.path.normpath", "os.path.abspath", "os.path.realpath"})
_PATH_TYPES = frozenset(
    {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath"}
)
# pathlib methods that touch the filesystem -> gfile rewrite when the receiver is Path(x).
_PATH_IO: dict[str, str | None] = {
    "exists": "exists", "is_dir": "isdir", "is_file": "isfile", "mkdir": "makedirs",
    "unlink": "remove", "read_text": "read_text", "read_bytes": "read_bytes",
    "write_text": "write_text", "write_bytes": "write_bytes", "open": "open", "stat": "stat",
    "iterdir": None, "glob": None, "rglob": None, "rmdir": None, "touch": None,
    "rename": None, "replace": None, "resolve": None, "samefile": None, "chmod": None,
}
_STR_KEEP = frozenset(
    {
        "strip", "rstrip", "lstrip", "replace", "lower", "upper", "format", "removesuffix",
        "removeprefix", "expandtabs", "casefold",
    }
)
_TEMPFILE_PATHS = frozenset(
    {
        "tempfile.mkdtemp", "tempfile.gettempdir", "tempfile.mktemp",
        "tempfile.TemporaryDirectory", "tempfile.NamedTemporaryFile",
    }
)
_URI_KINDS = ("uri", "path", "parts", "walk")


def _kind(value: Any) -> str | None:
    return value.kind if isinstance(value, Fact) else None


def _members(value: Any) -> tuple[Any, ...]:
    """A value and, for a literal tuple/list or a sequence, its elements."""
    if isinstance(value, TupleV):
        return (value, *value.items)
    if isinstance(value, SeqV):
        return (value, value.elem)
    return (value,)


class GcsLocalIo(GfileFix, DataflowPass):
    """A local-filesystem call gets a value that may be a ``gs://`` URI.

    ``os.path.exists``, ``glob.glob``, ``open`` and friends only see the local disk: on a
    ``gs://`` path they quietly answer "no such file". The platform's trainer looked for the
    test split with ``os.path.exists`` + ``glob.glob`` and, on Vertex AI, silently skipped the
    test evaluation; the official TFRS+TFX tutorial's ``run_fn`` globs artifact URIs the same
    way. ``os.path.normpath``/``abspath``/``realpath`` are reported too: they turn
    ``gs://b/x`` into ``gs:/b/x``.

    "May be a GCS URI" covers a ``gs://`` literal, every FnArgs path field (``train_files``,
    ``eval_files``, ``transform_output``, ``transform_graph_path``, ``serving_model_dir``,
    ``model_run_dir``, ``schema_path``, ``working_dir``, ``base_model``) and anything derived
    from them through ``os.path.join``/``dirname``, f-strings, ``+``, ``%``, ``.format``,
    ``split``/``rsplit`` and indexing, variables, parameters and return values, plus TFX
    artifact URIs (``artifact.uri``, ``artifact_utils.get_split_uri``). A name taken from a
    URI (``basename``, an entry of ``tf.io.gfile.listdir``) used directly in a local call is
    reported too (without autofix: it has to be joined back onto its URI); joined onto a local
    directory it is local. Pure string helpers are fine, and so is a local temp path from
    ``tempfile``. The autofix rewrites the call to its ``tf.io.gfile`` equivalent (``exists``,
    ``isdir``, ``glob``, ``GFile``, ``makedirs``, ``listdir``, ``remove``, ``rename``, ``copy``,
    ``walk``, ``stat``, ``rmtree``) and adds ``import tensorflow as tf`` where ``tf`` is not
    bound: at the top of the enclosing function, after any ``TF_USE_LEGACY_KERAS`` set-up, so
    the module keeps importing TensorFlow lazily.
    """

    name: ClassVar[str] = "gcs-local-io"
    severity: ClassVar[Severity] = Severity.ERROR
    MESSAGE: ClassVar[str] = "local-filesystem call on a value that may be a gs:// URI"
    HAZARD: ClassVar[str] = (
        "os.path.exists/... on a value that may be a gs:// URI; "
        "os.path.normpath/abspath/realpath on a gs:// URI"
    )

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import os
import tempfile


def run_fn(fn_args):
    import tensorflow as tf

    train_dir = fn_args.train_files[0].rsplit("/", 1)[0]
    test_dir = f"{train_dir.rsplit('/', 1)[0]}/Split-test"
    if tf.io.gfile.exists(test_dir):
        test_files = tf.io.gfile.glob(f"{test_dir}/*.gz")
        print(len(test_files), os.path.basename(test_dir))
    scratch = tempfile.mkdtemp()
    local = os.path.join(scratch, os.path.basename(fn_args.serving_model_dir))
    if not os.path.exists(local):
        os.makedirs(local)
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import glob
import os


def _test_split(train_files):
    return os.path.join(os.path.dirname(os.path.dirname(train_files[0])), "Split-test")


def run_fn(fn_args):
    test_split_dir = _test_split(fn_args.train_files)
    if os.path.exists(test_split_dir):  # <-
        test_files = glob.glob(os.path.join(test_split_dir, "*.gz"))  # <-
        print(test_files)
    with open(fn_args.model_run_dir + "/metrics.json", "w") as f:  # <-
        f.write("{}")
''',
        '''\
import os

BUCKET = "gs://my-bucket/runs"


def export_dir(run):
    return os.path.normpath(f"{BUCKET}/{run}/model")  # <-
''',
    )

    def wants(self, sf: SourceFile) -> bool:
        src = sf.source
        return any(
            marker in src for marker in ("gs://", "fn_args", ".uri", "get_split_uri")
        ) or any(e in src for e in _ENTRY_POINTS)

    # -- transfer functions -------------------------------------------------------------------
    def df_entry_param(self, fn: cst.FunctionDef, name: str, index: int) -> Any:
        if name == "fn_args" or (index == 0 and fn.name.value in _ENTRY_POINTS):
            return Fact("fn_args")
        return UNKNOWN

    def df_literal(self, node: cst.BaseExpression) -> Any:
        value = string_value(node)
        if value is not None and value.startswith("gs://"):
            return Fact("uri", node, f'"{_short(value)}"')
        return UNKNOWN

    def df_fstring(self, node: cst.FormattedString, parts: list[Any]) -> Any:
        if parts and isinstance(parts[0], str) and parts[0].startswith("gs://"):
            return Fact("uri", node, f'"{_short(parts[0])}..."')
        for part in parts:
            if _kind(part) in ("uri", "path"):
                return Fact("uri", part.origin, part.note)
        if parts and _kind(parts[0]) == "local":
            return parts[0]
        return UNKNOWN

    def df_binop(self, node: cst.CSTNode, op: str, left: Any, right: Any) -> Any:
        if op == "+":
            for side in (left, right):
                if _kind(side) == "uri":
                    return side
            if _kind(left) == "local":
                return left
        if op == "%":
            items = right.items if isinstance(right, TupleV) else (right,)
            for side in (left, *items):
                if _kind(side) == "uri":
                    return side
        if op == "/" and _kind(left) in ("path", "local"):
            return left
        return UNKNOWN

    def df_attribute(self, node: cst.Attribute, base: Any, attr: str) -> Any:
        if attr in PATH_FIELDS:
            owner = dotted_name(node.value) or ""
            if _kind(base) == "fn_args" or owner.rsplit(".", 1)[-1] == "fn_args":
                return Fact("uri", node, f"fn_args.{attr}")
        if attr == "uri" and _kind(base) != "local":
            return Fact("uri", node, f"artifact `{_short(sf_code(node), 30)}`")
        if _kind(base) == "path":
            return base if attr == "parent" else _fragment(base, f"`.{attr}` of")
        if _kind(base) == "local" and attr == "name":
            return base
        return UNKNOWN

    def df_subscript(
        self, node: cst.Subscript, base: Any, index: Any, index_node: cst.CSTNode | None
    ) -> Any:
        kind = _kind(base)
        if kind == "uri":
            return base
        if kind == "parts":
            if index_node is None:
                return base  # a slice of the parts: still joins back to a URI
            if isinstance(index_node, cst.Integer) and int(index_node.value) == 0:
                return Fact("uri", base.origin, base.note)
            return _fragment(base, "a split part of")
        return UNKNOWN

    def df_join(self, a: Any, b: Any) -> Any:
        for kind in _URI_KINDS:  # may-analysis: a URI on any path is a URI
            if _kind(a) == kind:
                return a
            if _kind(b) == kind:
                return b
        if _kind(a) is not None and _kind(a) == _kind(b):
            return a
        return UNKNOWN

    def df_iter(self, value: Any) -> Any:
        kind = _kind(value)
        if kind == "uri":
            return value
        if kind == "parts":
            return _fragment(value, "a split part of")
        if kind == "walk":
            names = _fragment(value, "a name listed under")
            return TupleV((Fact("uri", value.origin, value.note), names, names))
        return UNKNOWN

    def df_unpack(self, value: Any, index: int) -> Any:
        return value if _kind(value) == "uri" else UNKNOWN

    def df_with(self, value: Any) -> Any:
        return value if _kind(value) == "local" else UNKNOWN

    def df_call(self, call: CallInfo) -> Any:
        q = call.qname
        if q is not None:
            return self._function(call, q)
        if call.method is not None:
            return self._method(call, call.method)
        return UNKNOWN

    def _function(self, call: CallInfo, q: str) -> Any:
        if q in _SINKS or q.startswith("shutil."):
            tainted = self._tainted_arg(call, names=q not in _NORMALISING)
            if tainted is not None:
                self._report_sink(call, q, tainted)
            if q == "glob.glob" or q == "glob.iglob":
                return tainted if tainted is not None else UNKNOWN
            if q in _NORMALISING:
                return call.value(0, "path")
            if q == "os.walk" and tainted is not None:
                return Fact("walk", tainted.origin, tainted.note)
            return UNKNOWN
        first = call.value(0)
        if q == "os.path.join":
            values = [a.value for a in call.args if not a.star]
            for value in values:
                if _kind(value) == "uri":
                    return value
            return values[0] if values and _kind(values[0]) == "local" else UNKNOWN
        if q in ("os.path.dirname", "os.path.normcase", "os.path.expanduser",
                 "os.path.expandvars", "builtins.str", "os.fspath", "os.fsdecode"):
            if _kind(first) == "path":
                return Fact("uri", first.origin, first.note)
            return first if _kind(first) in ("uri", "local") else UNKNOWN
        if q == "os.path.basename":
            return _fragment(first, "the basename of") if _kind(first) == "uri" else UNKNOWN
        if q == "os.path.splitext":
            if _kind(first) in ("uri", "fragment"):
                return TupleV((first, _fragment(first, "the extension of")))
            return UNKNOWN
        if q in _TEMPFILE_PATHS:
            return Fact("local")
        if q in _ARTIFACT_URIS:
            return Fact("uri", call.node, f"`{q.rsplit('.', 1)[-1]}(...)`")
        if q == "tempfile.mkstemp":
            return TupleV((UNKNOWN, Fact("local")))
        if q in _PATH_TYPES:
            for arg in call.args:
                if _kind(arg.value) == "uri":
                    return Fact("path", arg.value.origin, arg.value.note)
            return Fact("local") if any(_kind(a.value) == "local" for a in call.args) else UNKNOWN
        if q.startswith("tensorflow.io.gfile.") or q.startswith("tensorflow.gfile."):
            last = q.rsplit(".", 1)[-1]
            if last == "glob" and _kind(first) == "uri":
                return first
            if last == "walk" and _kind(first) == "uri":
                return Fact("walk", first.origin, first.note)
            if last == "listdir" and _kind(first) == "uri":
                return SeqV(_fragment(first, "a name listed under"))
        return UNKNOWN

    def _method(self, call: CallInfo, method: str) -> Any:
        recv = call.receiver
        kind = _kind(recv)
        if kind == "path":
            if method in _PATH_IO:
                self._report_path(call, method, recv)
                return UNKNOWN
            if method in ("joinpath", "with_name", "with_suffix", "absolute", "expanduser"):
                return recv
            if method == "as_posix":
                return Fact("uri", recv.origin, recv.note)
            return UNKNOWN
        if kind == "uri":
            if method in ("split", "rsplit"):
                return Fact("parts", recv.origin, recv.note)
            if method in _STR_KEEP:
                return recv
            return UNKNOWN
        if method in ("join", "format"):
            for arg in call.args:
                for value in _members(arg.value):
                    if _kind(value) in ("uri", "parts"):
                        return Fact("uri", value.origin, value.note)
        return UNKNOWN

    # -- findings -----------------------------------------------------------------------------
    def _tainted_arg(self, call: CallInfo, *, names: bool) -> Fact | None:
        """The first argument that may be a gs:// URI (or, with ``names``, a name taken from
        one: the basename of a remote file looked up on the local disk)."""
        kinds = ("uri", "path", "fragment") if names else ("uri", "path")
        for arg in call.args:
            if not arg.star and _kind(arg.value) in kinds:
                return arg.value
        return None

    def _where(self, value: Fact) -> str:
        assert self.file is not None
        if value.origin is None:
            return value.note
        return f"{value.note}, line {self.file.pos(value.origin)[0]}"

    def _report_sink(self, call: CallInfo, q: str, tainted: Fact) -> None:
        assert self.file is not None
        short = q.removeprefix("builtins.")
        kind = _SINKS.get(q)
        related = []
        if tainted.origin is not None:
            note = f"gs:// URI source: {tainted.note}"
            related.append(self.file.location(tainted.origin, note))
        if tainted.kind == "fragment":
            # A remote file's name looked up locally: rewriting the call to tf.io.gfile would
            # not help, the name has to be joined back onto its URI. No autofix.
            message = (
                f"`{short}` on a name taken from a gs:// URI ({self._where(tainted)}): it is "
                "looked up on the local disk, not next to the URI it came from"
            )
            self.report(call.node, message, related=related)
            return
        if q in _NORMALISING:
            message = (
                f"`{short}` on a value that may be a gs:// URI ({self._where(tainted)}): "
                "it turns gs://bucket/x into gs:/bucket/x"
            )
        else:
            message = (
                f"`{short}` on a value that may be a gs:// URI ({self._where(tainted)}): "
                "local file APIs do not see GCS"
            )
            target = _GFILE_NAMES.get(kind or "")
            if target:
                message += f"; use {target}"
        fix = self._fix_call(call, kind) if kind else None
        self.report(call.node, message, fix=fix, related=related)

    def _report_path(self, call: CallInfo, method: str, recv: Fact) -> None:
        assert self.file is not None
        related = []
        if recv.origin is not None:
            related.append(self.file.location(recv.origin, f"may be a gs:// URI: {recv.note}"))
        message = (
            f"pathlib `.{method}()` on a path built from a value that may be a gs:// URI "
            f"({self._where(recv)}): pathlib turns gs://bucket/x into gs:/bucket/x"
        )
        fix = None
        kind = _PATH_IO.get(method)
        func = call.node.func
        if kind and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Call):
            ctor = func.value
            if self.file.qualname(ctor.func) in _PATH_TYPES and len(ctor.args) == 1:
                fix = self._fix_path(call, kind, ctor.args[0].value)
        self.report(func.attr if isinstance(func, cst.Attribute) else call.node, message,
                    fix=fix, related=related)


_GFILE_NAMES = {
    "exists": "tf.io.gfile.exists", "isdir": "tf.io.gfile.isdir",
    "isfile": "tf.io.gfile.exists/isdir", "getsize": "tf.io.gfile.stat(...).length",
    "getmtime": "tf.io.gfile.stat(...).mtime_nsec", "listdir": "tf.io.gfile.listdir",
    "makedirs": "tf.io.gfile.makedirs", "mkdir": "tf.io.gfile.mkdir",
    "remove": "tf.io.gfile.remove", "rename": "tf.io.gfile.rename",
    "replace": "tf.io.gfile.rename(..., overwrite=True)", "walk": "tf.io.gfile.walk",
    "stat": "tf.io.gfile.stat", "glob": "tf.io.gfile.glob", "open": "tf.io.gfile.GFile",
    "copyfile": "tf.io.gfile.copy(..., overwrite=True)", "rmtree": "tf.io.gfile.rmtree",
}


def _fragment(of: Fact, how: str) -> Fact:
    """A name derived from a URI (its basename, a listed entry): not a URI, but a local lookup
    of it is still a lookup of something that lives in GCS."""
    return Fact("fragment", of.origin, f"{how} {of.note}")


def sf_code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
