"""What a load hands the commit, and what the commit hands back: plain data, importable
without pyiceberg's and pyarrow's writers (the console and Dagster metadata need only these)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from floe.artifacts import HistoryConfig, MergeStrategy, SchemaContract, WriteMode

if TYPE_CHECKING:
    from pyiceberg.table.snapshots import Snapshot

    from floe.runtime.iceberg.evolution import TypeChange

UNFENCED = "<unfenced>"
"""``expected_token`` of a load that restored no state for its table (e.g. a full refresh)."""


@dataclass(frozen=True)
class TableLoad:
    """Everything to commit for one table of one load."""

    identifier: tuple[str, str]
    files: Sequence[str]
    write_mode: WriteMode
    merge_strategy: MergeStrategy | None
    primary_key: Sequence[str]
    schema_contract: SchemaContract
    state: dict[str, Any] | None
    load_id: str
    source_key: str = ""
    expected_token: str | None = UNFENCED
    recreate: bool = False  # --full-refresh: the table takes the source's current schema
    source_columns: dict[str, str] | None = None  # {attnum: name} at the source (PostgreSQL)
    column_renames: Sequence[tuple[str, str]] = ()  # (old, new) a CDC stream saw, in order
    delete_files: Sequence[str] = ()  # merge: parquet files of primary keys to remove
    delete_column: str | None = None  # merge: rows marked here remove their key (hard deletes)
    truncate: bool = False  # merge: the source emptied the table before these rows
    one_per_key: bool = False  # merge: the files already hold one row per key (a CDC fold)
    history: HistoryConfig | None = None  # merge_strategy scd2: every version is kept
    truncations: tuple[dt.datetime, ...] = ()  # history: when the source emptied the table
    partition_by: Sequence[str] = ()  # floe.yaml notation: day(updated_at), bucket(16, id)
    sort_by: Sequence[str] = ()
    started_at: float | None = None  # the load's start (epoch seconds): floe status


@dataclass(frozen=True)
class CommitResult:
    identifier: tuple[str, str]
    snapshot_id: int | None
    snapshots_added: int
    records_added: int
    bytes_written: int
    new_columns: tuple[str, ...] = ()
    total_rows: int | None = None
    type_changes: tuple[TypeChange, ...] = ()
    before_snapshot_id: int | None = None
    created: bool = False
    renamed: tuple[tuple[str, str], ...] = ()
    versions_opened: int | None = None  # history tables: versions this load opened / closed
    versions_closed: int | None = None
    delete_files_added: int = 0  # merge-on-read: position/equality delete files written


def total_rows(snapshot: Snapshot | None) -> int | None:
    """Rows in the table as of ``snapshot``, from its summary (no data files read): the data
    files' rows less the rows position deletes remove (floe's never delete a row twice)."""
    summary = snapshot.summary if snapshot is not None else None
    if summary is None or summary["total-records"] is None:
        return None
    return int(summary["total-records"]) - int(summary["total-position-deletes"] or 0)
