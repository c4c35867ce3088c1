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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from floe.artifacts import CompiledSource, HistoryConfig
from floe.runtime.cdc.copy_parts import write_plain
from floe.runtime.cdc.fold import COMMITTED_COLUMN, DELETED_COLUMN, Key, Row, TableFold
from floe.runtime.cdc.transformed import as_source, history_rows, latest_rows, shape_copy
from floe.runtime.iceberg.commit import commit_table_load
from floe.runtime.iceberg.keyset import KeySet, key_range
from floe.runtime.iceberg.loads import CommitResult, TableLoad
from floe.runtime.iceberg.state import SourceState
from floe.runtime.ingestion.column_identity import stream_renames
from floe.runtime.ingestion.errors import PipelineConfigurationError
from floe.runtime.ingestion.result import CdcLag
from floe.runtime.transforms import TableTransform

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


@dataclass
class _Filled:
    soft: dict[Key, Row] | None  # the rows soft deletes keep (None: hard deletes)
    from_bronze: dict[Key, Row]  # Bronze's rows of the keys whose unchanged values it gave
    unchanged: dict[Key, set[str]]  # the columns each of those keys left unchanged


def _fill_from_bronze(catalog: Catalog, source: CompiledSource, table: str,
                      fold: TableFold, transform: TableTransform | None) -> _Filled:
    """Fill unchanged values (from this run's copy, else Bronze: under a transform, only the
    columns Bronze keeps as the source sent them)."""
    pending = fold.unchanged_keys()
    unchanged = {key: fold.unchanged_columns(key) for key in pending} if transform else {}
    deleted = fold.deleted_keys() if source.deletes == "soft" else []
    bronze = _bronze_rows(catalog, source, table, fold, pending + deleted)
    copied = fold.copied_rows(pending)
    as_sent = as_source(transform, fold, bronze) if transform else bronze
    for key in pending:
        fold.fill(key, copied[key] if key in copied else as_sent.get(key, {}))
    soft = {key: bronze[key] for key in deleted if key in bronze} \
        if source.deletes == "soft" else None
    return _Filled(soft, {k: bronze[k] for k in pending if k in bronze and k not in copied},
                   unchanged)


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


@dataclass
class Replicated:
    """What a CDC run committed: per table, its commit, rows and changes by kind."""

    committed: Committed = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # Bronze table -> rows
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> kind -> n
    lag: CdcLag | None = None
    load_id: str = ""


def commit_folds(source: CompiledSource, catalog: Catalog, plans: list[TablePlan],
                 workdir: Path, full_refresh: bool, load_id: str,
                 transform: TableTransform | None = None, started_at: float | None = None
                 ) -> Replicated:
    """One commit per table, in order; each one fenced by the state its run started from."""
    replicated = Replicated(load_id=load_id)
    committed, counts = replicated.committed, replicated.counts
    for plan in plans:
        fold = plan.fold
        replicated.events[source.table_for(plan.table)] = dict(fold.events)
        if source.history is not None:
            load = _history_load(source, catalog, plan, workdir, full_refresh, load_id,
                                 transform)
            rows = fold.copied + fold.changes
        else:
            load, rows = _latest_load(source, catalog, plan, workdir, full_refresh, load_id,
                                      transform)
        bronze_table = source.table_for(plan.table)
        load = replace(load, started_at=started_at)
        committed.append((bronze_table, plan.table, commit_table_load(catalog, load)))
        counts[bronze_table] = rows
    return replicated


def _history_load(source: CompiledSource, catalog: Catalog, plan: TablePlan, workdir: Path,
                  full_refresh: bool, load_id: str, transform: TableTransform | None
                  ) -> TableLoad:
    """merge_strategy scd2: every change of the run, each a version valid from its source
    commit time (a delete closes one); a first copy's rows are versions from the copy's time,
    and keys it no longer has are closed."""
    assert source.history is not None
    fold = plan.fold
    pending = fold.unchanged_keys()
    bronze = _bronze_rows(catalog, source, plan.table, fold, pending)
    if transform is not None:
        bronze = as_source(transform, fold, bronze)
    versions = fold.history_rows({**bronze, **fold.copied_rows(pending)})
    copied = fold.copy_files(workdir)
    if transform is not None:
        name = f"{source.namespace}.{source.table_for(plan.table)}"
        copied = shape_copy(transform, fold, copied, workdir, name)
        versions = history_rows(transform, fold, name, versions)
    files = [*copied, _write(workdir, f"{plan.table}.history", versions)]
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
                 full_refresh: bool, load_id: str, transform: TableTransform | None
                 ) -> tuple[TableLoad, int]:
    """The latest version of each key (merge-on-read upserts and deletes)."""
    fold = plan.fold
    filled = _fill_from_bronze(catalog, source, plan.table, fold, transform)
    soft = filled.soft
    copied = fold.copy_files(workdir)  # the first run's copy, less what changed after
    gone = fold.deletes() if soft is None else None
    if transform is None:
        upserted = fold.upserts(soft)
    else:
        name = f"{source.namespace}.{source.table_for(plan.table)}"
        copied = shape_copy(transform, fold, copied, workdir, name)
        upserted, left_out = latest_rows(
            transform, fold, name, fold.upserts({} if soft is not None else None),
            filled.from_bronze, filled.unchanged, soft)
        if left_out.num_rows:
            gone = left_out if gone is None else pa.concat_tables([gone, left_out])
    upserts = _write(workdir, f"{plan.table}.upserts", upserted)
    deletes = [] if gone is None else [_write(workdir, f"{plan.table}.deletes", gone)]
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
