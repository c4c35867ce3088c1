"""Decode a row event's row images ourselves, from the table map's column metadata.

python-mysql-replication decodes every value through several method calls and a packet
wrapper; on a million-change backlog that decoding was 70% of a run (17k changes/s,
``bench/cdc_mysql.py``).  This decoder builds one small function per column once per table
map and walks the event's bytes with ``struct``; it returns exactly what the library returns
for the same bytes (``test_the_row_decoder_agrees_with_the_library``), and declines
(``None``) the column types it does not cover (MySQL's binary JSON, the pre-5.6 temporal
formats), for which the library decodes the event as before.

Layouts: MySQL's "Binary Log" internals (rows event, and each type's binary format).
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pymysql.charset import charset_by_name
from pymysqlreplication.constants import FIELD_TYPE

Reader = Callable[[bytes, int], tuple[Any, int]]
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_EPOCH = dt.datetime(1970, 1, 1)


def _fixed(fmt: str) -> Reader:
    unpack = struct.Struct(fmt).unpack_from
    size = struct.calcsize(fmt)

    def read(data: bytes, at: int) -> tuple[Any, int]:
        return unpack(data, at)[0], at + size
    return read


def _int24(unsigned: bool) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        return int.from_bytes(data[at:at + 3], "little", signed=not unsigned), at + 3
    return read


def _fsp_reader(fsp: int) -> Callable[[bytes, int], tuple[int, int]]:
    size = (fsp + 1) // 2
    scale = 10 ** (6 - fsp)

    def read(data: bytes, at: int) -> tuple[int, int]:
        if not size:
            return 0, at
        value = int.from_bytes(data[at:at + size], "big")
        if fsp % 2:
            value //= 10
        return value * scale, at + size
    return read


def _datetime2(fsp: int) -> Reader:
    fraction = _fsp_reader(fsp)

    def read(data: bytes, at: int) -> tuple[Any, int]:
        packed = int.from_bytes(data[at:at + 5], "big")
        micro, end = fraction(data, at + 5)
        year_month = (packed >> 22) & 0x1FFFF
        try:
            value = dt.datetime(year_month // 13, year_month % 13, (packed >> 17) & 0x1F,
                                (packed >> 12) & 0x1F, (packed >> 6) & 0x3F, packed & 0x3F)
        except ValueError:  # zero dates
            return None, end
        return (value.replace(microsecond=micro) if micro else value), end
    return read


def _timestamp2(fsp: int) -> Reader:
    fraction = _fsp_reader(fsp)

    def read(data: bytes, at: int) -> tuple[Any, int]:
        seconds = int.from_bytes(data[at:at + 4], "big")
        micro, end = fraction(data, at + 4)
        value = _EPOCH + dt.timedelta(seconds=seconds)
        return (value.replace(microsecond=micro) if micro else value), end
    return read


def _time2(fsp: int) -> Reader:
    """TIME(fsp): the whole and fractional parts are one signed packed number (MySQL's
    ``my_time_packed_from_binary``); a negative time with a fraction borrows from the
    whole part.  (The library reads the parts apart: -00:00:01.0001 comes out -1.9999 s.)"""
    frac_size = (fsp + 1) // 2

    def read(data: bytes, at: int) -> tuple[Any, int]:
        if frac_size == 3:
            packed = int.from_bytes(data[at:at + 6], "big") - 0x800000000000
            end = at + 6
        else:
            whole = int.from_bytes(data[at:at + 3], "big") - 0x800000
            frac = int.from_bytes(data[at + 3:at + 3 + frac_size], "big")
            end = at + 3 + frac_size
            if whole < 0 and frac:
                whole += 1
                frac -= 1 << (8 * frac_size)
            packed = (whole << 24) + frac * (10000 if frac_size == 1 else 100)
        negative = packed < 0
        packed = abs(packed)
        hms, micro = packed >> 24, packed & 0xFFFFFF
        value = dt.timedelta(hours=(hms >> 12) & 0x3FF, minutes=(hms >> 6) & 0x3F,
                             seconds=hms & 0x3F, microseconds=micro)
        return (-value if negative else value), end
    return read


def _date(data: bytes, at: int) -> tuple[Any, int]:
    packed = int.from_bytes(data[at:at + 3], "little")
    year, month, day = packed >> 9, (packed >> 5) & 0xF, packed & 0x1F
    if not (year and month and day):
        return None, at + 3
    return dt.date(year, month, day), at + 3


def _year(data: bytes, at: int) -> tuple[Any, int]:
    return data[at] + 1900, at + 1


def _decimal(precision: int, scale: int) -> Reader:
    integral = precision - scale
    whole_int, rest_int = divmod(integral, 9)
    whole_frac, rest_frac = divmod(scale, 9)
    size = (_DIG2BYTES[rest_int] + whole_int * 4 + whole_frac * 4 + _DIG2BYTES[rest_frac])

    def read(data: bytes, at: int) -> tuple[Any, int]:
        raw = bytearray(data[at:at + size])
        negative = not raw[0] & 0x80
        raw[0] ^= 0x80
        if negative:
            raw = bytearray(b ^ 0xFF for b in raw)
        pos = 0
        digits = ""
        first = _DIG2BYTES[rest_int]
        if first:
            digits += str(int.from_bytes(raw[pos:pos + first], "big"))
            pos += first
        for _ in range(whole_int):
            digits += f"{int.from_bytes(raw[pos:pos + 4], 'big'):09d}"
            pos += 4
        digits += "."
        for _ in range(whole_frac):
            digits += f"{int.from_bytes(raw[pos:pos + 4], 'big'):09d}"
            pos += 4
        last = _DIG2BYTES[rest_frac]
        if last:
            digits += f"{int.from_bytes(raw[pos:pos + last], 'big'):0{rest_frac}d}"
        return Decimal(("-" if negative else "") + digits), at + size
    return read


def _length_prefixed(length_size: int, encoding: str | None) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        length = int.from_bytes(data[at:at + length_size], "little")
        start = at + length_size
        raw = data[start:start + length]
        return (raw.decode(encoding) if encoding else raw), start + length
    return read


def _bit(nbytes: int, bits: int) -> Reader:
    """As the library gives it: the column's bits as text, most significant first."""
    def read(data: bytes, at: int) -> tuple[Any, int]:
        return format(int.from_bytes(data[at:at + nbytes], "big"), f"0{bits}b"), at + nbytes
    return read


