"""One ``mysql_cdc`` run: copy new tables, fold the binlog's row events, one commit per table.

Exactly once by binlog position: each table stores the position it is complete up to
(``binlog`` in its snapshot state, with the file, offset and the server's GTID position there).
A run reads from the oldest stored position up to the end of the log it saw at its start; a
row event at or below a table's stored position is skipped, so a crash between two tables'
commits applies nothing twice, and a crash before a commit loses nothing (the binlog still
has it: no slot to confirm, the server keeps its logs for ``binlog_expire_logs_seconds``).

The first run of a table is a copy the replay makes exact: the position is read before the
copy starts, and every change after it is replayed on top (full row images: last version per
key wins, deletes remove), the copy plus the replay committing as one replace.  A table with
no change for a while still moves its position on (a commit of no rows) once the log has
grown past it, so a quiet table never makes every run read an ever longer backlog.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog

from floe.artifacts import CompiledSource
from floe.runtime.cdc.commit import (
    Replicated,
    TablePlan,
    commit_folds,
    configuration_error,
    no_cyclic_gc,
)
from floe.runtime.cdc.fold import TableFold
from floe.runtime.cdc.mysql.binlog import (
    Rename,
    RowChange,
    Truncate,
    oldest_unread_change,
    read_changes,
)
from floe.runtime.cdc.mysql.server import (
    MySQLSource,
    Position,
    ReplicationSetupError,
    TableInfo,
    committed_at,
)
from floe.runtime.iceberg.state import SourceState, restore_states
from floe.runtime.ingestion.deadline import Deadline
from floe.runtime.ingestion.result import CdcLag
from floe.runtime.mysql.types import ColumnType, convert_row, converters
from floe.runtime.transforms import TableTransform

BINLOG_COLUMN = "_floe_binlog"
IDLE_ADVANCE_BYTES = 16 * 1024 * 1024
"""A table with no change moves its stored position on once the log is this far past it."""


def stored_position(state: SourceState) -> Position | None:
    found = state.state or {}
    if found.get("binlog_file") is None:
        return None
    return Position(str(found["binlog_file"]), int(found["binlog_offset"]))


def _key(source: CompiledSource, info: TableInfo) -> tuple[str, ...]:
    if source.primary_key:
        return tuple(source.primary_key)
    if info.primary_key:
        return info.primary_key
    raise ReplicationSetupError(
        f"table {info.name} has no primary key, so its updates and deletes cannot be "
        f"matched: add one (ALTER TABLE {info.name} ADD PRIMARY KEY (...)), set primary_key: "
        "in floe.yaml to columns that identify a row, or remove the table")


def load_changes(source: CompiledSource, catalog: Catalog, config: dict[str, Any],
                 workdir: Path, full_refresh: bool, deadline: Deadline,
                 load_id: str, transform: TableTransform | None = None,
                 started_at: float | None = None) -> Replicated:
    """Read (interruptible by ``timeout_seconds``), then commit each table."""
    tables = list(config["tables"])
    server_id = int(config["server_id"])  # defaulted by the compiler
    try:
        with MySQLSource(str(config["credentials"]), tables) as db:
            infos = db.check(server_id)
            keys = {t: _key(source, infos[t]) for t in tables}
            restored_by = restore_states(catalog, source.namespace, source.pipeline_name,
                                         [source.table_for(t) for t in tables])
            restored = {t: restored_by[source.table_for(t)] for t in tables}
            stored = {t: None if full_refresh else stored_position(restored[t])
                      for t in tables}
            with deadline.interrupting("reading changes"), no_cyclic_gc():
                folds, upto, gtid = _read(db, server_id, infos, keys, stored, workdir,
                                          source.history is not None)
            deadline.check("reading changes")
    except ReplicationSetupError as exc:
        raise configuration_error(source, str(exc)) from None
    state = {"binlog": upto.number, "binlog_file": upto.file, "binlog_offset": upto.offset,
             "gtid": gtid}
    plans = [TablePlan(t, folds[t], restored[t], state, stored[t] is None)
             for t in tables if folds[t].changes or stored[t] is None
             or _far_behind(stored[t], upto)]
    replicated = commit_folds(source, catalog, plans, workdir, full_refresh, load_id,
                              transform, started_at)
    replicated.lag = _lag(str(config["credentials"]), tables, upto, server_id)
    return replicated


def _lag(url: str, tables: list[str], upto: Position, server_id: int) -> CdcLag | None:
    """Binlog bytes written since the position this run read up to, and seconds since the
    first of them that changed one of its tables (metrics; never fails the run)."""
    try:
        with MySQLSource(url, tables) as db:
            behind = db.lag_bytes(upto)
            oldest = oldest_unread_change(db.settings, server_id, db.database, tables,
                                          upto) if behind else None
    except Exception:
        return None
    seconds = max(0.0, time.time() - oldest) if oldest is not None else 0.0
    return CdcLag(behind_bytes=behind, seconds=seconds)


def _far_behind(stored: Position | None, upto: Position) -> bool:
    if stored is None:
        return False
    return stored.file != upto.file or upto.offset - stored.offset > IDLE_ADVANCE_BYTES


def _read(db: MySQLSource, server_id: int, infos: dict[str, TableInfo],
          keys: dict[str, tuple[str, ...]], stored: dict[str, Position | None],
          workdir: Path, history: bool) -> tuple[dict[str, TableFold], Position, str | None]:
    """Copy the tables Bronze does not hold yet, and fold every change up to now."""
    for position in {p for p in stored.values() if p is not None}:
        db.check_kept(position)
    folds = {t: TableFold(keys[t], {n: c.arrow for n, c in infos[t].columns},
                          position_column=BINLOG_COLUMN, spill=workdir, name=t,
                          history=history) for t in infos}
    from_position = dict(stored)
    to_copy = [t for t in infos if stored[t] is None]
    if to_copy:
        copy_from, _ = db.position()  # before the copy: the replay covers what it misses
        copied_at = dt.datetime.now(dt.UTC)
        for table in to_copy:
            from_position[table] = copy_from
            for batch in db.copy(infos[table]):
                folds[table].add_copy_batch(batch, copy_from.number, copied_at)
    upto, gtid = db.position()
    start = min(p for p in from_position.values() if p is not None)
    if start >= upto:
        return folds, upto, gtid
    applier = _Applier(folds, from_position)
    for change in read_changes(db.settings, server_id, db.database, list(infos), start,
                               upto):
        applier.apply(change)
    return folds, upto, gtid


class _Applier:
    """Row events into the folds, skipping what each table already holds."""

    def __init__(self, folds: dict[str, TableFold], after: dict[str, Position | None]) -> None:
        self.folds, self.after = folds, after
        self._convert: dict[tuple[ColumnType, ...], list[Any]] = {}
        self._columns: dict[str, tuple[tuple[str, ...], tuple[ColumnType, ...]]] = {}

    def apply(self, change: RowChange | Truncate | Rename) -> None:
        fold = self.folds[change.table]
        held = self.after[change.table]
        if held is not None and change.position <= held:
            return  # already in Bronze (or in this run's copy)
        if isinstance(change, Truncate):
            fold.count("truncate")
            fold.truncate(committed_at(change.timestamp))
            return
        if isinstance(change, Rename):
            fold.rename(change.old, change.new)
            return
        listed = (change.names, change.columns)
        if listed != self._columns.get(change.table):
            self._columns[change.table] = listed
            for name, kind in zip(change.names, change.columns, strict=True):
                fold.types[name] = kind.arrow  # the newest column list and types win
        convert = self._convert.get(change.columns)
        if convert is None:
            convert = self._convert[change.columns] = converters(change.columns)
        number, when = change.position.number, committed_at(change.timestamp)
        names = change.names
        for before, after in change.rows:
            fold.count("delete" if after is None else "insert" if before is None
                       else "update")
            if after is None:
                assert before is not None
                fold.delete(names, convert_row(convert, before), number, when)
                continue
            new = convert_row(convert, after)
            if before is not None:
                old = convert_row(convert, before)
                if fold.key_of(names, old) != fold.key_of(names, new):  # the key changed
                    fold.delete(names, old, number, when)
            fold.upsert(names, new, number, when)
