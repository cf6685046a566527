"""The per-product table of a Transform: one tf.Example per distinct product id.

The Transform writes ``<root>/product_table/product_table-*.gz`` (gzip TFRecord files): for
every distinct value of the product id column over all splits, one example holding the
*transformed* product columns (the plan's features with side ``product``, scalar, the dtypes
of tft's ``transformed_feature_spec``). The trainer reads its candidates from it instead of
iterating every split (issue #15: memory that grows with the catalogue, not the log).

It is computed in Beam from the transformed record batches, so that it runs wherever the
Transform runs (DirectRunner or Dataflow):

1. per record batch, vectorized with Arrow: the distinct rows of the product columns, and per
   product id the row whose values are smallest (compared column by column) -> an Arrow table;
2. the tables are keyed by ``id % _KEY_SHARDS`` and merged with ``beam.CombinePerKey``: the
   union, again keeping the smallest row per id. "Smallest" makes the choice independent of
   how Beam batches and orders the rows, so every runner and mode writes the same table (when
   a product's features are the same on all its rows, as for catalogue attributes, any choice
   is that one row). Values are compared, not encodings: protobuf does not promise one byte
   order for a map's entries, and a tf.Example's features are a map;
3. each merged table is encoded as tf.Examples (tfx-bsl's ``RecordBatchToExamples``).

Memory then grows with the number of products (each accumulator holds one row per product of
its shard), never with the number of lines.

Sources: Apache Beam's ``CombinePerKey`` (combiner lifting: partial combines on the workers),
Arrow compute's ``sort_indices``/``group_by``, tfx-bsl's ``example_coder``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from compiler.model import embedding_column

if TYPE_CHECKING:
    from compiler.model import Plan

PRODUCT_TABLE_DIR = "product_table"
#: File name prefix of the table's shards: ``product_table-00000-of-00001.gz``.
PRODUCT_TABLE_PREFIX = "product_table"
#: Keys the merge is spread over (a runner combines different keys in parallel).
_KEY_SHARDS = 16



def product_columns(plan: Plan, product_id: str) -> tuple[str, ...]:
    """The transformed product columns of ``plan``, the product id column first; empty when
    the plan has no embedded product id column (then no table is written)."""
    id_column = embedding_column(product_id)
    names = [feature.name for feature in plan.features_for("product")]
    if id_column not in names:
        return ()
    return (id_column, *[name for name in names if name != id_column])


def _scalar_values(column: Any, name: str) -> Any:
    """The values of a list column holding exactly one value per row."""
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return column
    lengths = pc.list_value_length(column)
    if len(column) and (pc.min(lengths).as_py() != 1 or pc.max(lengths).as_py() != 1):
        raise ValueError(f"product column {name!r} is not one value per row")
    return pc.list_flatten(column)


def smallest_per_id(table: Any) -> Any:
    """The rows of a product-column table (id first) keeping, per id, the row whose values
    are smallest in column order; sorted by id."""
    # lazy: NumPy: data hashing and metrics of a run only
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in table.column_names])
    ids = table.column(0).take(order).to_numpy()
    firsts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    return table.take(order.take(pa.array(firsts)))


def batch_products(record_batch: Any, columns: Sequence[str]) -> Any:
    """One transformed record batch -> a table of ``columns`` (scalar values), one row per
    product id of the batch."""
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa

    missing = [c for c in columns if c not in record_batch.schema.names]
    if missing:
        raise ValueError(f"the Transform output has no product columns {missing}")
    flat = pa.table({name: _scalar_values(record_batch.column(name), name) for name in columns})
    # Distinct rows first (vectorized): most lines repeat their product's attributes.
    distinct = flat.group_by(list(columns), use_threads=False).aggregate([])
    return smallest_per_id(distinct.select(list(columns)))


def keyed_shards(table: Any) -> Iterator[tuple[int, Any]]:
    """``(id % _KEY_SHARDS, rows of that shard)`` for the non-empty shards of ``table``."""
    # lazy: NumPy: data hashing and metrics of a run only
    import numpy as np
    import pyarrow as pa

    shards = table.column(0).to_numpy() % _KEY_SHARDS
    for shard in np.unique(shards):
        yield int(shard), table.filter(pa.array(shards == shard))


def merge_tables(tables: Iterable[Any]) -> Any:
    """The ``CombinePerKey`` merge: the union of product tables, one row per id chosen as in
    :func:`smallest_per_id` (associative and commutative, as Beam requires); None for none."""
    # lazy: Arrow: the Transform runner's record batches only
    import pyarrow as pa

    parts = [table for table in tables if table is not None]
    if not parts:
        return None
    return smallest_per_id(pa.concat_tables(parts))


def serialized_examples(table: Any) -> list[bytes]:
    """The rows of a product table as serialized tf.Examples (one scalar feature a column),
    in id order; none for None."""
    # lazy: NumPy: data hashing and metrics of a run only
    import numpy as np
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    if table is None or table.num_rows == 0:
        return []
    table = table.sort_by(table.column_names[0])
    offsets = pa.array(np.arange(table.num_rows + 1, dtype=np.int32))
    as_lists = pa.RecordBatch.from_arrays(
        [pa.ListArray.from_arrays(offsets, column.combine_chunks()) for column in table.columns],
        names=table.column_names)
    return example_coder.RecordBatchToExamples(as_lists)


def per_product_tables(transformed: Iterable[Any], columns: Sequence[str]) -> Any:
    """Beam: the transformed ``(record_batch, passthrough)`` PCollections of every split ->
    one merged product table per key shard."""
    # lazy: Beam: the Transform runner only
    import apache_beam as beam

    per_split = [
        pcoll | f"Products[{index}]" >> beam.Map(
            lambda pair, names=tuple(columns): batch_products(pair[0], names))
        for index, pcoll in enumerate(transformed)
    ]
    return (
        per_split
        | "FlattenProducts" >> beam.Flatten()
        | "KeyProducts" >> beam.FlatMap(keyed_shards)
        | "MergeProducts" >> beam.CombinePerKey(merge_tables)
        | "ProductShards" >> beam.Values()
    )


__all__ = [
    "PRODUCT_TABLE_DIR",
    "PRODUCT_TABLE_PREFIX",
    "batch_products",
    "merge_tables",
    "per_product_tables",
    "product_columns",
    "serialized_examples",
    "smallest_per_id",
]
