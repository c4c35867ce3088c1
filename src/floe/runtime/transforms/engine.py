"""The engine floe.yaml expressions run in: an in-memory DuckDB that cannot reach anything.

The compiler already allowed only scalar functions (floe.expressions); this is the second
fence.  External access is off (no files, no network, no Python objects it was not handed),
extensions neither load nor install, and the configuration is locked, so even SQL that got past
the first fence could not turn them back on.  DuckDB over DataFusion: half the wheel (25 MB
against 43 MB), Arrow in and out without copies, and these switches.
"""

from __future__ import annotations

import os
from typing import Any

import duckdb
import pyarrow as pa

_LOCKED = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}

EngineError = duckdb.Error


_CORES = os.cpu_count() or 1
_SMALLEST_PART = 16_384


def _spread(table: pa.Table) -> pa.Table:
    """DuckDB scans an Arrow table one record batch per thread: a 125k-row batch alone keeps
    one core busy (HMAC of 1M values: 1.14 s on one core, 0.58 s on two).  Slices are views."""
    if table.num_rows < 2 * _SMALLEST_PART or len(table.to_batches()) >= _CORES:
        return table
    size = max(_SMALLEST_PART, -(-table.num_rows // _CORES))
    return pa.Table.from_batches(table.to_batches(max_chunksize=size), schema=table.schema)


class Engine:
    """One sandboxed connection; ``run`` evaluates a SELECT over one Arrow table."""

    def __init__(self) -> None:
        self._connection = duckdb.connect(config=dict(_LOCKED))

    def select(self, columns: list[str], table: pa.Table, params: dict[str, Any]) -> pa.Table:
        """``SELECT columns FROM table``.  Each column is SQL floe printed from a parsed,
        allowlisted expression (floe.expressions), never text as written; values reach the
        engine only as parameters."""
        sql = "SELECT " + ", ".join(columns) + " FROM batch"  # noqa: S608 (see above)
        self._connection.register("batch", _spread(table))
        try:
            return self._connection.sql(sql, params=params or None).to_arrow_table()
        finally:
            self._connection.unregister("batch")
