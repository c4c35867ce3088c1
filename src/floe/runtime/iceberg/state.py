"""Incremental state that lives in the Iceberg table itself.

floe's destination keeps no dlt state anywhere else: the state of a resource after a load is
written into the summary of the snapshot that holds the load's data.  Data and cursor therefore
commit together or not at all, and any machine can resume from the table alone.
"""

from __future__ import annotations

from typing import Any

from dlt.common.json import json as dlt_json
from pyiceberg.table import Table

STATE_PROPERTY = "floe.dlt-state"
LOAD_ID_PROPERTY = "floe.load-id"
_MAX_WALK = 10_000


def read_committed_state(table: Table) -> dict[str, Any] | None:
    """The resource state of the newest snapshot floe wrote (other writers' snapshots skipped)."""
    snapshot = table.current_snapshot()
    for _ in range(_MAX_WALK):
        if snapshot is None:
            return None
        raw = snapshot.summary[STATE_PROPERTY] if snapshot.summary is not None else None
        if raw:
            state: dict[str, Any] = dlt_json.typed_loads(raw)
            return state
        if snapshot.parent_snapshot_id is None:
            return None
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id)
    return None


def snapshot_properties(state: dict[str, Any] | None, load_id: str) -> dict[str, str]:
    props = {LOAD_ID_PROPERTY: load_id}
    if state is not None:
        # dlt's typed JSON keeps datetimes and decimals as such: cursors compare by type
        props[STATE_PROPERTY] = dlt_json.typed_dumps(state)
    return props
