"""MySQL/MariaDB column types and values, as Bronze keeps them, whether a value comes from the
first run's copy (PyMySQL) or from a row event in the binlog (python-mysql-replication): both
paths describe a column as a ``ColumnType`` and convert values with the same function, so a
row reads the same whichever way it arrived.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

_INTS = {"tinyint", "smallint", "mediumint", "int", "integer"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry",
           "point", "linestring", "polygon"}


@dataclass(frozen=True)
class ColumnType:
    """What decides a column's Bronze type: a kind (int, bigint, decimal, double, datetime,
    timestamp, date, time, year, string, binary, json, enum, set, bit) and its details."""

    kind: str
    unsigned: bool = False
    precision: int = 0
    scale: int = 0
    set_values: tuple[str, ...] = ()
    fixed: int = 0  # BINARY(n): the binlog leaves out trailing zero bytes the copy keeps

    @functools.cached_property
    def arrow(self) -> pa.DataType:
        kind = self.kind
        if kind == "bigint":
            return pa.decimal128(20, 0) if self.unsigned else pa.int64()
        if kind == "decimal":
            return (pa.decimal128(self.precision, self.scale) if 0 < self.precision <= 38
                    else pa.string())
        simple = {"int": pa.int64(), "year": pa.int64(), "bit": pa.int64(),
                  "double": pa.float64(), "datetime": pa.timestamp("us"),
                  "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
                  "time": pa.time64("us"), "binary": pa.binary()}
        return simple.get(kind, pa.string())


def from_schema(data_type: str, column_type: str, precision: int | None, scale: int | None
                ) -> ColumnType:
    """A column as ``information_schema.COLUMNS`` describes it (the copy's side)."""
    name = data_type.lower()
    unsigned = "unsigned" in column_type.lower()
    if name in _INTS:
        return ColumnType("int", unsigned)
    if name in ("bigint", "decimal", "numeric"):
        kind = "bigint" if name == "bigint" else "decimal"
        return ColumnType(kind, unsigned, int(precision or 0), int(scale or 0))
    if name in ("float", "double", "real"):
        return ColumnType("double")
    if name in _TEXT:
        return ColumnType("string")
    if name == "binary":
        return ColumnType("binary", fixed=int(column_type[column_type.index("(") + 1:-1]))
    if name in _BINARY:
        return ColumnType("binary")
    if name == "set":
        inside = column_type[column_type.index("(") + 1:column_type.rindex(")")]
        values = tuple(v.strip("'").replace("''", "'") for v in _split_quoted(inside))
        return ColumnType("set", set_values=values)
    known = {"datetime", "timestamp", "date", "time", "year", "json", "enum", "bit"}
    return ColumnType(name if name in known else "string")


def _split_quoted(inside: str) -> list[str]:
    """``'a','b,c'`` -> ``["'a'", "'b,c'"]`` (SET member lists as COLUMN_TYPE writes them)."""
    parts, current, quoted = [], "", False
    for char in inside:
        if char == "'":
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _time(value: Any) -> dt.time | None:
    """TIME is an interval (-838:59:59 .. 838:59:59); Bronze's ``time`` holds a time of day."""
    if isinstance(value, dt.timedelta) and dt.timedelta(0) <= value < dt.timedelta(days=1):
        return (dt.datetime.min + value).time()
    return value if isinstance(value, dt.time) else None


def _json(value: Any) -> str | None:
    """Compact JSON text: MySQL's binary JSON (decoded objects) and JSON text alike."""
    if value is None:
        return None
    if isinstance(value, bytes | str):
        text = value.decode() if isinstance(value, bytes) else value
        value = json.loads(text)
    return json.dumps(_text_keys(value), separators=(",", ":"), ensure_ascii=False)


def _text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _text_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def _bit(value: Any) -> int | None:
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if isinstance(value, str):  # the binlog reader gives the bits as text
        return int(value, 2) if value else 0
    return value if isinstance(value, int) else None


def converter(column: ColumnType) -> Callable[[Any], Any] | None:
    """How a value of this column becomes what Bronze stores (None: as it comes)."""
    kind = column.kind
    if kind == "bigint" and column.unsigned:
        return lambda v: None if v is None else Decimal(v)
    if kind == "datetime":
        return lambda v: v if isinstance(v, dt.datetime) else None  # zero dates: null
    if kind == "date":
        return lambda v: v if isinstance(v, dt.date) else None
    if kind == "timestamp":
        return lambda v: v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else None
    if kind == "time":
        return _time
    if kind == "json":
        return _json
    if kind == "bit":
        return _bit
    if kind == "set":
        order = column.set_values

        def set_text(value: Any) -> Any:
            if isinstance(value, set | frozenset):  # the binlog reader's members, unordered
                return ",".join(v for v in order if v in value)
            return value
        return set_text
    if kind == "binary":
        width = column.fixed

        def raw(value: Any) -> Any:
            value = value.encode() if isinstance(value, str) else value
            return value.ljust(width, b"\0") if width else value
        return raw
    return None


def converters(columns: Sequence[ColumnType]) -> list[Callable[[Any], Any] | None]:
    return [converter(c) for c in columns]


def convert_row(convert: Sequence[Callable[[Any], Any] | None], row: Sequence[Any]
                ) -> tuple[Any, ...]:
    return tuple([v if f is None or v is None else f(v)
                  for f, v in zip(convert, row, strict=True)])
