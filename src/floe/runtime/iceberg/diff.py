"""What changed in a table between two snapshots, for every kind of snapshot.

pyiceberg's ``incremental_append_scan`` sees appends only; Bronze also has overwrites (replace,
merge, CDC) and deletes.  So: walk the snapshots after ``since`` up to ``until``, take the data
files each of them added and removed (from the manifests that snapshot wrote, nothing else), and
read only those.  Rows of removed files are deletes, rows of added files inserts; a row that a
copy-on-write merge rewrote unchanged is on both sides and cancels out.  A merge written by floe
keeps the rows it removed in one file (``removed_rows``), so its change is read from that file
and the files it added, never from the files it only rewrote nor from its position deletes.
Files are read with the table's current schema, so older rows get nulls for newer columns.
Cost follows the change, not the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile, ManifestEntry, ManifestEntryStatus
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Snapshot

from floe.runtime.iceberg.position_deletes import dead_positions, positions_by_file
from floe.runtime.iceberg.pyiceberg_internals import is_position_deletes
from floe.runtime.iceberg.removed_rows import (
    is_rewrite,
    parquet_file,
    removed_rows_file,
    rows_unchanged,
)

CHANGE_TYPE = "_change_type"
CHANGE_SNAPSHOT = "_change_snapshot_id"
CHANGE_COMMITTED_AT = "_change_committed_at"
_SIDE = "__floe_side"
_ORDER = "__floe_order"


class SnapshotGoneError(LookupError):
    """A snapshot of the range is no longer in the table (expired, or never was)."""


@dataclass(frozen=True)
class _FileChange:
    file: DataFile
    side: int  # +1 added, -1 removed
    snapshot: Snapshot
    positions: np.ndarray | None = None  # only these rows of the file (None: every row)


def snapshots_between(table: Table, since: int | None, until: int) -> list[Snapshot]:
    """The snapshots after ``since`` up to and including ``until``, oldest first."""
    found: list[Snapshot] = []
    snapshot = table.snapshot_by_id(until)
    if snapshot is None:
        raise SnapshotGoneError(f"snapshot {until} is not in table (expired or never existed)")
    while snapshot is not None and snapshot.snapshot_id != since:
        found.append(snapshot)
        parent = snapshot.parent_snapshot_id
        if parent is None:
            break
        next_snapshot = table.snapshot_by_id(parent)
        if next_snapshot is None:
            if since is None or parent == since:
                break
            raise SnapshotGoneError(
                f"snapshot {parent} (between {since} and {until}) has expired: the changes "
                "it made can no longer be read")
        snapshot = next_snapshot
    if since is not None and (snapshot is None or snapshot.snapshot_id != since):
        if table.snapshot_by_id(since) is None:
            raise SnapshotGoneError(f"snapshot {since} is no longer in the table (expired)")
        raise SnapshotGoneError(f"snapshot {since} is not an ancestor of snapshot {until}")
    return found[::-1]


def _file_changes(table: Table, snapshots: list[Snapshot]) -> list[_FileChange]:
    """Data files added (+1) and removed (-1), as written by each snapshot's own manifests; a
    file added and removed inside the range cancels.  A merge that kept the rows it removed
    (``removed_rows``) contributes that file as its deletes and none of the files it only
    rewrote nor its position deletes; a compaction contributes nothing."""
    changes: dict[str, _FileChange] = {}
    removed: list[_FileChange] = []
    for snapshot in snapshots:
        if rows_unchanged(snapshot):
            continue
        kept = removed_rows_file(table.io, snapshot, table.metadata.default_spec_id)
        if kept is not None:
            removed.append(_FileChange(kept, -1, snapshot))
        entries = [entry for manifest in snapshot.manifests(table.io)
                   if manifest.added_snapshot_id == snapshot.snapshot_id  # not inherited
                   and (kept is None or manifest.has_added_files())
                   for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False)
                   if entry.snapshot_id == snapshot.snapshot_id]
        partial = _by_position(table, snapshot, entries) if kept is None else []
        removed += partial
        handled = {change.file.file_path for change in partial}
        for entry in entries:
            path = entry.data_file.file_path
            side = {ManifestEntryStatus.ADDED: 1,
                    ManifestEntryStatus.DELETED: -1}.get(entry.status, 0)
            if is_position_deletes(entry.data_file) or not side or path in handled or (
                    kept is not None and (side < 0 or is_rewrite(snapshot, path))):
                continue
            earlier = changes.pop(path, None)
            if earlier is None or earlier.side == side:
                changes[path] = _FileChange(entry.data_file, side, snapshot)
    return [*changes.values(), *removed]


def _by_position(table: Table, snapshot: Snapshot, entries: list[ManifestEntry]
                 ) -> list[_FileChange]:
    """The rows a snapshot without a removed-rows file deleted by position (another writer's
    merge-on-read, or a lost file), and the data files it removed that had position deletes
    (only their live rows were removed).  These never cancel by path: ``_net`` sums them."""
    dropped = [e.data_file for e in entries if is_position_deletes(e.data_file)
               and e.status == ManifestEntryStatus.DELETED]
    found: list[_FileChange] = []
    for entry in entries:
        data_file = entry.data_file
        if is_position_deletes(data_file) and entry.status == ManifestEntryStatus.ADDED:
            for path, positions in positions_by_file(table.io, data_file).items():
                new = np.setdiff1d(positions, dead_positions(table.io, dropped, path))
                if new.size:
                    named = parquet_file(path, data_file.spec_id, data_file.partition)
                    found.append(_FileChange(named, -1, snapshot, new))
        elif not is_position_deletes(data_file) and entry.status == ManifestEntryStatus.DELETED:
            dead = dead_positions(table.io, dropped, data_file.file_path)
            if dead.size:  # instead of the whole file's removal
                live = np.setdiff1d(np.arange(data_file.record_count), dead)
                found.append(_FileChange(data_file, -1, snapshot, live))
    return found


def _read(table: Table, change: _FileChange) -> pa.Table:
    metadata = table.metadata
    rows = ArrowScan(metadata, table.io, table.schema(), AlwaysTrue()).to_table(
        tasks=[FileScanTask(change.file)])
    if change.positions is not None:
        rows = rows.take(pa.array(change.positions, pa.int64()))
    count = rows.num_rows
    committed = change.snapshot.timestamp_ms * 1000
    return rows.append_column(_SIDE, pa.array(np.full(count, change.side, np.int8))) \
        .append_column(CHANGE_SNAPSHOT, pa.array(np.full(count, change.snapshot.snapshot_id,
                                                         np.int64))) \
        .append_column(CHANGE_COMMITTED_AT, pa.array(np.full(count, committed, np.int64)).cast(
            pa.timestamp("us", tz="UTC")))


def diff(table: Table, since: int | None, until: int | None) -> pa.Table:
    """Rows inserted and deleted after snapshot ``since`` (None: from an empty table) up to
    ``until`` (None: the current snapshot), with ``_change_type``, ``_change_snapshot_id``
    and ``_change_committed_at``; an update is the delete of the old row and the insert of
    the new one."""
    schema = _row_schema(table)
    current = table.current_snapshot()
    until_id = until if until is not None else (current.snapshot_id if current else None)
    empty = _empty(schema)
    if until_id is None or until_id == since:
        return empty
    changes = _file_changes(table, snapshots_between(table, since, until_id))
    if not changes:
        return empty
    rows = pa.concat_tables([_read(table, c) for c in changes], promote_options="permissive")
    if len({c.side for c in changes}) == 1:  # only appends (or only deletes): nothing cancels
        kind = "insert" if changes[0].side > 0 else "delete"
        return rows.drop_columns([_SIDE]).select(schema.names).append_column(
            CHANGE_TYPE, pa.repeat(kind, rows.num_rows)).append_column(
            CHANGE_SNAPSHOT, rows[CHANGE_SNAPSHOT]).append_column(
            CHANGE_COMMITTED_AT, rows[CHANGE_COMMITTED_AT])
    return _net(rows, schema)


def _net(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cancel rows present on both sides; what is left are inserts and deletes."""
    data = schema.names
    rows = rows.append_column(_ORDER, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    groups = rows.group_by(data, use_threads=True).aggregate(
        [(_SIDE, "sum"), (_SIDE, "count"), (CHANGE_SNAPSHOT, "max"),
         (CHANGE_COMMITTED_AT, "max"), (_ORDER, "min")])
    net = groups[f"{_SIDE}_sum"]
    kept = groups.filter(pc.not_equal(net, 0))
    counts = pc.abs(kept[f"{_SIDE}_sum"]).to_pylist()  # a row inserted twice appears twice
    kept = kept.take(pa.array([i for i, n in enumerate(counts) for _ in range(n)], pa.int64()))
    kind = pc.if_else(pc.greater(kept[f"{_SIDE}_sum"], 0), "insert", "delete")
    result = kept.select(data).append_column(CHANGE_TYPE, kind) \
        .append_column(CHANGE_SNAPSHOT, kept[f"{CHANGE_SNAPSHOT}_max"]) \
        .append_column(CHANGE_COMMITTED_AT, kept[f"{CHANGE_COMMITTED_AT}_max"])
    order = pc.sort_indices(pa.table({"s": kept[f"{CHANGE_SNAPSHOT}_max"],
                                      "t": kind, "o": kept[f"{_ORDER}_min"]}),
                            sort_keys=[("s", "ascending"), ("o", "ascending")])
    return result.take(order)


def _row_schema(table: Table) -> pa.Schema:
    """The Arrow schema rows of ``table`` are read with (its current schema)."""
    return ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(
        tasks=[]).schema


def no_changes(table: Table) -> pa.Table:
    """An empty result with the columns ``diff`` would return for ``table``."""
    return _empty(_row_schema(table))


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table().append_column(CHANGE_TYPE, pa.array([], pa.string())) \
        .append_column(CHANGE_SNAPSHOT, pa.array([], pa.int64())) \
        .append_column(CHANGE_COMMITTED_AT, pa.array([], pa.timestamp("us", tz="UTC")))
