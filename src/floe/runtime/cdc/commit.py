"""The part of a CDC run every source family shares: turn each table's fold into one Iceberg
commit (merge-on-read: upserted rows plus equality deletes, or soft-delete markers), carrying
the source position the table is now complete up to, fenced like any other load.

A reader (``postgres/``, ``mysql/``) decides what its position is and which tables changed;
everything from the fold to the committed snapshot is here, once.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from floe.artifacts import CompiledSource, HistoryConfig
from floe.runtime.cdc.copy_parts import write_plain
from floe.runtime.cdc.fold import COMMITTED_COLUMN, DELETED_COLUMN, Key, Row, TableFold
from floe.runtime.iceberg.commit import commit_table_load
from floe.runtime.iceberg.keyset import KeySet, key_range
from floe.runtime.iceberg.loads import CommitResult, TableLoad
from floe.runtime.iceberg.state import SourceState
from floe.runtime.ingestion.column_identity import stream_renames
from floe.runtime.ingestion.errors import PipelineConfigurationError

Committed = list[tuple[str, str | None, CommitResult]]


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """The fold makes one small object per change and no cycles; Python's cyclic collector
    would walk the whole growing heap again and again while it does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def configuration_error(source: CompiledSource, message: str) -> PipelineConfigurationError:
    """A source server that is not ready: one line that names the fix, no traceback."""
    return PipelineConfigurationError(message, source_type=source.source_type,
                                      destination_table=source.destination_table,
                                      pipeline_name=source.pipeline_name)


def _bronze_rows(catalog: Catalog, source: CompiledSource, table: str, fold: TableFold,
                 keys: list[Key]) -> dict[Key, Row]:
    """Bronze's current rows for ``keys`` (soft deletes and unchanged values need them):
    files by the first key's range, rows by the keys, as a merge finds them (keyset.py)."""
    if not keys:
        return {}
    try:
        bronze = catalog.load_table((source.namespace, source.table_for(table)))
    except NoSuchTableError:
        return {}
    wanted = fold.keys_table(keys)
    candidates = bronze.scan(row_filter=key_range(wanted)).to_arrow()
    found = candidates.filter(KeySet(wanted).hits(candidates))
    if fold.renamed:  # Bronze still has the old names until this commit renames them
        renamed = dict(stream_renames(found.column_names, fold.renamed))
        found = found.rename_columns([renamed.get(n, n) for n in found.column_names])
    return {fold.key_of_row(row): row for row in found.to_pylist()}


def _fill_from_bronze(catalog: Catalog, source: CompiledSource, table: str,
                      fold: TableFold) -> dict[Key, Row] | None:
    """Fill unchanged values; return the rows soft deletes keep (None: hard deletes)."""
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
    return write_plain(data, workdir / f"{name}.parquet")


@dataclass(frozen=True)
class TablePlan:
    """What one replicated table commits: its fold, the state it stored before (the fence),
    the state it will store, and whether the commit replaces the table (a first copy)."""

    table: str
    fold: TableFold
    restored: SourceState
    state: dict[str, Any]
    replace: bool
    source_columns: dict[str, str] | None = None  # {column id: name}, where the source has ids


def commit_folds(source: CompiledSource, catalog: Catalog, plans: list[TablePlan],
                 workdir: Path, full_refresh: bool, load_id: str
                 ) -> tuple[Committed, dict[str, int]]:
    """One commit per table, in order; each one fenced by the state its run started from."""
    committed: Committed = []
    counts: dict[str, int] = {}
    for plan in plans:
        fold = plan.fold
        if source.history is not None:
            load = _history_load(source, catalog, plan, workdir, full_refresh, load_id)
            rows = fold.copied + fold.changes
        else:
            load, rows = _latest_load(source, catalog, plan, workdir, full_refresh, load_id)
        bronze_table = source.table_for(plan.table)
        committed.append((bronze_table, plan.table, commit_table_load(catalog, load)))
        counts[bronze_table] = rows
    return committed, counts


def _history_load(source: CompiledSource, catalog: Catalog, plan: TablePlan, workdir: Path,
                  full_refresh: bool, load_id: str) -> TableLoad:
    """merge_strategy scd2: every change of the run, each a version valid from its source
    commit time (a delete closes one); a first copy's rows are versions from the copy's time,
    and keys it no longer has are closed."""
    assert source.history is not None
    fold = plan.fold
    pending = fold.unchanged_keys()
    known = {**_bronze_rows(catalog, source, plan.table, fold, pending),
             **fold.copied_rows(pending)}
    files = [*fold.copy_files(workdir),
             _write(workdir, f"{plan.table}.history", fold.history_rows(known))]
    truncations, renamed = tuple(fold.truncations), tuple(fold.renamed)
    fold.release()
    history = HistoryConfig(valid_from_column=COMMITTED_COLUMN,
                            track_columns=source.history.track_columns,
                            retire_absent=plan.replace and not full_refresh)
    return TableLoad(
        identifier=(source.namespace, source.table_for(plan.table)), files=files,
        write_mode="merge", merge_strategy="scd2", primary_key=fold.key,
        schema_contract=source.schema_contract, state=plan.state, load_id=load_id,
        source_key=source.pipeline_name, expected_token=plan.restored.token,
        recreate=full_refresh, delete_column=DELETED_COLUMN, history=history,
        truncations=truncations, column_renames=renamed,
        source_columns=plan.source_columns, partition_by=source.partition_by,
        sort_by=source.sort_by)


def _latest_load(source: CompiledSource, catalog: Catalog, plan: TablePlan, workdir: Path,
                 full_refresh: bool, load_id: str) -> tuple[TableLoad, int]:
    """The latest version of each key (merge-on-read upserts and deletes)."""
    fold = plan.fold
    soft = _fill_from_bronze(catalog, source, plan.table, fold)
    copied = fold.copy_files(workdir)  # the first run's copy, less what changed after
    upserts = _write(workdir, f"{plan.table}.upserts", fold.upserts(soft))
    deletes = [] if soft is not None else [
        _write(workdir, f"{plan.table}.deletes", fold.deletes())]
    rows = fold.copied + fold.changes  # the copy's rows, then the changes on top
    renamed = tuple(fold.renamed)
    fold.release()
    load = TableLoad(
        identifier=(source.namespace, source.table_for(plan.table)),
        files=[*copied, upserts], delete_files=deletes,
        write_mode="merge", merge_strategy="upsert", primary_key=fold.key,
        schema_contract=source.schema_contract, state=plan.state,
        load_id=load_id, source_key=source.pipeline_name,
        expected_token=plan.restored.token, recreate=full_refresh,
        truncate=plan.replace or fold.truncated, one_per_key=True, column_renames=renamed,
        source_columns=plan.source_columns,
        partition_by=source.partition_by, sort_by=source.sort_by)
    return load, rows
