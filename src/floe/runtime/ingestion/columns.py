"""The columns floe.yaml names, checked against the data before dlt or Iceberg use them.

A ``cursor_field``, ``primary_key``, ``delete_column``, ``partition_by`` or ``sort_by`` column
the source does not have would otherwise fail deep inside dlt (``KeyError: 'Column modified_at
does not exist in schema'``, ``UnboundColumnException``) or pyiceberg, in their terms.  This
step runs on every Arrow item, before dlt's incremental step, and fails the load in the user's
terms: which key, which table, which columns it does have, and the closest name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from floe.artifacts import CompiledSource
from floe.layout import parse_partition, parse_sort
from floe.runtime.ingestion.errors import ErrorCategory, IngestionError


def named_columns(source: CompiledSource) -> list[tuple[str, str]]:
    """(the floe.yaml key, the column it names) for every column a source's keys name."""
    named = [("cursor_field", source.cursor_field)] if source.cursor_field else []
    if source.source_type == "rest_api":  # a JSON path into API records, checked by dlt
        named = []
    named += [("primary_key", column) for column in source.primary_key]
    if source.delete_column:
        named.append(("delete_column", source.delete_column))
    for text in source.partition_by:
        field = parse_partition(text)
        if field is not None:
            named.append(("partition_by", field.column))
    for text in source.sort_by:
        sort = parse_sort(text)
        if sort is not None:
            named.append(("sort_by", sort[0]))
    return named


def column_guard(source: CompiledSource, table: str,
                 where: Callable[[], str] | None = None) -> Callable[[Any], Any] | None:
    """A dlt map step that refuses an Arrow item lacking a column floe.yaml names;
    ``where`` says where the item came from (the landing file).  None: nothing to check."""
    named = named_columns(source)
    if not named:
        return None

    def guard(item: Any) -> Any:
        schema = getattr(item, "schema", None)
        if not isinstance(schema, pa.Schema):  # dicts: dlt's own checks apply
            return item
        have = schema.names
        for key, column in named:
            if column not in have:
                raise missing_column(source, table, key, column, have,
                                     where() if where else "")
        return item

    return guard


def missing_column(source: CompiledSource, table: str, key: str, column: str,
                   have: list[str], origin: str = "") -> IngestionError:
    close = difflib.get_close_matches(column, have, n=1)
    return IngestionError(
        f"{key} {column}: {source.namespace}.{table} has no column {column}"
        + (f" (in {origin})" if origin else "") + f"; its columns: {', '.join(have)}"
        + (f" — did you mean {close[0]}?" if close else "")
        + "; nothing was committed", source_type=source.source_type,
        destination_table=f"{source.namespace}.{table}", pipeline_name=source.pipeline_name,
        category=ErrorCategory.CONFIGURATION)
