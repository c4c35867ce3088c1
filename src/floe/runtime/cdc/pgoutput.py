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

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class Unchanged:
    """An unchanged TOASTed value: the message leaves it out; Bronze's value stands."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()
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


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        value = chr(self.data[self.at])
        self.at += 1
        return value

    def string(self) -> str:
        end = self.data.index(0, self.at)
        value = self.data[self.at:end].decode()
        self.at = end + 1
        return value

    def tuple_data(self) -> tuple[Value, ...]:
        values: list[Value] = []
        for _ in range(self.take("!h")):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            else:  # 't' text (or 'b' binary, only with binary = true, which floe never asks)
                size = self.take("!i")
                values.append(self.data[self.at:self.at + size])
                self.at += size
        return tuple(values)


def _timestamp(microseconds: int) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=microseconds)


def decode(data: bytes) -> Message | None:
    """One message, or None for the kinds Bronze does not need."""
    reader = _Reader(data)
    kind = reader.byte()
    if kind == "B":
        lsn, when, xid = reader.take("!q"), reader.take("!q"), reader.take("!i")
        return Begin(lsn, _timestamp(when), xid)
    if kind == "C":
        reader.take("!b")
        return Commit(reader.take("!q"), reader.take("!q"))
    if kind == "R":
        oid, schema, name = reader.take("!i"), reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.take("!h")):
            flags = reader.take("!b")
            columns.append(Column(reader.string(), reader.take("!i"), reader.take("!i"),
                                  bool(flags & 1)))
        return Relation(oid, schema, name, identity, tuple(columns))
    if kind == "I":
        oid = reader.take("!i")
        reader.byte()  # 'N'
        return Change("insert", oid, reader.tuple_data(), None)
    if kind == "U":
        oid = reader.take("!i")
        marker, old = reader.byte(), None
        if marker in "KO":
            old = reader.tuple_data()
            marker = reader.byte()  # 'N'
        return Change("update", oid, reader.tuple_data(), old)
    if kind == "D":
        oid = reader.take("!i")
        reader.byte()  # 'K' or 'O'
        return Change("delete", oid, None, reader.tuple_data())
    if kind == "T":
        count = reader.take("!i")
        reader.take("!b")
        return Truncate(tuple(reader.take("!i") for _ in range(count)))
    return None  # O origin, Y type, M message


def transactions(messages: Iterator[bytes]) -> Iterator[tuple[Begin, list[Message]]]:
    """Group decoded messages by transaction (relations are passed along in place)."""
    begin: Begin | None = None
    body: list[Message] = []
    for raw in messages:
        message = decode(raw)
        if isinstance(message, Begin):
            begin, body = message, []
        elif isinstance(message, Commit):
            if begin is not None:
                yield begin, body
            begin, body = None, []
        elif message is not None:
            body.append(message)
