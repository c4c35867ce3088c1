"""Fold a run's changes into what Bronze needs: per table, the last version of each key, the
keys to remove, and whether the table was truncated.  Shared by every CDC source family: each
reader (``postgres/``, ``mysql/``) turns its stream into ``upsert``/``delete``/``truncate``/
``rename`` calls on a ``TableFold``.

A key inserted and deleted between two runs never reaches Bronze (hard deletes); an update that
changes the primary key removes the old key; an unchanged value a stream leaves out (PostgreSQL's
TOAST) keeps the value of the row's previous version (from this run's fold, or else from Bronze,
filled in by the caller).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from floe.runtime.cdc.copy_parts import CopyParts

LSN_COLUMN = "_floe_lsn"
COMMITTED_COLUMN = "_floe_committed_at"
DELETED_COLUMN = "_floe_deleted_at"
_TIMESTAMP = pa.timestamp("us", tz="UTC")

Row = dict[str, Any]
Key = tuple[Any, ...]


class Unchanged:
    """A value the stream leaves out because it did not change (PostgreSQL's unchanged TOASTed
    values): Bronze's value stands."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()


@dataclass(slots=True)
class _Version:
    """A key's newest version: its values in ``names`` order (None: deleted).  Tuples with a
    shared names tuple, not a dict per row: a million changes fit in half the memory."""

    names: tuple[str, ...]
    values: tuple[Any, ...] | None
    lsn: int
    committed_at: dt.datetime

    def get(self, name: str) -> Any:
        assert self.values is not None
        return self.values[self.names.index(name)] if name in self.names else None


@dataclass(slots=True)
class _Logged:
    """One change as it came (scd2 keeps them all): a delete holds the old row."""

    names: tuple[str, ...]
    values: tuple[Any, ...]
    position: int
    committed_at: dt.datetime
    deleted: bool


