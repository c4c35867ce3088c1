"""``partition_by`` / ``sort_by`` applied to a table: set when it is created, evolved (a new
partition spec, a new sort order; old files keep theirs) when floe.yaml changes, in the same
transaction as the load that first sees the change."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Transaction
from pyiceberg.transforms import IdentityTransform

from floe.layout import PartitionField, parse_partition, parse_sort


def _wanted(partition_by: Sequence[str]) -> list[PartitionField]:
    fields = [parse_partition(text) for text in partition_by]
    return [f for f in fields if f is not None]  # the compiler refused anything else


def current_partitioning(tx: Transaction) -> list[PartitionField]:
    metadata = tx.table_metadata
    schema = metadata.schema()
    return [PartitionField(schema.find_column_name(f.source_id) or "", str(f.transform))
            for f in metadata.spec().fields]


def current_sorting(tx: Transaction) -> list[tuple[str, bool]]:
    metadata = tx.table_metadata
    schema = metadata.schema()
    return [(schema.find_column_name(f.source_id) or "", f.direction.name == "DESC")
            for f in metadata.sort_order().fields]


def apply_layout(tx: Transaction, partition_by: Sequence[str], sort_by: Sequence[str]) -> None:
    wanted = _wanted(partition_by)
    current = current_partitioning(tx)
    if wanted != current:
        with tx.update_spec() as update:
            for existing, spec_field in zip(current, tx.table_metadata.spec().fields,
                                            strict=True):
                if existing not in wanted:
                    update.remove_field(spec_field.name)
            for field in wanted:
                if field not in current:
                    update.add_field(field.column, field.transform, field.name)
    sorting = [s for s in (parse_sort(text) for text in sort_by) if s is not None]
    if sorting != current_sorting(tx):
        with tx.update_sort_order() as order:
            for column, descending in sorting:
                if descending:
                    order.desc(column, IdentityTransform())
                else:
                    order.asc(column, IdentityTransform())


def sort_rows(rows: pa.Table, sort_by: Sequence[str]) -> pa.Table:
    """Rows in the table's sort order (data files are written in this order)."""
    keys = [(c, "descending" if d else "ascending")
            for c, d in (s for s in (parse_sort(t) for t in sort_by) if s is not None)
            if c in rows.column_names]
    return rows.sort_by(keys) if keys and rows.num_rows else rows


def conform(rows: pa.Table, tx: Transaction) -> pa.Table:
    """Rows cast to the table's own Arrow types (a timestamp[ms] from a JSON file becomes the
    table's timestamp[us]): partition transforms take only the table's types."""
    schema = tx.table_metadata.schema()
    columns, fields = [], []
    for field in rows.schema:
        column = rows[field.name]
        try:
            target = schema_to_pyarrow(schema.find_field(field.name).field_type)
        except ValueError:
            target = column.type
        same = column.type == target or (pa.types.is_string(column.type)
                                          and pa.types.is_large_string(target))
        columns.append(column if same else column.cast(target))
        fields.append(field if same else field.with_type(target))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
