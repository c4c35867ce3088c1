"""The keys a merge (or a history load) replaces: which data files may hold them (a range on
the first key column, pruned by the files' bounds) and which rows of a file hold them.

A range, not an ``In`` of every key: pyiceberg binds an ``In`` literal by literal (7.7 s for
200k keys); the candidates are then matched in Arrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysFalse,
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    LessThanOrEqual,
)

_ROW_INDEX = "__floe_row_index"


def key_range(match: pa.Table) -> BooleanExpression:
    """Files that may hold one of ``match``'s keys: the first key column's [min, max]."""
    column = match.column(0)
    if not match.num_rows or column.null_count == len(column):
        return AlwaysFalse()
    bounds = pc.min_max(column)
    name = match.column_names[0]
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    try:
        return And(GreaterThanOrEqual(term=name, value=low),
                   LessThanOrEqual(term=name, value=high))
    except (TypeError, ValueError):  # a type pyiceberg has no literal for: no pruning
        return AlwaysTrue()


class KeySet:
    """The keys a merge replaces: built once, asked once per data file the merge may touch.

    One integer key (the usual case) is a sorted numpy array probed with ``searchsorted``:
    ~80 MB for 10M keys, where Arrow's ``is_in`` built a hash set of ~1 GB for every file.
    An integer key with a boolean flag (a history load's ``(id, _floe_is_current)``) is two
    such arrays, one per flag value.  Other keys use ``is_in`` (one column) or a join."""

    def __init__(self, keys: pa.Table) -> None:
        self.keys = keys
        self.name = keys.column_names[0]
        column = keys.column(0)
        self._sorted: np.ndarray | None = None
        self._by_flag: dict[bool, np.ndarray] | None = None
        plain = pa.types.is_integer(column.type) and not column.null_count
        if keys.num_columns == 1 and plain:
            self._sorted = _sorted(column)
        elif keys.num_columns == 2 and plain and pa.types.is_boolean(keys.column(1).type) \
                and not keys.column(1).null_count:
            flag = keys.column(1).to_numpy(zero_copy_only=False)
            ints = column.to_numpy().astype(np.int64, copy=False)
            self._by_flag = {True: np.sort(ints[flag]), False: np.sort(ints[~flag])}

    def hits(self, rows: pa.Table) -> pa.Array | pa.ChunkedArray:
        """For each of ``rows``: is its key one of these (NULL keys never match)."""
        values = rows[self.name]
        if self._sorted is not None and pa.types.is_integer(values.type):
            found = _probe(self._sorted, values)
            return pa.array(found & values.is_valid().to_numpy(zero_copy_only=False))
        if self._by_flag is not None and pa.types.is_integer(values.type):
            flags = rows[self.keys.column_names[1]]
            flag = pc.fill_null(flags, False).to_numpy(zero_copy_only=False)
            found = np.where(flag, _probe(self._by_flag[True], values),
                             _probe(self._by_flag[False], values))
            return pa.array(found & values.is_valid().to_numpy(zero_copy_only=False)
                            & flags.is_valid().to_numpy(zero_copy_only=False))
        if self.keys.num_columns == 1:
            hit = pc.is_in(values, value_set=self.keys.column(0).combine_chunks())
            return pc.fill_null(hit, False)
        marker = "__floe_matched"
        keys = self.keys
        wanted = pa.schema([rows.schema.field(n).with_nullable(True) for n in keys.column_names])
        if keys.schema != wanted:  # a join wants the same types (string vs large_string)
            keys = keys.cast(wanted)
        flagged = keys.append_column(marker, pa.repeat(True, keys.num_rows))
        joined = rows.append_column(_ROW_INDEX, pa.array(range(rows.num_rows), pa.int64())
                                    ).join(flagged, self.keys.column_names,
                                           join_type="left outer")
        return pc.fill_null(joined.sort_by(_ROW_INDEX)[marker], False)


def _sorted(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.sort(column.to_numpy().astype(np.int64, copy=False))


def _probe(sorted_keys: np.ndarray, values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """For each value: is it in ``sorted_keys`` (nulls probe as 0; the caller masks them)."""
    probe = pc.fill_null(values, 0).to_numpy().astype(np.int64, copy=False)
    if not len(sorted_keys):
        return np.zeros(len(probe), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, probe), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[at] == probe)
