"""Does a Transform output carry every feature the trainer reads, with the dtype it expects?

The Transform's output schema is ``transform_graph/transformed_metadata/schema.pbtxt``, a text
``tensorflow.metadata.v0.Schema``. ``tensorflow_metadata`` and ``protobuf`` parse it without
importing TensorFlow, so this check runs before anything is uploaded or submitted.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from compiler.cloud.errors import SubmitError

#: Accepted spellings of the trainer-side dtypes, mapped onto the schema's three value types.
_ALIASES = {
    "int64": "int64", "int": "int64", "int32": "int64", "timestamp": "int64",
    "float32": "float32", "float": "float32", "float64": "float32",
    "string": "string", "bytes": "string", "str": "string",
}


def parse_schema(text: str, *, source: str = "schema.pbtxt") -> dict[str, str]:
    """Feature name -> ``int64`` / ``float32`` / ``string`` (``struct`` for nested ones)."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as error:
        raise SubmitError(f"{source} is not a valid Schema text proto: {error}") from None
    names = {
        schema_pb2.INT: "int64",
        schema_pb2.FLOAT: "float32",
        schema_pb2.BYTES: "string",
        schema_pb2.STRUCT: "struct",
    }
    features = {f.name: names.get(f.type, "unknown") for f in schema.feature}
    # Sparse features are read as one SparseTensor whose values have the value feature's type.
    for sparse in schema.sparse_feature:
        value = sparse.value_feature.name
        features.setdefault(sparse.name, features.get(value, "unknown"))
    return features


def find_mismatches(required: Mapping[str, str], produced: Mapping[str, str]) -> list[str]:
    """One line per feature the trainer needs that the Transform lacks or types differently."""
    problems = []
    for name in sorted(required):
        want = _ALIASES.get(str(required[name]).lower(), str(required[name]).lower())
        if name not in produced:
            close = difflib.get_close_matches(name, list(produced), n=1, cutoff=0.7)
            hint = f" (the Transform has '{close[0]}')" if close else ""
            problems.append(f"{name}: the trainer needs it ({want}); the Transform never "
                            f"produced it{hint}")
        elif produced[name] != want:
            problems.append(f"{name}: the trainer expects {want}, the Transform produced "
                            f"{produced[name]}")
    return problems


def check_compatible(required: Mapping[str, str], schema_text: str, *, schema_uri: str) -> None:
    """Refuse a Transform output the trainer cannot read, listing every mismatch."""
    problems = find_mismatches(required, parse_schema(schema_text, source=schema_uri))
    if problems:
        listing = "\n".join(f"  - {line}" for line in problems)
        raise SubmitError(
            f"the Transform output does not fit the compiled trainer "
            f"({len(problems)} mismatch{'es' if len(problems) > 1 else ''}, from {schema_uri}):"
            f"\n{listing}",
            hint="pick a source experiment made with the same feature config, or recompile",
            key="submit.source_exp",
        )
