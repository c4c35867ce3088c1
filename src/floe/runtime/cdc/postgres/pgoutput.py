"""A decoder for PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

Message layouts are PostgreSQL's "Logical Replication Message Formats".  Values arrive as text
(their type's output function); ``TupleData`` columns are ``n`` (null), ``u`` (an unchanged
TOASTed value the message does not repeat) or ``t`` (text).  Only what Bronze needs is decoded:
begin/commit (LSN and time of each transaction), relations (columns, types, key flags),
insert/update/delete and truncate; origin, type and logical messages are skipped.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from floe.runtime.cdc.fold import UNCHANGED, Unchanged

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


Value = bytes | None | Unchanged


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str  # d default, f full, i index, n nothing
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    committed_at: dt.datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclass(frozen=True)
class Change:
    """An insert, update or delete of one row of ``relation``.  ``old`` is the old key (or the
    whole old row under REPLICA IDENTITY FULL) when the message carries one."""

    kind: str  # insert | update | delete
    relation: int
    new: tuple[Value, ...] | None
    old: tuple[Value, ...] | None


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]


Message = Begin | Commit | Relation | Change | Truncate


def lsn_to_int(text: str) -> int:
    """``'16/B374D848'`` -> the 64-bit position."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


_I16 = struct.Struct("!h").unpack_from
_I32 = struct.Struct("!i").unpack_from
_I64 = struct.Struct("!q").unpack_from
_BEGIN = struct.Struct("!qqi").unpack_from
_COMMIT = struct.Struct("!bqq").unpack_from
_T, _N = ord("t"), ord("n")


def _tuple_data(data: bytes, at: int) -> tuple[tuple[Value, ...], int]:
    """TupleData at ``at``: the values and where the next field starts (the hot loop of a
    run: one call per row change, so no helper objects or method calls inside)."""
    (count,) = _I16(data, at)
    at += 2
    values: list[Value] = []
    append = values.append
    for _ in range(count):
        kind = data[at]
        at += 1
        if kind == _T:  # text ('b' binary only with binary = true, which floe never asks)
            (size,) = _I32(data, at)
            at += 4
            append(data[at:at + size])
            at += size
        elif kind == _N:
            append(None)
        else:  # 'u'
            append(UNCHANGED)
    return tuple(values), at


def _string(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(0, at)
    return data[at:end].decode(), end + 1


def _timestamp(microseconds: int) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=microseconds)


def _relation(data: bytes) -> Relation:
    (oid,) = _I32(data, 1)
    schema, at = _string(data, 5)
    name, at = _string(data, at)
    identity = chr(data[at])
    (count,) = _I16(data, at + 1)
    at += 3
    columns = []
    for _ in range(count):
        flags = data[at]
        column, at = _string(data, at + 1)
        type_oid, typmod = _I32(data, at)[0], _I32(data, at + 4)[0]
        at += 8
        columns.append(Column(column, type_oid, typmod, bool(flags & 1)))
    return Relation(oid, schema, name, identity, tuple(columns))


def decode(data: bytes) -> Message | None:
    """One message, or None for the kinds Bronze does not need."""
    kind = data[0]
    if kind == 73:  # I insert: relation, 'N', new tuple
        return Change("insert", _I32(data, 1)[0], _tuple_data(data, 6)[0], None)
    if kind == 85:  # U update: relation, ['K' | 'O' old tuple], 'N', new tuple
        relation = _I32(data, 1)[0]
        old: tuple[Value, ...] | None = None
        at = 5
        if data[at] in (75, 79):
            old, at = _tuple_data(data, at + 1)
        return Change("update", relation, _tuple_data(data, at + 1)[0], old)
    if kind == 68:  # D delete: relation, 'K' | 'O', old tuple
        return Change("delete", _I32(data, 1)[0], None, _tuple_data(data, 6)[0])
    if kind == 66:  # B begin
        lsn, when, xid = _BEGIN(data, 1)
        return Begin(lsn, _timestamp(when), xid)
    if kind == 67:  # C commit
        _, commit_lsn, end_lsn = _COMMIT(data, 1)
        return Commit(commit_lsn, end_lsn)
    if kind == 82:  # R relation
        return _relation(data)
    if kind == 84:  # T truncate: count, options, relations
        (count,) = _I32(data, 1)
        return Truncate(tuple(_I32(data, 6 + 4 * i)[0] for i in range(count)))
    return None  # O origin, Y type, M message


def changes_with_their_transaction(messages: Iterator[bytes]
                                   ) -> Iterator[tuple[Begin, Message]]:
    """Each relation, change and truncate with the Begin of its transaction (its commit LSN
    and time), streamed: a transaction of a million rows is never held in memory."""
    begin: Begin | None = None
    for raw in messages:
        message = decode(raw)
        if isinstance(message, Begin):
            begin = message
        elif isinstance(message, Commit):
            begin = None
        elif message is not None and begin is not None:
            yield begin, message