@dataclass
class TableFold:
    key: tuple[str, ...]
    types: dict[str, pa.DataType] = field(default_factory=dict)  # column -> type, in order
    position_column: str = LSN_COLUMN  # where each row's source position lands
    versions: dict[Key, _Version] = field(default_factory=dict)
    truncated: bool = False
    changes: int = 0
    copied: int = 0  # rows of the first run's copy (reported as loaded, like the changes)
    spill: Path | None = None  # where the copy's batches go as they come (None: in memory)
    name: str = "table"
    history: bool = False  # scd2: every change is kept (``log``), not only the last per key
    log: list[_Logged] = field(default_factory=list)
    truncations: list[dt.datetime] = field(default_factory=list)  # history: TRUNCATE times
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old, new), in stream order
    events: dict[str, int] = field(default_factory=dict)  # changes read, by kind (metrics)
    _key_at: dict[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = CopyParts(self.spill, self.name)  # the copy, columnar (no dict per row)

    def add_copy(self, names: Sequence[str], rows: Sequence[tuple[Any, ...]], lsn: int,
                 committed_at: dt.datetime) -> None:
        """A batch of copied rows: kept columnar; replayed changes override them by key."""
        values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        columns = {name: pa.array([_plain(v, self.types[name]) for v in column]
                                  if pa.types.is_string(self.types[name]) else column,
                                  self.types[name])
                   for name, column in zip(names, values, strict=True)}
        columns[self.position_column] = pa.array([lsn] * len(rows), pa.int64())
        columns[COMMITTED_COLUMN] = pa.array([committed_at] * len(rows), _TIMESTAMP)
        self.base.add(pa.table(columns))
        self.copied += len(rows)

    def add_copy_batch(self, batch: pa.RecordBatch, position: int,
                       committed_at: dt.datetime) -> None:
        """A batch of copied rows already typed as Bronze keeps them (a columnar reader)."""
        rows = batch.num_rows
        micros = int(committed_at.timestamp() * 1_000_000)
        table = pa.Table.from_batches([batch]).append_column(
            self.position_column, pa.array(np.full(rows, position, np.int64))).append_column(
            COMMITTED_COLUMN, pa.array(np.full(rows, micros, np.int64)).cast(_TIMESTAMP))
        self.base.add(table)
        self.copied += rows

    def rename(self, old: str, new: str) -> None:
        """A column renamed at the source mid-stream: every version folded so far, and the
        copy, carry its values under the new name (the commit renames Bronze's column)."""
        if old == new:
            return
        if old in self.types and new in self.types:  # listed already (the current names)
            del self.types[old]
        elif old in self.types:
            self.types = {new if n == old else n: kind for n, kind in self.types.items()}
        self.key = tuple(new if name == old else name for name in self.key)
        renamed: dict[tuple[str, ...], tuple[str, ...]] = {}
        for version in self.versions.values():
            names = version.names
            if old in names:
                if names not in renamed:
                    renamed[names] = tuple(new if n == old else n for n in names)
                version.names = renamed[names]
        self.base.rename(old, new)
        self._key_at.clear()
        self.renamed.append((old, new))

    def count(self, kind: str) -> None:
        """One change of ``kind`` (insert, update, delete, truncate) read from the stream."""
        self.events[kind] = self.events.get(kind, 0) + 1

    def key_of(self, names: tuple[str, ...], values: tuple[Any, ...]) -> Key:
        at = self._key_at.get(names)
        if at is None:
            at = self._key_at[names] = tuple(names.index(k) for k in self.key)
        return tuple(values[i] for i in at)

    def key_of_row(self, row: Row) -> Key:
        return tuple(row.get(name) for name in self.key)

    def upsert(self, names: tuple[str, ...], values: tuple[Any, ...], lsn: int,
               committed_at: dt.datetime) -> None:
        if self.history:  # every change is kept (the log); the latest-per-key map is not
            self.log.append(_Logged(names, values, lsn, committed_at, False))
            self.changes += 1
            return
        key = self.key_of(names, values)
        if UNCHANGED in values:
            before = self.versions.get(key)
            if before is not None and before.values is not None:
                values = tuple(before.get(n) if v is UNCHANGED else v
                               for n, v in zip(names, values, strict=True))
        self.versions[key] = _Version(names, values, lsn, committed_at)
        self.changes += 1

    def delete(self, names: tuple[str, ...], old: tuple[Any, ...], lsn: int,
               committed_at: dt.datetime) -> None:
        self.changes += 1
        if self.history:
            self.log.append(_Logged(names, old, lsn, committed_at, True))
            return
        self.versions[self.key_of(names, old)] = _Version(names, None, lsn, committed_at)

    def truncate(self, at: dt.datetime | None = None) -> None:
        self.versions.clear()
        self.truncated = True
        self.changes += 1
        if self.history:  # every version open then closes at that instant, in stream order
            moment = at or dt.datetime.now(dt.UTC)
            open_now: dict[Key, _Logged] = {}
            for entry in self.log:
                key = self.key_of(entry.names, entry.values)
                if entry.deleted:
                    open_now.pop(key, None)
                else:
                    open_now[key] = entry
            self.log += [_Logged(e.names, e.values, e.position, moment, True)
                         for e in open_now.values()]
            self.truncations.append(moment)  # Bronze's versions and the copy's close then too
            return
        self.base.clear()

    def history_rows(self, known: dict[Key, Row]) -> pa.Table:
        """Every change in stream order, each a row (a delete: the old row marked with
        ``_floe_deleted_at``); values a stream left out are filled from the key's previous
        change, or from ``known`` (Bronze)."""
        last: dict[Key, tuple[Any, ...]] = {}
        rows: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
        positions: list[int] = []
        times: list[dt.datetime] = []
        deleted: list[dt.datetime | None] = []
        for entry in self.log:
            key = self.key_of(entry.names, entry.values)
            values = entry.values
            if UNCHANGED in values:
                before = last.get(key)
                row = known.get(key, {})
                values = tuple(
                    (before[i] if before is not None else row.get(n)) if v is UNCHANGED else v
                    for i, (n, v) in enumerate(zip(entry.names, values, strict=True)))
            if not entry.deleted:
                last[key] = values
            rows.append((entry.names, values))
            positions.append(entry.position)
            times.append(entry.committed_at)
            deleted.append(entry.committed_at if entry.deleted else None)
        columns = self._columns(rows)
        columns[self.position_column] = pa.array(positions, pa.int64())
        columns[COMMITTED_COLUMN] = pa.array(times, _TIMESTAMP)
        columns[DELETED_COLUMN] = pa.array(deleted, _TIMESTAMP)
        return pa.table(columns)

    def _columns(self, rows: list[tuple[tuple[str, ...], tuple[Any, ...]]]
                 ) -> dict[str, pa.Array]:
        """Rows given as (their names, their values) as Arrow columns of the fold's types: a
        column a row does not name is null in it."""
        positions: dict[tuple[str, ...], dict[str, int]] = {}
        for names, _ in rows:
            if names not in positions:
                positions[names] = {n: i for i, n in enumerate(names)}
        columns = {}
        for name, kind in self.types.items():
            values = [None if (at := positions[names].get(name)) is None else row_values[at]
                      for names, row_values in rows]
            if pa.types.is_string(kind) or pa.types.is_floating(kind):  # text and Decimals
                values = [_plain(v, kind) for v in values]
            columns[name] = pa.array(values, kind)
        return columns

    def unchanged_keys(self) -> list[Key]:
        """Keys whose newest version (with history: any change) still misses a TOASTed value
        (Bronze has it)."""
        if self.history:
            return list(dict.fromkeys(self.key_of(e.names, e.values) for e in self.log
                                      if not e.deleted and UNCHANGED in e.values))
        return [k for k, v in self.versions.items()
                if v.values is not None and UNCHANGED in v.values]

    def unchanged_columns(self, key: Key) -> set[str]:
        """The columns ``key``'s newest version left unchanged (Bronze has their values)."""
        version = self.versions.get(key)
        if version is None or version.values is None:
            return set()
        return {n for n, v in zip(version.names, version.values, strict=True)
                if v is UNCHANGED}

    def fill(self, key: Key, known: Row) -> None:
        """Unchanged TOASTed values of ``key``'s version taken from ``known``."""
        version = self.versions[key]
        assert version.values is not None
        version.values = tuple(known.get(n) if v is UNCHANGED else v
                               for n, v in zip(version.names, version.values, strict=True))

    def copied_rows(self, keys: Sequence[Key]) -> dict[Key, Row]:
        """Rows of this run's copy for ``keys`` (an unchanged TOAST value may live there)."""
        if not self.base or not keys:
            return {}
        found = self.base.matching(self.keys_table(keys))
        if found is None:
            return {}
        return {self.key_of_row(row): row for row in found.to_pylist()}

    def deleted_keys(self) -> list[Key]:
        return [k for k, v in self.versions.items() if v.values is None]

    def copy_files(self, folder: Path) -> list[str]:
        """The copy as files for the commit, less the rows a replayed change supersedes
        (with history, none: the copy is each row's version at the copy's time)."""
        if not self.base:
            return []
        touched = self.keys_table(list(self.versions)) if self.versions and not self.history \
            else None
        return self.base.files(folder, touched)

    def upserts(self, soft_deleted: dict[Key, Row] | None = None) -> pa.Table:
        """The changed rows: live ones (and, for soft deletes, the deleted rows with their
        marker).  The copy's rows are ``copy_files``."""
        kept: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
        lsns: list[int] = []
        times: list[dt.datetime] = []
        deleted_at: list[dt.datetime | None] = []
        for key, version in self.versions.items():
            if version.values is not None:
                kept.append((version.names, version.values))
                deleted_at.append(None)
            elif soft_deleted is not None and key in soft_deleted:
                row = soft_deleted[key]
                names = tuple(row)
                kept.append((names, tuple(row[n] for n in names)))
                deleted_at.append(version.committed_at)
            else:
                continue
            lsns.append(version.lsn)
            times.append(version.committed_at)
        columns = self._columns(kept)
        columns[self.position_column] = pa.array(lsns, pa.int64())
        columns[COMMITTED_COLUMN] = pa.array(times, _TIMESTAMP)
        if soft_deleted is not None:
            columns[DELETED_COLUMN] = pa.array(deleted_at, _TIMESTAMP)
        return pa.table(columns)

    def release(self) -> None:
        """Free the folded rows once written (before the commit reads Bronze's files)."""
        self.versions = {}
        self.log = []
        self.base = CopyParts(None, self.name)

    def keys_table(self, keys: Sequence[Key]) -> pa.Table:
        """``keys`` as an Arrow table of the key columns, typed like the table."""
        return pa.table({name: pa.array([k[i] for k in keys], self.types[name])
                         for i, name in enumerate(self.key)})

    def deletes(self) -> pa.Table:
        return self.keys_table(self.deleted_keys())


def _plain(value: Any, kind: pa.DataType) -> Any:
    """A loaded value as its Arrow column takes it (text columns keep PostgreSQL's text)."""
    if value is UNCHANGED:
        return None
    if pa.types.is_string(kind) and value is not None and not isinstance(value, str):
        if isinstance(value, list | dict):
            return json.dumps(value, default=str)
        return str(value)
    if pa.types.is_floating(kind) and isinstance(value, Decimal):
        return float(value)
    return value
