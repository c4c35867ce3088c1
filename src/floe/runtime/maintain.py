"""``floe maintain``: keep Bronze tables cheap to read as loads pile up.

A source on a 5-minute schedule makes 288 snapshots and 288+ small files a day.  Maintenance
does three things per table, in this order:

1. compaction: data files below ``small_bytes``, and files with position deletes, are rewritten
   into as few files as the target size allows, in one overwrite snapshot that also drops
   their delete files (rows unchanged, so ``floe changes`` reports nothing);
2. expiry: snapshots older than ``older_than`` go, except the newest ``retain_last``, the
   current one, the newest floe load (it holds every source's cursor) and, for each
   ``floe changes`` consumer, every snapshot from where it stopped up to now;
3. orphan removal: files under the table's location that no live snapshot, metadata file or
   merge's removed-rows file references, and older than ``older_than`` (pyiceberg's expiry
   forgets snapshots but deletes no file; a merge leaves every file it rewrote behind).

Compaction and expiry are optimistic commits: a load committing at the same moment wins, and
maintenance says the table was busy instead of retrying on top of it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import Table
from rich.console import Console
from rich.table import Table as RichTable

from floe.artifacts import CompiledSource
from floe.runtime.changes import CONSUMER_PREFIX
from floe.runtime.iceberg.position_deletes import scoped_deletes
from floe.runtime.iceberg.pyiceberg_internals import (
    RowLevelOverwrite,
    data_files,
    files_matching,
    storage_path,
    stored_files,
)
from floe.runtime.iceberg.removed_rows import COMPACTION_PROPERTY, REMOVED_ROWS_PROPERTY
from floe.runtime.iceberg.state import LOAD_ID_PROPERTY, state_files
from floe.runtime.observe.export import Telemetry, telemetry
from floe.runtime.observe.metrics import record_table

SMALL_FILE_BYTES = 32 * 1024 * 1024
MIN_FILES_TO_COMPACT = 4


@dataclass
class MaintainReport:
    table: str
    files_before: int = 0
    files_after: int = 0
    snapshots_before: int = 0
    snapshots_after: int = 0
    note: str = ""
    delete_files_after: int = 0


def _protected(table: Table, retain_last: int) -> set[int]:
    """Snapshots that must stay: the newest ones, the current, the newest floe load, and the
    positions of changes consumers."""
    keep: set[int] = set()
    newest = sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True)
    keep |= {s.snapshot_id for s in newest[:max(retain_last, 1)]}
    snapshot = table.current_snapshot()
    while snapshot is not None:  # the newest snapshot floe loaded holds the cursors
        keep.add(snapshot.snapshot_id)
        if snapshot.summary is not None and snapshot.summary[LOAD_ID_PROPERTY] is not None:
            break
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    positions = {int(value) for key, value in table.metadata.properties.items()
                 if key.startswith(CONSUMER_PREFIX) and value.lstrip("-").isdigit()}
    if positions:  # a consumer reads from its position up to now: keep that whole stretch
        snapshot = table.current_snapshot()
        while snapshot is not None and positions - keep:
            keep.add(snapshot.snapshot_id)
            parent = snapshot.parent_snapshot_id
            snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return keep


def compact(table: Table, small_bytes: int = SMALL_FILE_BYTES) -> int:
    """Rewrite the small data files, and every file a merge gave position deletes, as one set
    of files without their deletes; returns how many data files were replaced."""
    with table.transaction() as tx:
        tasks = [t for t in files_matching(tx, AlwaysTrue())
                 if t.file.file_size_in_bytes < small_bytes or t.delete_files]
        if len(tasks) < MIN_FILES_TO_COMPACT and not any(t.delete_files for t in tasks):
            return 0
        metadata = tx.table_metadata
        rows = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue()).to_table(
            tasks=tasks)
        with RowLevelOverwrite(tx, table.io, {COMPACTION_PROPERTY: "true"}) as snapshot:
            for task in tasks:
                snapshot.delete_data_file(task.file)
                for delete_file in scoped_deletes(task):
                    snapshot.remove_delete_file(delete_file)
            for data_file in data_files(metadata, table.io, rows, snapshot.commit_uuid,
                                        itertools.count(0)):
                snapshot.append_data_file(data_file)
    return len(tasks)


def expire(table: Table, older_than: dt.timedelta, retain_last: int) -> int:
    """Expire old snapshots that nothing needs; returns how many went."""
    cutoff = (dt.datetime.now(dt.UTC) - older_than).timestamp() * 1000
    keep = _protected(table, retain_last)
    old = [s.snapshot_id for s in table.snapshots()
           if s.timestamp_ms < cutoff and s.snapshot_id not in keep]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    return len(old)


def referenced_files(table: Table) -> set[str]:
    """Every file the table still points at: metadata (current and logged), each live
    snapshot's manifest list, manifests and data files, statistics, and the rows its merges
    removed (``floe changes`` reads them)."""
    locations = {table.metadata_location,
                 *(entry.metadata_file for entry in table.metadata.metadata_log),
                 *(s.statistics_path for s in table.metadata.statistics),
                 *(s.statistics_path for s in table.metadata.partition_statistics)}
    manifests: set[str] = set()
    for snapshot in table.snapshots():
        locations.add(snapshot.manifest_list)
        removed = snapshot.summary.get(REMOVED_ROWS_PROPERTY) if snapshot.summary else None
        if removed:
            locations.add(removed)
        locations.update(state_files(snapshot))  # sources' large states
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in manifests:
                continue
            manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                locations.add(entry.data_file.file_path)
    return {storage_path(location) for location in locations | manifests}


def remove_orphans(table: Table, older_than: dt.timedelta) -> int:
    """Delete the files under the table's location that nothing references and that are older
    than ``older_than`` (a younger one may belong to a load still writing); returns how many."""
    cutoff = time.time() - older_than.total_seconds()
    keep = referenced_files(table)
    scheme = urlparse(table.location()).scheme
    removed = 0
    for path, modified in stored_files(table.io, table.location()):
        if path in keep or modified >= cutoff:
            continue
        table.io.delete(path if scheme in ("", "file") else f"{scheme}://{path}")
        removed += 1
    return removed


def maintain_source(catalog: Catalog, source: CompiledSource, older_than: dt.timedelta,
                    retain_last: int) -> list[MaintainReport]:
    names = [source.table_for(r) for r in source.resources] or [
        identifier[-1] for identifier in catalog.list_tables(source.namespace)]
    reports = []
    for name in dict.fromkeys(names):
        report = MaintainReport(f"{source.namespace}.{name}")
        try:
            table = catalog.load_table((source.namespace, name))
        except NoSuchTableError:
            report.note = "not loaded yet"
            reports.append(report)
            continue
        report.snapshots_before = len(table.snapshots())
        report.files_before = sum(1 for _ in table.scan().plan_files())
        try:
            compacted = compact(table)
            table = catalog.load_table((source.namespace, name))
            expired = expire(table, older_than, retain_last)
            table = catalog.load_table((source.namespace, name))
            orphans = remove_orphans(table, older_than)
        except CommitFailedException:
            report.note = "a load committed meanwhile: run floe maintain again later"
            reports.append(report)
            continue
        table = catalog.load_table((source.namespace, name))
        report.snapshots_after = len(table.snapshots())
        tasks = list(table.scan().plan_files())
        report.files_after = len(tasks)
        report.delete_files_after = len({d.file_path for t in tasks for d in t.delete_files})
        report.note = (f"{compacted} small files compacted, {expired} snapshots expired, "
                       f"{orphans} unreferenced files removed")
        reports.append(report)
    return reports


def record_maintenance(metrics: Telemetry, product: str, source: str,
                       report: MaintainReport) -> None:
    """A maintained table's files and snapshots, as metrics."""
    if report.snapshots_after:
        record_table(metrics.instruments, product, source, report.table, {
            "data_files": report.files_after, "delete_files": report.delete_files_after,
            "snapshots": report.snapshots_after})


def print_maintenance(console: Console, artifacts_path: Path | None, select: Sequence[str],
                      env: str | None, older_than: dt.timedelta, retain_last: int) -> None:
    from floe.runtime.cells import name_column
    from floe.runtime.iceberg.catalog import connect
    from floe.runtime.project import load_project, require_environment, select_sources

    project = load_project(artifacts_path)
    require_environment(project.artifacts, env)
    catalog = connect(project)
    table = RichTable("source", name_column(), "files", "snapshots", "done",
                      title="floe maintain")
    metrics = telemetry(project.artifacts.environment)
    for source in select_sources(project.artifacts, select):
        for report in maintain_source(catalog, source, older_than, retain_last):
            record_maintenance(metrics, project.artifacts.product.name, source.name, report)
            table.add_row(source.name, report.table,
                          f"{report.files_before} -> {report.files_after}",
                          f"{report.snapshots_before} -> {report.snapshots_after}",
                          report.note)
    console.print(table)
    metrics.flush()
