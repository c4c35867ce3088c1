"""How far a ``mysql_cdc`` source is behind its server, for ``floe tables``: the binlog bytes
written after the oldest position its Bronze tables store (what the next run reads)."""

from __future__ import annotations

from typing import Any

from pyiceberg.catalog import Catalog

from floe.artifacts import CompiledSource
from floe.runtime.cdc.mysql.load import stored_position
from floe.runtime.cdc.mysql.server import MySQLSource
from floe.runtime.iceberg.state import restore_states


def binlog_lag(source: CompiledSource, config: dict[str, Any], catalog: Catalog) -> str:
    tables = list(config["tables"])
    restored = restore_states(catalog, source.namespace, source.pipeline_name,
                              [source.table_for(t) for t in tables])
    positions = [stored_position(state) for state in restored.values()]
    known = [p for p in positions if p is not None]
    if not known:
        return "not read yet: the first run copies the tables"
    oldest = min(known)
    with MySQLSource(str(config["credentials"]), tables) as db:
        behind = db.lag_bytes(oldest)
    return f"at {oldest}, lag {behind:,} bytes"
