"""One ``postgres_cdc`` run: copy new tables, fold the slot's changes, one commit per table,
then confirm the slot.

Exactly once by LSN: each table stores the WAL position it is complete up to (``lsn`` in its
snapshot state).  A run reads transactions committed up to the position it saw at its start;
a transaction at or below a table's stored position is skipped, so a crash after a commit and
before the slot moved on applies nothing twice.

The first run of a table is a copy that the replay makes exact: the slot exists before the copy
starts, so every change the copy might have missed or half-seen is replayed on top of it (last
version per key wins, deletes remove), and the copy plus the replay commit as one replace.

Renames: pgoutput's Relation message names a table's columns as they were when the change was
written, without their ``attnum``.  A Relation whose columns have the catalog's current types
position by position is the same column list under older names: its rows are folded under the
current names and Bronze's column is renamed (same field id) in this run's commit.  Between
runs the catalog's ``{attnum: name}``, stored with every commit, catches the rest.
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
from floe.runtime.cdc.fold import UNCHANGED, TableFold
from floe.runtime.cdc.postgres.pgoutput import (
    Change,
    Relation,
    Truncate,
    changes_with_their_transaction,
)
from floe.runtime.cdc.postgres.server import (
    PostgresSource,
    ReplicationSetupError,
    TableInfo,
    arrow_type,
    oldest_unapplied_commit,
    slot_wal,
)
from floe.runtime.iceberg.state import SourceState, restore_states
from floe.runtime.ingestion.deadline import Deadline
from floe.runtime.ingestion.result import CdcLag
from floe.runtime.transforms import TableTransform


def _key(source: CompiledSource, info: TableInfo) -> tuple[str, ...]:
    if source.primary_key:
        return tuple(source.primary_key)
    if info.primary_key:
        return info.primary_key
    if info.replica_identity == "f":
        return tuple(name for name, _, _ in info.columns)
    raise ReplicationSetupError(
        f"table {info.name} has no primary key and no REPLICA IDENTITY FULL, so its updates "
        f"and deletes cannot be matched: add a primary key, set primary_key: in floe.yaml "
        f"with ALTER TABLE {info.name} REPLICA IDENTITY FULL, or remove the table")


def _stored_lsn(state: SourceState) -> int | None:
    value = (state.state or {}).get("lsn")
    return int(value) if value is not None else None


def load_changes(source: CompiledSource, catalog: Catalog, config: dict[str, Any],
                 workdir: Path, full_refresh: bool, deadline: Deadline,
                 load_id: str, transform: TableTransform | None = None,
                 started_at: float | None = None) -> Replicated:
    """Read (interruptible by ``timeout_seconds``), then commit each table, then confirm."""
    tables = list(config["tables"])
    pg = PostgresSource(str(config["credentials"]), str(config["schema"]), tables,
                        str(config["slot_name"]), str(config["publication_name"]))
    with pg:
        try:
            infos = pg.check()
            keys = {t: _key(source, infos[t]) for t in tables}
        except ReplicationSetupError as exc:
            raise configuration_error(source, str(exc)) from None
        with deadline.interrupting("reading changes"), no_cyclic_gc():
            folds, restored, stored, upto = _read(source, catalog, pg, infos, keys, tables,
                                                  full_refresh, workdir)
        deadline.check("reading changes")
        plans = [TablePlan(t, folds[t], restored[t], {"lsn": upto}, stored[t] is None,
                           source_columns=infos[t].column_ids)
                 for t in tables if folds[t].changes or stored[t] is None]
        replicated = commit_folds(source, catalog, plans, workdir, full_refresh, load_id,
                                  transform, started_at)
        pg.advance(upto)  # only now: every table holds what the slot gives up
    replicated.lag = _lag(str(config["credentials"]), str(config["slot_name"]),
                          str(config["publication_name"]))
    return replicated


def _lag(url: str, slot: str, publication: str) -> CdcLag | None:
    """Where the slot stands once this run confirmed its position: WAL behind and retained,
    and seconds since the oldest transaction not yet applied committed (metrics; never fails
    the run)."""
    try:
        behind, retained = slot_wal(url, slot)
        oldest = oldest_unapplied_commit(url, slot, publication) if behind else None
    except Exception:
        return None
    seconds = max(0.0, time.time() - oldest) if oldest is not None else 0.0
    return CdcLag(behind_bytes=behind, retained_bytes=retained, seconds=seconds)


def _read(source: CompiledSource, catalog: Catalog, pg: PostgresSource,
          infos: dict[str, TableInfo], keys: dict[str, tuple[str, ...]], tables: list[str],
          full_refresh: bool, workdir: Path) -> tuple[dict[str, TableFold], dict[str, SourceState],
                                       dict[str, int | None], int]:
    """Copy the tables Bronze does not hold yet, and fold every change up to now."""
    by_table = restore_states(catalog, source.namespace, source.pipeline_name,
                              [source.table_for(t) for t in tables])
    restored = {t: by_table[source.table_for(t)] for t in tables}
    pg.ensure_publication()
    # a new slot (first run, --full-refresh, a renamed or lost slot) has no change from before
    # it: every table is copied again, which the replay then makes exact
    new_slot = pg.ensure_slot(recreate=full_refresh)
    stored = {t: None if new_slot else _stored_lsn(restored[t]) for t in tables}
    folds = {t: TableFold(keys[t], {n: arrow_type(o, m) for n, o, m in infos[t].columns},
                          spill=workdir, name=t, history=source.history is not None)
             for t in tables}
    copy_lsn = pg.current_lsn()
    copied_at = dt.datetime.now(dt.UTC)
    for table in tables:
        if stored[table] is not None:
            continue
        names = [name for name, _, _ in infos[table].columns]
        for batch in pg.copy(infos[table]):
            folds[table].add_copy(names, batch, copy_lsn, copied_at)
    upto = pg.current_lsn()
    decoders: dict[int, _Decoder] = {}
    by_oid = {infos[t].oid: t for t in tables}
    for begin, message in changes_with_their_transaction(pg.changes(upto)):
        if isinstance(message, Relation):
            known = by_oid.get(message.oid)
            decoder = _Decoder(message, pg, infos[known] if known else None)
            decoders[message.oid] = decoder
            if known is not None:  # the newest column list and types win
                fold = folds[known]
                for old, new in decoder.renamed:
                    if (old, new) not in fold.renamed:
                        fold.renamed.append((old, new))
                for name, column in zip(decoder.names, message.columns, strict=True):
                    fold.types[name] = arrow_type(column.type_oid, column.typmod)
            continue
        if not isinstance(message, Change | Truncate):
            continue
        targets = message.relations if isinstance(message, Truncate) else (message.relation,)
        for oid in targets:
            target = by_oid.get(oid)
            last = stored.get(target) if target else None
            if target is None or (last is not None and begin.final_lsn <= last):
                continue  # not ours, or already in Bronze
            _apply(folds[target], decoders[oid], message, begin.final_lsn,
                   begin.committed_at)
    return folds, restored, stored, upto


def current_names(relation: Relation, info: TableInfo | None) -> tuple[str, ...]:
    """The relation's columns under their current names: position by position when the
    column list has the catalog's length and types (a rename changes only names), else as
    the message names them (a column added or dropped since: no rename is guessed)."""
    names = tuple(c.name for c in relation.columns)
    if info is None or len(info.columns) != len(names):
        return names
    if any(c.type_oid != oid for c, (_, oid, _) in zip(relation.columns, info.columns,
                                                        strict=True)):
        return names
    return tuple(name for name, _, _ in info.columns)


class _Decoder:
    """A relation's column names (current ones) and value loaders, built once per Relation
    message."""

    def __init__(self, relation: Relation, pg: PostgresSource, info: TableInfo | None) -> None:
        self.names = current_names(relation, info)
        self.renamed = [(c.name, name) for c, name in zip(relation.columns, self.names,
                                                           strict=True) if c.name != name]
        self.loads = [pg.text_loader(c.type_oid) for c in relation.columns]

    def values(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple([v if v is None or v is UNCHANGED else load(v)
                      for load, v in zip(self.loads, raw, strict=True)])


def _apply(fold: TableFold, decoder: _Decoder, message: Change | Truncate, lsn: int,
           committed_at: dt.datetime) -> None:
    if isinstance(message, Truncate):
        fold.count("truncate")
        fold.truncate(committed_at)
        return
    fold.count(message.kind)
    names = decoder.names
    if message.kind == "delete":
        assert message.old is not None
        fold.delete(names, decoder.values(message.old), lsn, committed_at)
        return
    assert message.new is not None
    new = decoder.values(message.new)
    if message.old is not None:
        old = decoder.values(message.old)
        if fold.key_of(names, old) != fold.key_of(names, new):  # the primary key changed
            fold.delete(names, old, lsn, committed_at)
    fold.upsert(names, new, lsn, committed_at)
