"""Incremental state that lives in the Iceberg table itself, one record per source.

floe's destination keeps no dlt state anywhere else: after a load, each source's state is
written into the summary of the snapshot that holds the load's data, under its own key
(``floe.state.<pipeline>``).  Data and cursor therefore commit together or not at all, any
machine can resume from the table alone, and two sources writing one table never overwrite each
other's cursor: every floe commit carries the other sources' records forward unchanged.

Each record also names the load that wrote it (``load_id``).  That is the fencing token: a load
remembers the token it restored its state from and refuses to commit if the token moved, since
another run of the same source committed first (see ``commit.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dlt.common.json import json as dlt_json
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

STATE_PREFIX = "floe.state."
LOAD_ID_PROPERTY = "floe.load-id"
STARTED_PROPERTY = "floe.load-started-ms"  # when the load began (its commit is the snapshot)
LEGACY_STATE_PROPERTY = "floe.dlt-state"  # floe < 0.2: one record for the last writer
_MAX_WALK = 10_000
STATE_INLINE_BYTES = 8 * 1024  # larger states are kept in a file the snapshot points at


@dataclass(frozen=True)
class SourceState:
    """One source's record in a table: the load that wrote it and the dlt state it left."""

    load_id: str | None
    state: dict[str, Any] | None
    columns: dict[str, str] | None = None  # the source's {attnum: name} (PostgreSQL only)

    @property
    def token(self) -> str | None:
        return self.load_id


def newest_load(table: Table, load_id: str | None = None) -> Snapshot | None:
    """The newest snapshot floe wrote (maintenance or foreign writers' snapshots skipped),
    or with ``load_id`` the one that load wrote."""
    snapshot = table.current_snapshot()
    for _ in range(_MAX_WALK):
        if snapshot is None:
            return None
        written = snapshot.summary[LOAD_ID_PROPERTY] if snapshot.summary is not None else None
        if written is not None and (load_id is None or written == load_id):
            return snapshot
        if snapshot.parent_snapshot_id is None:
            return None
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id)
    return None


def _records(snapshot: Snapshot | None) -> dict[str, str]:
    if snapshot is None or snapshot.summary is None:
        return {}
    props = snapshot.summary.additional_properties
    return {key: value for key, value in props.items() if key.startswith(STATE_PREFIX)}


def read_source_state(table: Table, source_key: str) -> SourceState:
    """``source_key``'s record as of the table's current state (empty if it never loaded)."""
    snapshot = newest_load(table)
    summary = snapshot.summary if snapshot is not None else None
    raw = _records(snapshot).get(STATE_PREFIX + source_key)
    if raw is None:
        legacy = summary[LEGACY_STATE_PROPERTY] if summary is not None else None
        if summary is not None and legacy:
            return SourceState(summary[LOAD_ID_PROPERTY], dlt_json.typed_loads(legacy))
        return SourceState(None, None)
    record: dict[str, Any] = dlt_json.typed_loads(raw)
    state = record.get("state")
    if record.get("state_file"):
        with table.io.new_input(record["state_file"]).open() as handle:
            state = dlt_json.typed_loads(handle.read().decode("utf-8"))
    return SourceState(record.get("load_id"), state, record.get("columns"))


def state_files(snapshot: Snapshot) -> list[str]:
    """The state files the records of ``snapshot`` point at (``floe maintain`` keeps them)."""
    found = []
    for raw in _records(snapshot).values():
        path = dlt_json.typed_loads(raw).get("state_file")
        if path:
            found.append(str(path))
    return found


def restore_states(catalog: Catalog, namespace: str, source_key: str,
                   tables: Sequence[str]) -> dict[str, SourceState]:
    """table -> the source's record in it, as last committed (empty for a missing table)."""
    restored: dict[str, SourceState] = {}
    for name in dict.fromkeys(tables):
        try:
            restored[name] = read_source_state(catalog.load_table((namespace, name)),
                                               source_key)
        except NoSuchTableError:
            restored[name] = SourceState(None, None)
    return restored


def recorded_states(catalog: Catalog, namespace: str, source_key: str
                    ) -> dict[str, SourceState]:
    """table -> ``source_key``'s record, for the tables of ``namespace`` that hold one: where a
    source whose resources are only known once it runs (a python source) left its state."""
    try:
        identifiers = catalog.list_tables(namespace)
    except NoSuchNamespaceError:
        return {}
    found = {}
    for identifier in identifiers:
        try:
            record = read_source_state(catalog.load_table(identifier), source_key)
        except NoSuchTableError:
            continue
        if record.state is not None:
            found[identifier[-1]] = record
    return found


def read_committed_state(table: Table, source_key: str) -> dict[str, Any] | None:
    """The dlt state ``source_key`` committed with its last load into ``table``."""
    return read_source_state(table, source_key).state


def snapshot_properties(table: Table, source_key: str, state: dict[str, Any] | None,
                        load_id: str, columns: dict[str, str] | None = None,
                        carry_others: bool = True) -> dict[str, str]:
    """Summary properties for a new snapshot: this source's new record, the others' carried.

    A replace empties the table of every source's rows, so it carries no other source's
    cursor (``carry_others=False``): their next run loads everything again.
    """
    props = _records(newest_load(table)) if carry_others else {}
    record: dict[str, Any] = {"load_id": load_id, "state": state}
    text = dlt_json.typed_dumps(state)
    if len(text) > STATE_INLINE_BYTES:
        # a large state (a source's offsets per partition, pagination tokens) goes into a file
        # of its own, written before the commit: the summary is copied into every later
        # metadata file (bench/state_size.py: 8 KB inline cost 1.09x a commit, 512 KB 5.6x)
        path = f"{table.metadata.location}/metadata/floe-state-{uuid.uuid4().hex}.json"
        with table.io.new_output(path).create(overwrite=True) as handle:
            handle.write(text.encode("utf-8"))
        record = {"load_id": load_id, "state_file": path}
    if columns:
        record["columns"] = columns
    # dlt's typed JSON keeps datetimes and decimals as such: cursors compare by type
    props[STATE_PREFIX + source_key] = dlt_json.typed_dumps(record)
    props[LOAD_ID_PROPERTY] = load_id
    return props
