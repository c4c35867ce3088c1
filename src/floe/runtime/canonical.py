"""The canonical form ``floe verify`` compares, and its 64-bit hashes, column at a time.

Equal values must hash equal whatever type each side holds them in: numbers by value (``1``,
``1.0`` and ``1.00`` agree), timestamps as UTC microseconds, JSON by value (keys sorted), bytes
as hex.  ``canonical`` defines the form for one Python value; ``column_hashes`` computes the
same thing for a whole Arrow column without visiting values in Python where Arrow can: integers
and times go straight to a 64-bit mix, and text is hashed once per distinct value (a status
column of three values costs three hashes, not a million).  A value whose canonical text is an
integer literal is hashed as that integer on both paths, so the two always agree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any
from uuid import UUID

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NULL = "\\N"
_NULL_HASH = np.uint64(0x6A09E667F3BCC908)
_TEXT_TAG = np.uint64(0xBB67AE8584CAA73B)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_INTEGER_LITERAL = r"^(0|-?[1-9][0-9]{0,17})$"  # fits an int64, one spelling per value


def canonical(value: Any) -> str:
    """One value's canonical text: equal values give equal text whatever their type."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        delta = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return str(delta // dt.timedelta(microseconds=1))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(value, UUID):
        return str(value)
    return _json_by_value(str(value))


def _json_by_value(text: str) -> str:
    if text[:1] in "{[":  # JSON by value, whichever way a loader spaced it
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except ValueError:
            return text
    return text


def _mix(values: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """splitmix64's finalizer: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(30))
        values = values * np.uint64(0xBF58476D1CE4E5B9)
        values = values ^ (values >> np.uint64(27))
        values = values * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _integers(values: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Hashes of an int64 array (nulls included)."""
    raw = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    hashed = _mix(raw.view(np.uint64))
    return np.where(values.is_null().to_numpy(zero_copy_only=False), _NULL_HASH, hashed)


def text_hashes(text: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Hashes of canonical texts: integer literals as integers, the rest by BLAKE2b, once per
    distinct value."""
    text = text.cast(pa.string())
    is_int = pc.fill_null(pc.match_substring_regex(text, _INTEGER_LITERAL), False)
    hashed = _integers(pc.if_else(is_int, text, None).cast(pa.int64()))
    others = pc.invert(is_int).to_numpy(zero_copy_only=False) & ~np.asarray(
        text.is_null().to_numpy(zero_copy_only=False))
    if others.any():
        encoded = pc.dictionary_encode(text.filter(pa.array(others)))
        distinct = np.array([
            int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")
            for value in encoded.dictionary.to_pylist()], dtype=np.uint64) ^ _TEXT_TAG
        hashed[others] = distinct[encoded.indices.to_numpy(zero_copy_only=False)]
    return hashed


def _python(values: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The slow, exact path for types Arrow has no canonical kernel for."""
    return text_hashes(pa.array([None if v is None else canonical(v)
                                 for v in values.to_pylist()], pa.string()))


def _decimal_text(text: pa.Array) -> pa.Array:
    """``10.50`` -> ``10.5``, ``3.00`` -> ``3``, ``-0.00`` -> ``0`` (what ``canonical`` gives a
    Decimal)."""
    trimmed = pc.utf8_rtrim(pc.utf8_rtrim(text, "0"), ".")
    trimmed = pc.if_else(pc.match_substring(text, "."), trimmed, text)
    return pc.if_else(pc.equal(trimmed, "-0"), "0", trimmed)


def column_hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """One hash per value of ``values``, equal to ``text_hashes`` of its ``canonical`` text.

    Text-shaped columns (strings, decimals, dates) are hashed once per distinct value when
    they repeat: a million amounts of a thousand values cost a thousand texts, not a
    million (1M-row verify: 0.2 s less)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if (pa.types.is_decimal(kind) or pa.types.is_date(kind) or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)) and len(values) > 1024:
        encoded = pc.dictionary_encode(values)
        if len(encoded.dictionary) * 2 < len(values):
            # one more slot for null: an all-null column has an empty dictionary
            distinct: np.ndarray[Any, np.dtype[np.uint64]] = np.append(
                _column_hashes(encoded.dictionary), _NULL_HASH)
            at = pc.fill_null(encoded.indices, len(encoded.dictionary))
            hashed: np.ndarray[Any, np.dtype[np.uint64]] = distinct[
                at.to_numpy(zero_copy_only=False)]
            return hashed
    return _column_hashes(values)


def _column_hashes(values: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    kind = values.type
    if isinstance(kind, pa.BaseExtensionType):
        if getattr(kind, "type_name", "") == "numeric":  # ADBC's PostgreSQL numeric
            return text_hashes(_decimal_text(values.storage))
        if kind.extension_name == "arrow.json":
            return _python(values.storage)
        return _python(values)
    if pa.types.is_boolean(kind):
        return text_hashes(pc.if_else(values, "t", "f"))
    if pa.types.is_integer(kind) and kind != pa.uint64():
        values = values.cast(pa.int64())
        hashed = _integers(values)
        huge = pc.fill_null(pc.or_(pc.greater_equal(values, 10**18),
                                   pc.less_equal(values, -(10**18))), False)
        if pc.any(huge).as_py():  # beyond the integer literals text_hashes takes as numbers
            hashed[huge.to_numpy(zero_copy_only=False)] = text_hashes(
                values.filter(huge).cast(pa.string()))
        return hashed
    if pa.types.is_timestamp(kind):
        return _integers(values.cast(pa.timestamp("us", kind.tz), safe=False).cast(pa.int64()))
    if pa.types.is_decimal(kind):
        return text_hashes(_decimal_text(values.cast(pa.string())))
    if pa.types.is_floating(kind):
        whole = pc.fill_null(pc.and_(pc.equal(values, pc.round(values)),
                                     pc.less(pc.abs(values), 2.0**53)), False)
        mask = whole.to_numpy(zero_copy_only=False)
        hashed = np.empty(len(values), dtype=np.uint64)
        hashed[mask] = _integers(values.filter(whole).cast(pa.int64()))
        hashed[~mask] = _python(values.filter(pc.invert(whole)))  # repr, as canonical does
        return hashed
    if pa.types.is_date(kind):
        return text_hashes(values.cast(pa.string()))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        looks_json = pc.fill_null(pc.match_substring_regex(values, r"^[\[{]"), False)
        if not pc.any(looks_json).as_py():
            return text_hashes(values)
        text = values.to_pylist()
        for i in np.flatnonzero(looks_json.to_numpy(zero_copy_only=False)):
            text[i] = _json_by_value(text[i])
        return text_hashes(pa.array(text, pa.string()))
    return _python(values)


def row_hashes(columns: list[np.ndarray[Any, np.dtype[np.uint64]]]
               ) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """One hash per row from its columns' hashes, position by position (a value moved to
    another column changes it)."""
    with np.errstate(over="ignore"):
        total = np.zeros(len(columns[0]) if columns else 0, dtype=np.uint64)
        for position, hashed in enumerate(columns):
            total = total + _mix(hashed + np.uint64(position + 1) * _GOLDEN)
        return _mix(total)
