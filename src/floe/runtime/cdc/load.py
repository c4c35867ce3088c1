"""One ``postgres_cdc`` run: copy new tables, fold the slot's changes, one commit per table,
then confirm the slot.

Exactly once by LSN: each table stores the WAL position it is complete up to (``lsn`` in its
snapshot state).  A run reads transactions committed up to the position it saw at its start;
a transaction at or below a table's stored position is skipped, so a crash after a commit and
before the slot moved on applies nothing twice.

The first run of a table is a copy that the replay makes exact: the slot exists before the copy
starts, so every change the copy might have missed or half-seen is replayed on top of it (last
version per key wins, deletes remove), and the copy plus the replay commit as one replace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table.upsert_util import create_match_filter

from floe.artifacts import CompiledSource
from floe.runtime.cdc.fold import (
    COMMITTED_COLUMN,
    DELETED_COLUMN,
    LSN_COLUMN,
    Key,
    Row,
    TableFold,
    arrow_type,
)
from floe.runtime.cdc.pgoutput import (
    UNCHANGED,
    Change,
    Relation,
    Truncate,
    changes_with_their_transaction,
)
from floe.runtime.cdc.postgres import PostgresSource, ReplicationSetupError, TableInfo
from floe.runtime.iceberg.commit import commit_table_load
from floe.runtime.iceberg.loads import CommitResult, TableLoad
from floe.runtime.iceberg.state import SourceState, restore_states
from floe.runtime.ingestion.deadline import Deadline
from floe.runtime.ingestion.errors import PipelineConfigurationError

Committed = list[tuple[str, str | None, CommitResult]]


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The fold makes one small object per change and no cycles; Python's cyclic collector
    would walk the whole growing heap again and again while it does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _configuration_error(source: CompiledSource, message: str) -> PipelineConfigurationError:
    return PipelineConfigurationError(message, source_type=source.source_type,
                                      destination_table=source.destination_table,
                                      pipeline_name=source.pipeline_name)


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


def _bronze_rows(catalog: Catalog, source: CompiledSource, table: str, fold: TableFold,
                 keys: list[Key]) -> dict[Key, Row]:
    """Bronze's current rows for ``keys`` (soft deletes and unchanged TOAST values need them)."""
    if not keys:
        return {}
    try:
        bronze = catalog.load_table((source.namespace, source.table_for(table)))
    except NoSuchTableError:
        return {}
    wanted = fold.keys_table(keys)
    found = bronze.scan(row_filter=create_match_filter(wanted, list(fold.key))).to_arrow()
    return {fold.key_of_row(row): row for row in found.to_pylist()}


def _fill_from_bronze(catalog: Catalog, source: CompiledSource, table: str,
                      fold: TableFold) -> dict[Key, Row] | None:
    """Fill unchanged TOASTed values; return the rows soft deletes keep (None: hard)."""
    pending = fold.unchanged_keys()
    deleted = fold.deleted_keys() if source.deletes == "soft" else []
    known = {**_bronze_rows(catalog, source, table, fold, pending + deleted),
             **fold.copied_rows(pending)}
    for key in pending:
        fold.fill(key, known.get(key, {}))
    if source.deletes != "soft":
        return None
    return {key: known[key] for key in deleted if key in known}


def _write(workdir: Path, name: str, data: pa.Table) -> str:
    path = workdir / f"{name}.parquet"
    pq.write_table(data, path)
    return str(path)


def load_changes(source: CompiledSource, catalog: Catalog, config: dict[str, Any],
                 workdir: Path, full_refresh: bool, deadline: Deadline,
                 load_id: str) -> tuple[Committed, dict[str, int]]:
    """Read (interruptible by ``timeout_seconds``), then commit each table, then confirm."""
    tables = list(config["tables"])
    pg = PostgresSource(str(config["credentials"]), str(config["schema"]), tables,
                        str(config["slot_name"]), str(config["publication_name"]))
    with pg:
        try:
            infos = pg.check()
            keys = {t: _key(source, infos[t]) for t in tables}
        except ReplicationSetupError as exc:
            raise _configuration_error(source, str(exc)) from None
        with deadline.interrupting("reading changes"), _no_cyclic_gc():
            folds, restored, stored, upto = _read(source, catalog, pg, infos, keys, tables,
                                                  full_refresh)
        deadline.check("reading changes")
        committed: Committed = []
        counts: dict[str, int] = {}
        for table in tables:
            fold = folds[table]
            copied = stored[table] is None
            if not fold.changes and not copied:
                continue
            soft = _fill_from_bronze(catalog, source, table, fold)
            upserts = _write(workdir, f"{table}.upserts", fold.upserts(soft))
            deletes = [] if soft is not None else [
                _write(workdir, f"{table}.deletes", fold.deletes())]
            rows = fold.copied + fold.changes  # the copy's rows, then the changes on top
            fold.release()
            load = TableLoad(
                identifier=(source.namespace, source.table_for(table)),
                files=[upserts], delete_files=deletes,
                write_mode="merge", merge_strategy="upsert", primary_key=fold.key,
                schema_contract=source.schema_contract, state={"lsn": upto},
                load_id=load_id, source_key=source.pipeline_name,
                expected_token=restored[table].token, recreate=full_refresh,
                truncate=copied or fold.truncated,
                partition_by=source.partition_by, sort_by=source.sort_by)
            bronze_table = source.table_for(table)
            committed.append((bronze_table, table, commit_table_load(catalog, load)))
            counts[bronze_table] = rows
        pg.advance(upto)  # only now: every table holds what the slot gives up
    return committed, counts


def _read(source: CompiledSource, catalog: Catalog, pg: PostgresSource,
          infos: dict[str, TableInfo], keys: dict[str, tuple[str, ...]], tables: list[str],
          full_refresh: bool) -> tuple[dict[str, TableFold], dict[str, SourceState],
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
    folds = {t: TableFold(keys[t], {n: arrow_type(o, m) for n, o, m in infos[t].columns})
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
            decoders[message.oid] = _Decoder(message, pg)
            known = by_oid.get(message.oid)
            if known is not None:  # the newest column list and types win
                for column in message.columns:
                    folds[known].types[column.name] = arrow_type(column.type_oid,
                                                                 column.typmod)
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


class _Decoder:
    """A relation's column names and value loaders, built once per Relation message."""

    def __init__(self, relation: Relation, pg: PostgresSource) -> None:
        self.names = tuple(c.name for c in relation.columns)
        self.loads = [pg.text_loader(c.type_oid) for c in relation.columns]

    def values(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple([v if v is None or v is UNCHANGED else load(v)
                      for load, v in zip(self.loads, raw, strict=True)])


def _apply(fold: TableFold, decoder: _Decoder, message: Change | Truncate, lsn: int,
           committed_at: dt.datetime) -> None:
    if isinstance(message, Truncate):
        fold.truncate()
        return
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


__all__ = ["COMMITTED_COLUMN", "DELETED_COLUMN", "LSN_COLUMN", "load_changes"]
