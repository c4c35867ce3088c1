"""The vectorized hashes floe verify uses equal the hashes of ``canonical``'s text, value by
value and type by type, so a source read as Python values and Bronze read as Arrow agree."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from floe.runtime.canonical import canonical, column_hashes, row_hashes, text_hashes

UTC = dt.UTC
CASES: list[tuple[pa.DataType, list[Any]]] = [
    (pa.int32(), [0, -7, 2**31 - 1, None]),
    (pa.int64(), [2**62, -(2**62), -(2**63), 10**18 - 1, 5]),
    (pa.uint64(), [2**64 - 1, 3]),
    (pa.float64(), [1.0, 1.5, -0.25, 2.0**60, 1e-7, float("nan"), float("inf"), None]),
    (pa.decimal128(12, 2), [Decimal("10.50"), Decimal("3.00"), Decimal("-0.00"),
                            Decimal("0.01"), None]),
    (pa.decimal128(38, 0), [Decimal("12345678901234567890123456789"), Decimal("100")]),
    (pa.timestamp("us", "UTC"), [dt.datetime(2024, 1, 1, 12, 30, 0, 5, tzinfo=UTC), None]),
    (pa.timestamp("ns"), [dt.datetime(1969, 12, 31, 23, 59, 59, 999999)]),
    (pa.date32(), [dt.date(2024, 2, 29), None]),
    (pa.time64("us"), [dt.time(12, 34, 56, 500000), dt.time(1, 2, 3)]),
    (pa.bool_(), [True, False, None]),
    (pa.string(), ["x", "", "{\"b\": 1,  \"a\": [1, 2]}", "[1,2", "007", "-0", "12", None]),
    (pa.binary(), [b"\xde\xad", b""]),
    (pa.list_(pa.int32()), [[1, 2], [], None]),
]


@pytest.mark.parametrize(("kind", "values"), CASES, ids=[str(k) for k, _ in CASES])
def test_arrow_hashes_equal_the_canonical_texts(kind: pa.DataType, values: list[Any]) -> None:
    expected = text_hashes(pa.array([None if v is None else canonical(v) for v in values],
                                    pa.string()))
    assert column_hashes(pa.array(values, kind)).tolist() == expected.tolist()


def test_postgresql_types_as_adbc_hands_them_over() -> None:
    numeric = pa.ExtensionArray.from_storage(pa.opaque(pa.string(), "numeric", "PostgreSQL"),
                                             pa.array(["10.50", "3", "-0.00", None]))
    assert column_hashes(numeric).tolist() == column_hashes(
        pa.array([Decimal("10.5"), Decimal(3), Decimal(0), None], pa.decimal128(10, 2))).tolist()
    jsonb = pa.ExtensionArray.from_storage(pa.json_(pa.string()),
                                           pa.array(['{"a": [1, 2], "b": 1}']))
    assert column_hashes(jsonb).tolist() == column_hashes(
        pa.array(['{"b":1,"a":[1,2]}'])).tolist()  # JSON by value
    value = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    uuids = pa.ExtensionArray.from_storage(pa.uuid(), pa.array([value.bytes], pa.binary(16)))
    assert column_hashes(uuids).tolist() == column_hashes(pa.array([str(value)])).tolist()


def test_numbers_by_value_and_rows_by_position() -> None:
    one = [column_hashes(pa.array(v, t)).tolist() for v, t in [
        ([1], pa.int8()), ([1.0], pa.float32()), ([Decimal("1.00")], pa.decimal128(5, 2)),
        (["1"], pa.string())]]
    assert one[1:] == one[:-1]
    assert column_hashes(pa.array([1])).tolist() != column_hashes(pa.array([2])).tolist()
    a, b = column_hashes(pa.array(["x"])), column_hashes(pa.array(["y"]))
    assert row_hashes([a, b]).tolist() != row_hashes([b, a]).tolist()
    assert row_hashes([a, b]).tolist() == row_hashes([a.copy(), b.copy()]).tolist()


def test_repeating_columns_hash_once_per_distinct_value_the_same() -> None:
    """Columns long enough to be hashed per distinct value give what each value's canonical
    text gives, nulls included."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa

    cycle = 2000
    columns = [
        pa.array([None if i % 7 == 0 else Decimal(i % 5) / 4 for i in range(cycle)],
                 pa.decimal128(10, 2)),
        pa.array([None if i % 9 == 0 else f"s{i % 3}" for i in range(cycle)]),
        pa.array([None if i % 11 == 0 else dt.date(2024, 1, 1 + i % 4) for i in range(cycle)]),
        pa.array([f"u{i}" for i in range(cycle)]),  # all distinct: the direct path
        pa.array([None] * cycle, pa.string()),  # all null: an empty dictionary
    ]
    for column in columns:
        expected = text_hashes(pa.array([None if v is None else canonical(v)
                                         for v in column.to_pylist()], pa.string()))
        assert (column_hashes(column) == expected).all(), column.type
