"""The engine floe.yaml expressions run in: an in-memory DuckDB that cannot reach anything.

The compiler already allowed only scalar functions (floe.expressions); this is the second
fence.  External access is off (no files, no network, no Python objects it was not handed),
extensions neither load nor install, and the configuration is locked, so even SQL that got past
the first fence could not turn them back on.  DuckDB over DataFusion: half the wheel (25 MB
against 43 MB), Arrow in and out without copies, and these switches.
"""

from __future__ import annotations

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


class Engine:
    """One sandboxed connection; ``run`` evaluates a SELECT over one Arrow table."""

    def __init__(self) -> None:
        self._connection = duckdb.connect(config=dict(_LOCKED))

    def select(self, columns: list[str], table: pa.Table, params: dict[str, Any]) -> pa.Table:
        """``SELECT columns FROM table``.  Each column is SQL floe printed from a parsed,
        allowlisted expression (floe.expressions), never text as written; values reach the
        engine only as parameters."""
        sql = "SELECT " + ", ".join(columns) + " FROM batch"  # noqa: S608 (see above)
        self._connection.register("batch", table)
        try:
            return self._connection.sql(sql, params=params or None).to_arrow_table()
        finally:
            self._connection.unregister("batch")

    def close(self) -> None:
        self._connection.close()
