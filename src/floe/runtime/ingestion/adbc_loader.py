"""PostgreSQL tables read with ADBC: binary COPY straight into Arrow batches.

dlt builds the query (columns, the incremental cursor's WHERE, limits) and floe runs it through
``adbc-driver-postgresql`` instead of psycopg2 + Python tuples: 1M rows in 0.65 s instead of
3.5 s here.  The batches are then given the types floe's other PostgreSQL path has always
written, so a table keeps its Bronze schema whichever backend loads it:

- ``numeric(p, s)`` arrives as text (ADBC's opaque ``numeric``) and becomes ``decimal(p, s)``
  from the declared type; a ``numeric`` without precision becomes ``decimal(38, 9)``, and a
  value that does not fit it exactly is an error naming the column, never a rounded number;
- ``json``/``jsonb`` and arrays become compact JSON text, ``uuid`` its usual text;
- smaller integers and floats widen to 64 bits; times, timestamps (with and without time zone),
  dates, booleans, text and ``bytea`` keep ADBC's types;
- the types ADBC would hand over in a form Bronze cannot use (interval, money, inet, ranges,
  time with time zone...) are selected as ``::text`` (inet with its netmask: 10.0.0.1/32).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy
from dlt.sources.sql_database.helpers import BaseTableLoader

from floe.runtime.ingestion.errors import PipelineConfigurationError

DEFAULT_DECIMAL = (38, 9)


class NumericOverflowError(PipelineConfigurationError):
    """A ``numeric`` value that the Bronze decimal type cannot hold exactly."""


def _json_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else json.dumps(
        v if not isinstance(v, str) else json.loads(v), separators=(",", ":"),
        ensure_ascii=False, default=str) for v in values], pa.string())


def _decimal(column: pa.Array, name: str, declared: Any) -> pa.Array:
    precision = getattr(declared, "precision", None)
    scale = getattr(declared, "scale", None)
    if precision is None:
        precision, scale = DEFAULT_DECIMAL
    kind = (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale or 0)
    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise NumericOverflowError(
            f"column {name} (numeric without a declared precision, stored as "
            f"decimal({precision}, {scale})) holds a value that does not fit it exactly: "
            "declare numeric(p, s) on the source column, or read it with backend: sqlalchemy "
            "and a cast in a view") from None


def bronze_column(column: pa.Array, name: str, declared: Any) -> pa.Array:
    """One ADBC column with the type floe writes for it."""
    kind = column.type
    if isinstance(kind, pa.BaseExtensionType):
        if getattr(kind, "type_name", "") == "numeric":
            return _decimal(column.storage, name, declared)
        if kind.extension_name == "arrow.json":
            return _json_text(column.storage.to_pylist())
        if kind.extension_name == "arrow.uuid":
            return pa.array([None if v is None else str(uuid.UUID(bytes=v))
                             for v in column.storage.to_pylist()], pa.string())
        return column.storage  # other PostgreSQL types: their text
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _json_text(column.to_pylist())
    if pa.types.is_integer(kind) and kind.bit_width < 64:
        return column.cast(pa.int64())
    if pa.types.is_floating(kind) and kind.bit_width < 64:
        return pc.cast(column, pa.float64())
    return column


def bronze_batch(batch: pa.RecordBatch, table: sqlalchemy.Table) -> pa.Table:
    columns = [bronze_column(batch.column(i), field.name,
                             table.c[field.name].type if field.name in table.c else None)
               for i, field in enumerate(batch.schema)]
    return pa.Table.from_arrays(columns, names=batch.schema.names)


_BINARY_SAFE = (sqlalchemy.Integer, sqlalchemy.Numeric, sqlalchemy.Float, sqlalchemy.Boolean,
                sqlalchemy.String,
                sqlalchemy.Date, sqlalchemy.DateTime, sqlalchemy.LargeBinary, sqlalchemy.Uuid,
                sqlalchemy.JSON)


def _binary_safe(kind: Any) -> bool:
    """ADBC hands this type over as a value Bronze can hold.  Others (interval, money, inet,
    ranges, time with time zone, tsvector...) arrive as month-day-nano intervals, integer
    cents or PostgreSQL's binary wire format, so they are read as their text instead: what the
    psycopg2 path gives for them."""
    if isinstance(kind, sqlalchemy.ARRAY):
        return _binary_safe(kind.item_type)
    if isinstance(kind, sqlalchemy.Time):
        return not kind.timezone
    if type(kind).__name__ == "MONEY":
        return False
    return isinstance(kind, _BINARY_SAFE)


def as_text_where_needed(query: Any) -> Any:
    """dlt's SELECT with every column ADBC cannot hand over faithfully cast to text."""
    if not isinstance(query, sqlalchemy.Select):
        return query
    columns = list(query.selected_columns)
    if all(_binary_safe(c.type) for c in columns):
        return query
    return query.with_only_columns(
        *(c if _binary_safe(c.type) else sqlalchemy.cast(c, sqlalchemy.Text).label(c.name)
          for c in columns), maintain_column_froms=True)


class AdbcTableLoader(BaseTableLoader):
    """dlt's query, run over ADBC; yields one Arrow table per batch the driver hands over."""

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
        import adbc_driver_postgresql.dbapi as adbc

        query = self.compile_query(as_text_where_needed(self.make_query()))
        with adbc.connect(self.get_connection_url()) as connection, \
                connection.cursor() as cursor:
            cursor.execute(query)
            for batch in cursor.fetch_record_batch():
                if batch.num_rows:
                    yield bronze_batch(batch, self.table)
