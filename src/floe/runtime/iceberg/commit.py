"""One pyiceberg transaction per table per load: schema union + the write mode, atomically.

dlt's normalized parquet files for a table are collected first and committed together:
``append`` streams them (bounded memory), ``replace`` and ``merge`` swap files in one
overwrite snapshot (readers never see an empty or half-merged table).
The resource's incremental state rides in the same snapshot (see ``state.py``).  A concurrent
writer (``CommitFailedException``) makes us reload the table and run the transaction again.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.visitors import bind
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _dataframe_to_data_files,
    _expression_to_complementary_pyarrow,
    schema_to_pyarrow,
)
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.upsert_util import create_match_filter, has_duplicate_rows
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from floe.artifacts import MergeStrategy, SchemaContract, WriteMode
from floe.runtime.iceberg.state import snapshot_properties
from floe.runtime.ingestion.errors import SchemaContractViolation

_ROW_INDEX = "__floe_row_index"


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


@dataclass(frozen=True)
class CommitResult:
    identifier: tuple[str, str]
    snapshot_id: int | None
    snapshots_added: int
    records_added: int
    bytes_written: int
    new_columns: tuple[str, ...] = ()
    total_rows: int | None = None


def total_rows(snapshot: Snapshot | None) -> int | None:
    """Rows in the table as of ``snapshot``, from its summary (no data files read)."""
    summary = snapshot.summary if snapshot is not None else None
    total = summary["total-records"] if summary is not None else None
    return int(total) if total is not None else None


def commit_table_load(catalog: Catalog, load: TableLoad, attempts: int = 5) -> CommitResult:
    """Commit ``load`` in one transaction, retrying on concurrent commits."""
    incoming = _incoming_schema(load.files)
    catalog.create_namespace_if_not_exists(load.identifier[0])
    retrying = Retrying(
        retry=retry_if_exception_type(CommitFailedException),
        stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=0.2, max=5),
        reraise=True)
    for attempt in retrying:
        with attempt:
            return _commit_once(catalog, load, incoming)
    raise AssertionError("unreachable: tenacity reraises")


def _incoming_schema(files: Sequence[str]) -> pa.Schema:
    schemas = [pq.read_schema(f) for f in files]
    return pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])


def _load_or_create(catalog: Catalog, load: TableLoad, incoming: pa.Schema) -> Table:
    try:
        return catalog.load_table(load.identifier)
    except NoSuchTableError:
        return catalog.create_table(load.identifier, schema=incoming)


def _columns_for_contract(table: Table, incoming: pa.Schema, load: TableLoad
                          ) -> tuple[pa.Schema, tuple[str, ...]]:
    """Which incoming columns to write, enforcing the schema contract against the real table."""
    existing = {field.name for field in table.schema().fields}
    new = tuple(name for name in incoming.names if name not in existing)
    if not new:
        return incoming, ()
    if load.schema_contract == "freeze":
        raise SchemaContractViolation(
            f"schema contract 'freeze' rejects new column(s) {', '.join(new)}; the table was "
            "left unchanged (use schema_contract: evolve to accept them, or discard_value to "
            "drop them)")
    if load.schema_contract == "discard_value":
        kept = [field for field in incoming if field.name in existing]
        return pa.schema(kept), ()
    return incoming, new


def _read_all(files: Sequence[str], schema: pa.Schema) -> pa.Table:
    return ds.dataset(list(files), schema=schema, format="parquet").to_table()


def _stream(files: Sequence[str], schema: pa.Schema) -> pa.RecordBatchReader:
    return ds.dataset(list(files), schema=schema, format="parquet").scanner(
        batch_size=256_000).to_reader()


def _dedupe_last(df: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the last row per key: a source may send the same row twice in one load."""
    if not has_duplicate_rows(df, keys):
        return df
    indexed = df.append_column(_ROW_INDEX, pa.array(range(df.num_rows), pa.int64()))
    last = indexed.group_by(keys, use_threads=False).aggregate([(_ROW_INDEX, "max")])
    keep = last[f"{_ROW_INDEX}_max"]
    return df.take(pc.take(keep, pc.array_sort_indices(keep)))


