"""Read a binlog range as row changes, with python-mysql-replication (PyPI
``mysql-replication``): the one module that touches that library, fenced by
``tests/runtime/test_mysql_cdc.py::test_the_binlog_library_contract``.

A range is read non-blocking (the server ends the stream at the end of its log) from a start
position, and stops at the first event past ``upto``, the end of the log a run saw when it
started: binlogs hold whole transactions one after another, so every transaction that ended
at or before ``upto`` is read whole.  Column names come from each row event's own table map
(``binlog_row_metadata=FULL``), never from a later ``information_schema`` lookup, so a
backlog that spans several ``ALTER TABLE``\\s lands with the names each change was made under.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE, NONE_SOURCE
from pymysqlreplication.event import QueryEvent, RotateEvent
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from floe.runtime.cdc.mysql.rows import RowReader, row_reader
from floe.runtime.cdc.mysql.server import Position, ReplicationSetupError
from floe.runtime.mysql.pymysql_internals import Connection
from floe.runtime.mysql.types import ColumnType

_INTS = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG}
_KINDS = {FIELD_TYPE.FLOAT: "double", FIELD_TYPE.DOUBLE: "double",
          FIELD_TYPE.DATETIME: "datetime", FIELD_TYPE.DATETIME2: "datetime",
          FIELD_TYPE.TIMESTAMP: "timestamp", FIELD_TYPE.TIMESTAMP2: "timestamp",
          FIELD_TYPE.DATE: "date", FIELD_TYPE.NEWDATE: "date", FIELD_TYPE.TIME: "time",
          FIELD_TYPE.TIME2: "time", FIELD_TYPE.YEAR: "year", FIELD_TYPE.JSON: "json",
          FIELD_TYPE.ENUM: "enum", FIELD_TYPE.BIT: "bit", FIELD_TYPE.GEOMETRY: "binary"}
_IDENT = r"(?:`((?:[^`]|``)+)`|(\w+))"
_TRUNCATE = re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:{_IDENT}\s*\.\s*)?{_IDENT}",
                       re.IGNORECASE)
_ALTER = re.compile(rf"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?:{_IDENT}\s*\.\s*)?"
                    rf"{_IDENT}", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*(?!!).*?\*/)*",
                               re.DOTALL)
_RENAME = re.compile(rf"\bRENAME\s+COLUMN\s+{_IDENT}\s+TO\s+{_IDENT}", re.IGNORECASE)
_CHANGE = re.compile(rf"\bCHANGE\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_IDENT}\s+{_IDENT}",
                     re.IGNORECASE)


@dataclass(frozen=True)
class RowChange:
    """The rows of one write, update or delete event.  Each row is ``(before, after)``:
    ``before`` for updates (the old image, so a changed key removes the old one) and deletes,
    ``after`` for inserts and updates."""

    table: str
    kind: str  # insert | update | delete
    names: tuple[str, ...]
    columns: tuple[ColumnType, ...]
    rows: list[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]]
    position: Position
    timestamp: int


@dataclass(frozen=True)
class Truncate:
    table: str
    position: Position
    timestamp: int = 0


@dataclass(frozen=True)
class Rename:
    table: str
    old: str
    new: str
    position: Position


Change = RowChange | Truncate | Rename


def column_type(column: Any) -> ColumnType:
    """A table-map column (its type code and metadata) as the copy would describe it."""
    code = column.type
    if code in _INTS:
        return ColumnType("int", bool(column.unsigned))
    if code == FIELD_TYPE.LONGLONG:
        return ColumnType("bigint", bool(column.unsigned))
    if code == FIELD_TYPE.NEWDECIMAL:
        return ColumnType("decimal", False, int(column.precision), int(column.decimals))
    if code == FIELD_TYPE.SET:
        return ColumnType("set", set_values=tuple(column.set_values or ()))
    if code in _KINDS:
        return ColumnType(_KINDS[code])
    charset = str(getattr(column, "character_set_name", "") or "")
    if charset != "binary":
        return ColumnType("string")
    fixed = int(column.max_length) if code == FIELD_TYPE.STRING else 0  # BINARY(n)
    return ColumnType("binary", fixed=fixed)


def _name(match: re.Match[str], group: int) -> str:
    quoted, bare = match.group(group), match.group(group + 1)
    return quoted.replace("``", "`") if quoted is not None else bare


def ddl_changes(query: str, session_db: str, schema: str, table_names: Sequence[str],
                position: Position, timestamp: int = 0) -> list[Truncate | Rename]:
    """What a statement means for Bronze: TRUNCATE empties a table; ALTER TABLE ... RENAME
    COLUMN / CHANGE renames a column.  Added, dropped and retyped columns need nothing here:
    the next row event's table map has them.  An unqualified table name is in the session's
    database (``session_db``); only tables of ``schema`` count."""
    found: list[Truncate | Rename] = []
    query = query[_LEADING_COMMENTS.match(query).end():]  # type: ignore[union-attr]
    truncate = _TRUNCATE.match(query)
    if truncate:
        database = _name(truncate, 1) if truncate.group(1) or truncate.group(2) else session_db
        table = _name(truncate, 3)
        if database == schema and table in table_names:
            found.append(Truncate(table, position, timestamp))
        return found
    alter = _ALTER.match(query)
    if alter is None:
        return found
    database = _name(alter, 1) if alter.group(1) or alter.group(2) else session_db
    table = _name(alter, 3)
    if database != schema or table not in table_names:
        return found
    rest = query[alter.end():]
    for pattern in (_RENAME, _CHANGE):
        for match in pattern.finditer(rest):
            old, new = _name(match, 1), _name(match, 3)
            if old != new:
                found.append(Rename(table, old, new, position))
    return found


def read_changes(settings: dict[str, Any], server_id: int, schema: str,
                 tables: Sequence[str], start: Position, upto: Position) -> Iterator[Change]:
    """Every change to ``tables`` after ``start`` up to ``upto``, in binlog order."""
    stream = BinLogStreamReader(
        connection_settings=settings, server_id=server_id, blocking=False,
        resume_stream=True, log_file=start.file, log_pos=start.offset,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent,
                     PartialUpdateRowsEvent, QueryEvent, RotateEvent],
        only_schemas=[schema], report_slave="floe", pymysql_wrapper=Connection)
    current = start.file
    decoder = _RowsDecoder()
    try:
        for event in stream:
            if isinstance(event, RotateEvent):
                current = str(event.next_binlog)
                continue
            position = Position(current, int(event.packet.log_pos))
            if position > upto:
                break
            if isinstance(event, QueryEvent):
                query = event.query if isinstance(event.query, str) else event.query.decode()
                db = event.schema if isinstance(event.schema, str) else event.schema.decode()
                yield from ddl_changes(query, db, schema, tables, position,
                                       int(event.timestamp))
                continue
            if event.table not in tables or event.schema != schema:
                continue
            yield decoder.rows(event, position)
    finally:
        stream.close()


def oldest_unread_change(settings: dict[str, Any], server_id: int, schema: str,
                         tables: Sequence[str], after: Position) -> float | None:
    """Unix time of the first change to ``tables`` written after ``after`` (None: none yet):
    how far behind a run left the source, in seconds (metrics)."""
    stream = BinLogStreamReader(
        connection_settings=settings, server_id=server_id, blocking=False,
        resume_stream=True, log_file=after.file, log_pos=after.offset,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent,
                     PartialUpdateRowsEvent, RotateEvent],
        only_schemas=[schema], report_slave="floe", pymysql_wrapper=Connection)
    current = after.file
    try:
        for event in stream:
            if isinstance(event, RotateEvent):
                current = str(event.next_binlog)
                continue
            if Position(current, int(event.packet.log_pos)) <= after:
                continue
            if event.schema == schema and event.table in tables:
                return float(event.timestamp)
        return None
    finally:
        stream.close()


_Decoded = tuple[tuple[str, ...], tuple[ColumnType, ...], RowReader | None]


class _RowsDecoder:
    """Row events into ``RowChange``s; the per-table-map work (names, types, the decoder)
    is done once per distinct column list, not once per event."""

    def __init__(self) -> None:
        self._known: dict[tuple[Any, ...], _Decoded] = {}

    def decoded(self, columns: Sequence[Any]) -> _Decoded:
        key = tuple((c.type, c.name, c.unsigned, c.character_set_name,
                     *(getattr(c, a, None) for a in _METADATA),
                     tuple(c.enum_values or ()), tuple(c.set_values or ())) for c in columns)
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = (tuple(str(c.name) for c in columns),
                                        tuple(column_type(c) for c in columns),
                                        row_reader(columns))
        return found

    def rows(self, event: Any, position: Position) -> RowChange:
        if isinstance(event, PartialUpdateRowsEvent):
            raise ReplicationSetupError(
                f"{event.schema}.{event.table} has a partial JSON update at {position} "  # noqa: S608 - a message
                "(binlog_row_value_options=PARTIAL_JSON): floe needs whole row images; SET "
                "GLOBAL binlog_row_value_options = ''; then floe run --full-refresh")
        columns = event.columns
        if any(c.name is None for c in columns):
            raise ReplicationSetupError(
                f"the change to {event.schema}.{event.table} at {position} was written "
                "without column names (binlog_row_metadata=MINIMAL): SET GLOBAL "
                "binlog_row_metadata = 'FULL'; then floe run --full-refresh copies the "
                "tables again")
        names, types, read = self.decoded(columns)
        kind = ("insert" if isinstance(event, WriteRowsEvent) else
                "delete" if isinstance(event, DeleteRowsEvent) else "update")
        full = (1 << len(columns)) - 1
        bitmaps = [event.columns_present_bitmap] + (
            [event.columns_present_bitmap2] if kind == "update" else [])
        if any(int.from_bytes(b, "little") & full != full for b in bitmaps):
            raise ReplicationSetupError(
                f"the change to {event.schema}.{event.table} at {position} has a partial "
                "row image (binlog_row_image is not FULL): SET GLOBAL binlog_row_image = "
                "'FULL'; then floe run --full-refresh copies the tables again")
        if read is None:
            rows = _library_rows(event, names, kind)
        else:
            rows = _decoded_rows(event, read, kind)
        return RowChange(str(event.table), kind, names, types, rows, position,
                         int(event.timestamp))


_METADATA = ("max_length", "length_size", "precision", "decimals", "fsp", "bits", "bytes",
             "size")


def _decoded_rows(event: Any, read: RowReader, kind: str
                  ) -> list[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]]:
    """The event's remaining bytes (its rows) read with our decoder."""
    data = event.packet.read(event.event_size - event.packet.read_bytes)
    rows: list[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]] = []
    at, end = 0, len(data)
    while at < end:
        first, at = read(data, at)
        if kind == "update":
            second, at = read(data, at)
            rows.append((first, second))
        elif kind == "insert":
            rows.append((None, first))
        else:
            rows.append((first, None))
    return rows


def _library_rows(event: Any, names: tuple[str, ...], kind: str
                  ) -> list[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]]:
    rows: list[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]] = []
    for row in event.rows:
        if kind == "update":
            rows.append((_values(row["before_values"], row.get("before_none_sources"), names),
                         _values(row["after_values"], row.get("after_none_sources"), names)))
        else:
            values = _values(row["values"], row.get("none_sources"), names)
            rows.append((None, values) if kind == "insert" else (values, None))
    return rows


def _values(values: dict[str, Any], none_sources: dict[str, str] | None,
            names: tuple[str, ...]) -> tuple[Any, ...]:
    if none_sources:
        for name, why in none_sources.items():
            if why == NONE_SOURCE.EMPTY_SET:
                values = {**values, name: frozenset()}
    return tuple(values[n] for n in names)
