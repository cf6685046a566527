"""Facts about TF/TFX trainer modules that several passes need."""

from __future__ import annotations

import libcst as cst

from compiler.passes.source import SourceFile, dotted_name, string_value

LEGACY_KERAS_VAR = "TF_USE_LEGACY_KERAS"
#: Values TensorFlow accepts as "use tf_keras" (tensorflow/__init__.py, lazy_loader.py).
LEGACY_KERAS_ON = frozenset({"1", "true", "True"})


def is_tf_package(module: str) -> bool:
    """Packages whose import imports TensorFlow (and so fixes the Keras version)."""
    top = module.split(".", 1)[0]
    return top in ("tensorflow", "tfx") or top.startswith(("tensorflow_", "tfx_"))


def imported_modules(node: cst.Import | cst.ImportFrom) -> list[str]:
    if isinstance(node, cst.Import):
        return [dotted_name(alias.name) or "" for alias in node.names]
    if node.relative or node.module is None:
        return []
    return [dotted_name(node.module) or ""]


def legacy_keras_sets(sf: SourceFile) -> list[cst.CSTNode]:
    """Statements/calls that set ``TF_USE_LEGACY_KERAS`` to a value TF reads as on.

    Recognised: ``os.environ["TF_USE_LEGACY_KERAS"] = "1"``, ``os.environ.setdefault(...)``,
    ``os.environ.update({...})`` / ``update(TF_USE_LEGACY_KERAS="1")``. (``os.putenv`` does not
    count: it does not change ``os.environ``, which is what TensorFlow reads.)
    """
    if LEGACY_KERAS_VAR not in sf.source:
        return []
    found: list[cst.CSTNode] = []
    for assign in sf.nodes(cst.Assign):
        for target in assign.targets:
            t = target.target
            if (
                isinstance(t, cst.Subscript)
                and sf.qualname(t.value) == "os.environ"
                and len(t.slice) == 1
                and isinstance(t.slice[0].slice, cst.Index)
                and string_value(t.slice[0].slice.value) == LEGACY_KERAS_VAR
                and string_value(assign.value) in LEGACY_KERAS_ON
            ):
                found.append(assign)
    for call in sf.nodes(cst.Call):
        func = call.func
        if not (isinstance(func, cst.Attribute) and sf.qualname(func.value) == "os.environ"):
            continue
        method = func.attr.value
        if method == "setdefault" and len(call.args) >= 2:
            if (
                string_value(call.args[0].value) == LEGACY_KERAS_VAR
                and string_value(call.args[1].value) in LEGACY_KERAS_ON
            ):
                found.append(call)
        elif method == "update":
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value == LEGACY_KERAS_VAR:
                    if string_value(arg.value) in LEGACY_KERAS_ON:
                        found.append(call)
                elif isinstance(arg.value, cst.Dict):
                    for element in arg.value.elements:
                        if (
                            isinstance(element, cst.DictElement)
                            and string_value(element.key) == LEGACY_KERAS_VAR
                            and string_value(element.value) in LEGACY_KERAS_ON
                        ):
                            found.append(call)
    return found


def uses_legacy_keras(sf: SourceFile) -> bool:
    """Whether the module runs under Keras 2: it sets TF_USE_LEGACY_KERAS or imports tf_keras."""
    if legacy_keras_sets(sf):
        return True
    return any(q.split(".", 1)[0] == "tf_keras" for q in sf.imports.values())