def _overwrite(tx: Transaction, io: FileIO, delete_filter: BooleanExpression,
               data: pa.Table | pa.RecordBatchReader, props: dict[str, str]) -> None:
    """Rows matching ``delete_filter`` out, ``data`` in, as ONE overwrite snapshot.

    pyiceberg's ``delete`` + ``append`` (and ``Table.upsert``) leave two snapshots per load,
    so time travel and the snapshot log show a table with the old rows gone and the new ones
    not yet there.  This is the same copy-on-write work: files with matching rows are dropped
    or rewritten without them, then the new files are added, in one snapshot producer.
    """
    metadata = tx.table_metadata
    schema = metadata.schema()
    with tx.update_snapshot(snapshot_properties=props).overwrite() as snapshot:
        counter = itertools.count(0)
        if metadata.current_snapshot() is not None:
            drop_all = isinstance(delete_filter, AlwaysTrue)
            keep = None if drop_all else _expression_to_complementary_pyarrow(
                bind(schema, delete_filter, case_sensitive=True), schema)
            for task in tx._scan(row_filter=delete_filter).plan_files():
                if keep is not None:
                    rows = ArrowScan(metadata, io, schema, AlwaysTrue()).to_table(tasks=[task])
                    kept = rows.filter(keep)
                    if len(kept) == len(rows):
                        continue
                    if len(kept):
                        for data_file in _dataframe_to_data_files(
                                metadata, kept, io, snapshot.commit_uuid, counter):
                            snapshot.append_data_file(data_file)
                snapshot.delete_data_file(task.file)
        for data_file in _dataframe_to_data_files(metadata, data, io, snapshot.commit_uuid,
                                                  counter):
            snapshot.append_data_file(data_file)


def _write(tx: Transaction, io: FileIO, load: TableLoad, schema: pa.Schema,
           props: dict[str, str]) -> None:
    if load.write_mode == "append":
        tx.append(_stream(load.files, schema), snapshot_properties=props)
        return
    if load.write_mode == "replace":
        _overwrite(tx, io, AlwaysTrue(), _stream(load.files, schema), props)
        return
    # merge: the rows whose key arrives are replaced by the load.  upsert keeps one row per key
    # (the last one sent); delete-insert keeps the load as sent.  (pyiceberg's
    # Transaction.upsert also cannot compare rows once the schema evolved in the same
    # transaction.)
    keys = list(load.primary_key)
    df = _read_all(load.files, schema)
    if load.merge_strategy != "delete-insert":
        df = _dedupe_last(df, keys)
    if df.num_rows:
        _overwrite(tx, io, create_match_filter(df, keys), df, props)


def _commit_once(catalog: Catalog, load: TableLoad, incoming: pa.Schema) -> CommitResult:
    table = _load_or_create(catalog, load, incoming)
    before = table.current_snapshot()
    before_id = before.snapshot_id if before is not None else None
    schema, new_columns = _columns_for_contract(table, incoming, load)
    props = snapshot_properties(load.state, load.load_id)
    with table.transaction() as tx:
        if new_columns:
            with tx.update_schema() as update:
                update.union_by_name(schema)
        _write(tx, table.io, load, schema, props)
        current = tx.table_metadata.current_snapshot()
        if current is None or current.snapshot_id == before_id:
            # nothing changed (e.g. an upsert of identical rows): still commit the new state
            empty = schema_to_pyarrow(tx.table_metadata.schema()).empty_table()
            tx.append(empty, snapshot_properties=props)
    # the committed transaction has already refreshed `table` with the catalog's answer
    return _summarize(table, before_id, load.identifier, new_columns)


def _summarize(table: Table, before_id: int | None, identifier: tuple[str, str],
               new_columns: tuple[str, ...]) -> CommitResult:
    snapshot = table.current_snapshot()
    current_id = snapshot.snapshot_id if snapshot is not None else None
    added = records = size = 0
    while snapshot is not None and snapshot.snapshot_id != before_id:
        added += 1
        summary = snapshot.summary
        if summary is not None:
            records += int(summary["added-records"] or 0)
            size += int(summary["added-files-size"] or 0)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return CommitResult(identifier, current_id, added, records, size, new_columns,
                        total_rows(table.current_snapshot()))
