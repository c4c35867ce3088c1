"""A MySQL/MariaDB table as Bronze-typed Arrow batches, read with connectorx.

Measured on 1M rows (``bench/cdc_mysql.py``): connectorx 0.41-0.43 s, PyMySQL into Arrow
8.0-9.8 s.  connectorx cannot read zero dates and knows nothing of Bronze's types, so each
column is selected through an expression that gives a value connectorx reads exactly (text for
decimals and unsigned BIGINT, microseconds for TIME, NULL for zero dates, DOUBLE for FLOAT,
the session in UTC for TIMESTAMP), then cast to ``ColumnType.arrow`` here: the same values the
binlog's row events give for the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from floe.runtime.mysql.connect import connect, plain_url, quote_name
from floe.runtime.mysql.types import ColumnType, converter, from_schema

Columns = Sequence[tuple[str, ColumnType]]
_DAY_US = 86_400_000_000


def describe(connection: Any, database: str, table: str
             ) -> tuple[list[tuple[str, ColumnType]], tuple[str, ...]]:
    """The table's columns (in order, as Bronze types them) and its primary key; empty when
    there is no such table.  ``connection``: an open PyMySQL connection, or the settings to
    open one with."""
    conn = connect(connection) if isinstance(connection, dict) else connection
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, "
                "COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                "TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (database, table))
            found = list(cursor.fetchall())
    finally:
        if conn is not connection:
            conn.close()
    columns = [(str(c), from_schema(str(d), str(t), p, s)) for c, d, t, p, s, _ in found]
    return columns, tuple(str(c) for c, _, _, _, _, k in found if k == "PRI")


def expression(name: str, column: ColumnType) -> str:
    quoted = quote_name(name)
    kind = column.kind
    if (kind == "bigint" and column.unsigned) or kind == "decimal":
        return f"CAST({quoted} AS CHAR)"
    if kind == "double":
        return f"CAST({quoted} AS DOUBLE)"
    if kind in ("datetime", "date"):  # zero dates (and zero parts) are null
        zero = f"YEAR({quoted}) = 0 OR MONTH({quoted}) = 0 OR DAYOFMONTH({quoted}) = 0"
        return f"CASE WHEN {zero} THEN NULL ELSE {quoted} END"
    if kind == "timestamp":
        return f"CASE WHEN YEAR({quoted}) = 0 THEN NULL ELSE {quoted} END"
    if kind == "time":
        return f"CAST(TIME_TO_SEC({quoted}) * 1000000 AS SIGNED)"
    if kind == "year":
        return f"CAST({quoted} AS SIGNED)"
    if kind == "bit":
        return f"CAST({quoted} AS UNSIGNED)"
    return quoted


def select(database: str, table: str, columns: Columns) -> str:
    listed = ", ".join(f"{expression(n, c)} AS {quote_name(n)}" for n, c in columns)
    return f"SELECT {listed} FROM {quote_name(database)}.{quote_name(table)}"  # noqa: S608 - quoted identifiers, no values


def to_bronze(batch: pa.RecordBatch, columns: Columns) -> pa.RecordBatch:
    """connectorx's columns as ``ColumnType.arrow`` says."""
    arrays = []
    for (_, column), array in zip(columns, batch.columns, strict=True):
        target = column.arrow
        if column.kind == "time":  # microseconds; outside one day Bronze's time holds none
            inside = pc.and_(pc.greater_equal(array, 0), pc.less(array, _DAY_US))
            array = pc.if_else(inside, array, pa.scalar(None, array.type))
        elif column.kind == "json":  # MySQL's JSON text, compact like the binlog's
            convert = converter(column)
            assert convert is not None
            array = pa.array([None if v is None else convert(v) for v in array.to_pylist()])
        arrays.append(array.cast(target))
    return pa.RecordBatch.from_arrays(arrays, names=[n for n, _ in columns])


def read_batches(settings: dict[str, Any], database: str, table: str, columns: Columns,
                 batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    """The table's rows, streamed: memory holds a batch at a time."""
    yield from read_query(settings, select(database, table, columns), columns, batch_rows)


def read_query(settings: dict[str, Any], query: str, columns: Columns,
               batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    """A query whose columns are ``expression``s of ``columns``, in that order."""
    import connectorx

    reader: Any = connectorx.read_sql(
        plain_url(settings), query, return_type="arrow_stream",
        pre_execution_query=["SET time_zone = '+00:00'"], batch_size=batch_rows)
    for batch in reader:
        yield to_bronze(batch, columns)