def _enum(size: int, values: Sequence[str]) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        return values[int.from_bytes(data[at:at + size], "little")], at + size
    return read


def _set(size: int, values: Sequence[str]) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        mask = int.from_bytes(data[at:at + size], "little")
        return {v for i, v in enumerate(values) if mask & (1 << i)}, at + size
    return read


def _encoding(column: Any) -> str | None:
    """The Python codec of a text column, found as the library finds it (PyMySQL's charset
    table, else the name itself); None for binary columns; "" when Python has no such codec
    (the library then keeps the bytes: so do we, by leaving the column to it)."""
    name = getattr(column, "character_set_name", None)
    if name is None:
        return "utf8"
    if name == "binary":
        return None
    charset = charset_by_name(name)
    encoding = str(charset.encoding if charset else name)
    try:
        codecs.lookup(encoding)
    except LookupError:
        return ""
    return encoding


def reader(column: Any) -> Reader | None:
    """A decoding function for one column of a table map, or None: not covered here."""
    code = column.type
    unsigned = bool(column.unsigned)
    fixed = {FIELD_TYPE.TINY: "<B" if unsigned else "<b",
             FIELD_TYPE.SHORT: "<H" if unsigned else "<h",
             FIELD_TYPE.LONG: "<I" if unsigned else "<i",
             FIELD_TYPE.LONGLONG: "<Q" if unsigned else "<q",
             FIELD_TYPE.FLOAT: "<f", FIELD_TYPE.DOUBLE: "<d"}
    if code in fixed:
        return _fixed(fixed[code])
    if code == FIELD_TYPE.INT24:
        return _int24(unsigned)
    if code == FIELD_TYPE.NEWDECIMAL:
        return _decimal(int(column.precision), int(column.decimals))
    if code == FIELD_TYPE.DATETIME2:
        return _datetime2(int(column.fsp))
    if code == FIELD_TYPE.TIMESTAMP2:
        return _timestamp2(int(column.fsp))
    if code == FIELD_TYPE.TIME2:
        return _time2(int(column.fsp))
    if code == FIELD_TYPE.DATE:
        return _date
    if code == FIELD_TYPE.YEAR:
        return _year
    if code == FIELD_TYPE.ENUM and column.enum_values:
        return _enum(int(column.size), list(column.enum_values))
    if code == FIELD_TYPE.SET and column.set_values:
        return _set(int(column.size), list(column.set_values))
    if code == FIELD_TYPE.BIT:
        return _bit(int(column.bytes), int(column.bits))
    encoding = _encoding(column)
    if encoding == "":
        return None
    if code in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
        return _length_prefixed(2 if column.max_length > 255 else 1, encoding)
    if code == FIELD_TYPE.BLOB:
        return _length_prefixed(int(column.length_size), encoding)
    return None  # MySQL binary JSON, GEOMETRY, old DATETIME/TIME/TIMESTAMP: the library's


RowReader = Callable[[bytes, int], tuple[tuple[Any, ...], int]]


def row_reader(columns: Sequence[Any]) -> RowReader | None:
    """Decode one full row image (null bitmap, then the non-null values), or None when a
    column is not covered."""
    readers = [reader(c) for c in columns]
    if any(r is None for r in readers):
        return None
    count = len(readers)
    bitmap_size = (count + 7) // 8
    steps: list[Reader] = [r for r in readers if r is not None]

    def read(data: bytes, at: int) -> tuple[tuple[Any, ...], int]:
        nulls = int.from_bytes(data[at:at + bitmap_size], "little")
        at += bitmap_size
        values: list[Any] = []
        append = values.append
        for index in range(count):
            if nulls >> index & 1:
                append(None)
            else:
                value, at = steps[index](data, at)
                append(value)
        return tuple(values), at
    return read
