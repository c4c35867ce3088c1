"""One pyiceberg transaction per table per load: schema changes + the write mode, atomically.

dlt's normalized parquet files for a table are collected first and committed together:
``append`` streams them (bounded memory), ``replace`` and ``merge`` swap files in one
overwrite snapshot (readers never see an empty or half-merged table).
The source's incremental state rides in the same snapshot (see ``state.py``).

Writer fencing: a load remembers the state token (the load id of the source's last commit) it
restored its cursor from.  Before every attempt to commit, the token in the table is compared
with it: if it moved, another run of the same source committed first, and re-applying this
load would duplicate rows, so it is abandoned with ``ConcurrentLoadError``.  A
``CommitFailedException`` whose cause was another source's write to the same table is
retried on the newer table.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchTableError,
)
from pyiceberg.expressions import (
    AlwaysTrue,
    BooleanExpression,
)
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow
from pyiceberg.table import FileScanTask, Table, TableProperties, Transaction
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from floe.runtime.iceberg.evolution import SchemaPlan, plan_schema
from floe.runtime.iceberg.history import (
    HISTORY_CLOSED,
    HISTORY_OPENED,
    IS_CURRENT,
    VALID_FROM,
    HistoryInputError,
    prepare,
    rebuild_columnar,
    with_history_fields,
)
from floe.runtime.iceberg.keyset import KeySet, key_range
from floe.runtime.iceberg.layout import apply_layout, conform, sort_rows
from floe.runtime.iceberg.loads import UNFENCED, CommitResult, TableLoad, total_rows
from floe.runtime.iceberg.merge_load import stream_merge_load, unique_keys, whole_merge_load
from floe.runtime.iceberg.position_deletes import (
    MERGE_ON_READ,
    dead_positions,
    merge_on_read,
    scoped_deletes,
    write_position_deletes,
)
from floe.runtime.iceberg.pyiceberg_internals import (
    RowLevelOverwrite,
    arrow_to_iceberg_type,
    cache_transaction_metadata,
    data_files,
    files_matching,
)
from floe.runtime.iceberg.register import register, registrable
from floe.runtime.iceberg.removed_rows import RemovedRows
from floe.runtime.iceberg.state import STARTED_PROPERTY, read_source_state, snapshot_properties
from floe.runtime.ingestion.column_identity import renames, stream_renames
from floe.runtime.ingestion.errors import ConcurrentLoadError

cache_transaction_metadata()


def commit_table_load(catalog: Catalog, load: TableLoad, attempts: int = 5) -> CommitResult:
    """Commit ``load`` in one transaction, retrying when another source's commit raced it."""
    incoming = _incoming_schema(load.files)
    if load.history is not None:
        incoming = with_history_fields(incoming)
    _ensure_namespace(catalog, load.identifier[0])
    retrying = Retrying(
        retry=retry_if_exception_type(CommitFailedException),
        stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=0.2, max=5),
        reraise=True)
    for attempt in retrying:
        with attempt:
            return _commit_once(catalog, load, incoming)
    raise AssertionError("unreachable: tenacity reraises")


def _ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create the namespace unless it exists; two loads racing to create it is fine (the SQL
    catalog reports the loser as an IntegrityError, not NamespaceAlreadyExistsError)."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise


def _incoming_schema(files: Sequence[str]) -> pa.Schema:
    schemas = [pq.read_schema(f) for f in files]
    return pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])


# pyiceberg (0.12+) re-applies a transaction by itself when the catalog reports a concurrent
# commit, on the newer table and without asking us: that is how a second run's rows landed twice.
# floe tables turn it off; floe's own retry re-checks the fence first.
NO_BLIND_RETRY = {TableProperties.COMMIT_NUM_RETRIES: "0"}
# Files of 128 MB of Arrow data (~30-40 MB of Parquet) instead of pyiceberg's 512 MB: a write
# holds one file's rows in memory, and a merge rewrites whole files, so smaller ones bound
# both (10M-row merge: 1.1 GB peak -> see bench/scale.py).  A value set on the table wins.
TARGET_FILE_SIZE = {TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(128 * 1024 * 1024)}


def _load_or_create(catalog: Catalog, load: TableLoad, incoming: pa.Schema
                    ) -> tuple[Table, bool]:
    try:
        table = catalog.load_table(load.identifier)
    except NoSuchTableError:
        try:
            properties = {**NO_BLIND_RETRY, **TARGET_FILE_SIZE,
                          **(MERGE_ON_READ if load.write_mode == "merge" else {})}
            return catalog.create_table(load.identifier, schema=incoming,
                                        properties=properties), True
        except Exception:  # another run created it a moment ago (or the create failed)
            if not catalog.table_exists(load.identifier):
                raise
            table = catalog.load_table(load.identifier)
    properties = table.metadata.properties
    missing = {**({} if properties.get(TableProperties.COMMIT_NUM_RETRIES) == "0"
                  else NO_BLIND_RETRY),
               **({} if TableProperties.WRITE_TARGET_FILE_SIZE_BYTES in properties
                  else TARGET_FILE_SIZE)}
    if missing:
        with table.transaction() as tx:  # a table from before floe 0.2, or made by hand
            tx.set_properties(missing)
    return table, False


def _fence(current: str | None, load: TableLoad) -> None:
    """``current``: the source's token in the table now."""
    if load.expected_token == UNFENCED:
        return
    if current != load.expected_token:
        raise ConcurrentLoadError(
            f"another run of this source committed to {'.'.join(load.identifier)} first "
            f"(load {current}, this run started from {load.expected_token or 'an empty table'});"
            " this load was abandoned and nothing was written: the next run continues from "
            "the committed state")


Rebuild = Callable[[pa.Table], list[pa.Table]]


def _overwrite(tx: Transaction, io: FileIO,
               data: pa.Table | pa.RecordBatchReader | list[pa.Table] | Rebuild,
               props: dict[str, str], match: pa.Table | None = None) -> None:
    """Rows whose key is in ``match`` out (every row when it is None), ``data`` in, as ONE
    overwrite snapshot.

    pyiceberg's ``delete`` + ``append`` (and ``Table.upsert``) leave two snapshots per load,
    so time travel and the snapshot log show a table with the old rows gone and the new ones
    not yet there.  Here files with matching rows are handled, then the new files are added, in
    one snapshot producer.

    The cost follows the change: data files are pruned by the key's min/max (a range, not an
    ``In`` of every key, which pyiceberg binds literal by literal: 7.7 s for 200k keys), then
    the candidates are matched by key in Arrow, and only files holding a matched key are
    touched: rewritten without those rows (copy-on-write), or, on a merge-on-read table, given
    a position-delete file (see ``position_deletes``).

    ``data`` may be a function of the rows taken out (a history load rebuilds the touched
    keys' timelines from their versions): they are read once, by this pass.  A list of tables
    is written part by part, each into files of its own.
    """
    metadata = tx.table_metadata
    removed_rows = schema_to_pyarrow(metadata.schema()).empty_table()
    with RowLevelOverwrite(tx, io, props) as snapshot:
        if match is None:
            if metadata.current_snapshot() is not None:
                for task in files_matching(tx, AlwaysTrue()):
                    snapshot.delete_data_file(task.file)
                    for delete_file in task.delete_files:
                        snapshot.remove_delete_file(delete_file)
        else:
            with RemovedRows(io, metadata, keep=callable(data)) as removed:
                _replace_rows(tx, io, snapshot, removed, KeySet(match), key_range(match))
            snapshot.snapshot_properties = {**props, **removed.properties()}
            if removed.kept:
                removed_rows = pa.concat_tables(removed.kept)
        if callable(data):
            data = data(removed_rows)
            snapshot.snapshot_properties = {**snapshot.snapshot_properties, **props}
        parts = data if isinstance(data, list) else [data]  # each part its own files
        commit_uuid, counter = uuid.uuid4(), itertools.count(0)
        for part in parts:
            if not isinstance(part, pa.Table) or part.num_rows:  # no empty file
                for data_file in data_files(metadata, io, part, commit_uuid, counter):
                    snapshot.append_data_file(data_file)


def _replace_rows(tx: Transaction, io: FileIO, snapshot: RowLevelOverwrite,
                  removed: RemovedRows, key_set: KeySet, candidates: BooleanExpression) -> None:
    """Take the rows whose key is in ``key_set`` out of the table's files, keeping each
    removed row in ``removed``.  A file read here is read whole and without its deletes, so a
    row's index is its position; rows already deleted are not matched again."""
    metadata = tx.table_metadata
    if metadata.current_snapshot() is None:
        return
    schema = metadata.schema()
    counter = itertools.count(0)
    by_position = merge_on_read(metadata)
    for task in files_matching(tx, candidates):
        path = task.file.file_path
        rows = ArrowScan(metadata, io, schema, AlwaysTrue()).to_table(
            tasks=[FileScanTask(task.file)])
        hit = np.array(key_set.hits(rows), dtype=bool)
        dead = dead_positions(io, task.delete_files, path)
        if dead.size:
            hit[dead] = False
        if not hit.any():
            continue
        removed.add(rows.filter(pa.array(hit)))
        every = hit.copy()  # the rows gone after this merge: a mask, not a sort (1M rows)
        every[dead] = True
        gone = np.flatnonzero(every)
        for delete_file in scoped_deletes(task):
            snapshot.remove_delete_file(delete_file)
        if by_position and 2 * len(gone) < rows.num_rows:
            snapshot.add_delete_file(write_position_deletes(io, metadata, task.file, gone))
            continue
        snapshot.delete_data_file(task.file)
        if len(gone) < rows.num_rows:  # written back under the rewrite id: not a change
            kept = np.ones(rows.num_rows, dtype=bool)
            kept[gone] = False
            for data_file in data_files(metadata, io, rows.filter(pa.array(kept)),
                                        removed.rewrite_id, counter):
                snapshot.append_data_file(data_file)


def _write_history(tx: Transaction, table: Table, load: TableLoad, incoming: pa.Schema,
                   plan: SchemaPlan, props: dict[str, str]) -> None:
    """merge_strategy scd2: the touched keys' timelines rebuilt from the versions the merge
    takes out, and written back, in one overwrite (see history.py); versions opened and
    closed go into the snapshot's summary."""
    assert load.history is not None
    fresh = load.write_mode == "replace"  # --full-refresh: history starts again
    if not fresh and table.current_snapshot() is not None \
            and VALID_FROM not in table.schema().column_names:
        raise HistoryInputError(
            f"{'.'.join(load.identifier)} holds one row per key (loaded without history): "
            "merge_strategy scd2 starts its history with floe run --full-refresh")
    ready = prepare(table, conform(plan.read_all(load.files, incoming), tx), load.primary_key,
                    load.history, load.delete_column, dt.datetime.now(dt.UTC), fresh,
                    load.truncations)
    target = schema_to_pyarrow(tx.table_metadata.schema())
    tracked = load.history.track_columns

    def rebuild(existing: pa.Table) -> list[pa.Table]:
        rows, opened, closed = rebuild_columnar(
            existing, ready.incoming, ready.starts, ready.deleted, load.primary_key, tracked,
            ready.retired, target)
        props.update({HISTORY_OPENED: str(opened), HISTORY_CLOSED: str(closed)})
        # closed versions and current ones in files of their own: the closed ones' validity
        # bounds are then tight, so an as-of read skips the files that end before its instant
        current = rows[IS_CURRENT]
        return [sort_rows(rows.filter(pc.invert(current)), load.sort_by),
                sort_rows(rows.filter(current), load.sort_by)]

    if fresh or ready.replaced.num_rows:
        _overwrite(tx, table.io, rebuild, props, match=None if fresh else ready.replaced)
    else:
        props.update({HISTORY_OPENED: "0", HISTORY_CLOSED: "0"})


def _write(tx: Transaction, io: FileIO, load: TableLoad, incoming: pa.Schema, plan: SchemaPlan,
           props: dict[str, str]) -> None:
    laid_out = bool(load.partition_by or load.sort_by)
    if load.write_mode == "append" and not laid_out and registrable(tx, plan, load.files):
        register(tx, io, load.files, props)
        return
    if load.write_mode in ("append", "replace"):
        # partitioned or sorted data is written from a table (sorted whole); otherwise streamed
        data: pa.Table | pa.RecordBatchReader = (
            sort_rows(conform(plan.read_all(load.files, incoming), tx), load.sort_by)
            if laid_out else plan.reader(load.files, incoming))
        if load.write_mode == "append":
            tx.append(data, snapshot_properties=props)
        else:
            _overwrite(tx, io, data, props)
        return
    # merge: the rows whose key arrives are replaced by the load.  upsert keeps one row per key
    # (the last one sent); delete-insert keeps the load as sent.  (pyiceberg's
    # Transaction.upsert also cannot compare rows once the schema evolved in the same
    # transaction.)  Keys in delete files, and rows marked in delete_column, are removed.
    if load.history is None and VALID_FROM in tx.table_metadata.schema().column_names:
        raise HistoryInputError(
            f"{'.'.join(load.identifier)} keeps history (merge_strategy scd2); merging one row "
            "per key into it would drop its closed versions: keep scd2, or run floe run "
            "--full-refresh to start it over without history")
    if load.truncate and load.one_per_key and not laid_out:
        # the table is replaced by rows already folded to one per key (a CDC first copy or a
        # TRUNCATE): streamed in, with no key pass (1M rows: 0.1 s less)
        _overwrite(tx, io, plan.reader(load.files, incoming), props)
        return
    keys = list(load.primary_key)
    last_wins = load.merge_strategy != "delete-insert"
    if laid_out:  # partitioned or sorted: the rows are sorted whole, so they are read whole
        merge = whole_merge_load(plan.read_all(load.files, incoming), keys, last_wins,
                                 load.delete_column)
        rows: pa.Table | pa.RecordBatchReader = sort_rows(conform(merge.rows, tx), load.sort_by)
    else:  # streamed: only the load's keys are held in memory
        merge = stream_merge_load(load.files, incoming, plan, keys, last_wins,
                                  load.delete_column)
        rows = merge.rows
    gone = pa.concat_tables([_delete_keys(load.delete_files, merge.replaced.schema),
                             merge.deleted], promote_options="default")  # (nullability)
    if load.truncate:
        _overwrite(tx, io, rows, props)
    elif merge.replaced.num_rows or gone.num_rows:
        match = pa.concat_tables([merge.replaced, gone], promote_options="default")
        _overwrite(tx, io, rows, props,
                   match=match if unique_keys(match, keys) else _unique(match))


def _unique(keys: pa.Table) -> pa.Table:
    return keys.group_by(keys.column_names, use_threads=False).aggregate([])


def _delete_keys(files: Sequence[str], keys: pa.Schema) -> pa.Table:
    if not files:
        return keys.empty_table()
    return ds.dataset(list(files), format="parquet").to_table(
        columns={f.name: ds.field(f.name).cast(f.type) for f in keys})


def _recreate_schema(tx: Transaction, incoming: pa.Schema) -> None:
    """--full-refresh: the table's columns become the source's, types included.  Columns the
    source no longer has, or whose type changed, are dropped (their field ids retire, so older
    snapshots still read as they were); then the source's columns are added."""
    current = {f.name: f.field_type for f in tx.table_metadata.schema().fields}
    wanted = _iceberg_types(incoming)
    stale = [name for name, kind in current.items() if wanted.get(name) != kind]
    if stale:
        with tx.update_schema() as update:
            for name in stale:
                update.delete_column(name)
    if stale or set(wanted) - set(current):
        with tx.update_schema() as update:
            update.union_by_name(pa.schema([f for f in incoming if f.name in wanted]))


def _iceberg_types(incoming: pa.Schema) -> dict[str, Any]:
    return {f.name: arrow_to_iceberg_type(f.type) for f in incoming
            if not pa.types.is_null(f.type)}


def _renames(stored: dict[str, str] | None, load: TableLoad, columns: list[str]
             ) -> list[tuple[str, str]]:
    """Renames by column id since the last commit, then those a CDC stream saw (a column
    the first already renames is not renamed twice)."""
    by_id = renames(stored, load.source_columns, columns)
    done = {old for old, _ in by_id} | {new for _, new in by_id}
    return by_id + [(old, new) for old, new in stream_renames(columns, load.column_renames)
                    if old not in done and new not in done]


def _commit_once(catalog: Catalog, load: TableLoad, incoming: pa.Schema) -> CommitResult:
    table, created = _load_or_create(catalog, load, incoming)
    record = read_source_state(table, load.source_key)
    _fence(record.token, load)
    before = table.current_snapshot()
    before_id = before.snapshot_id if before is not None else None
    props = snapshot_properties(table, load.source_key, load.state, load.load_id,
                                load.source_columns, carry_others=load.write_mode != "replace")
    if load.started_at is not None:  # floe status: how long the load took
        props[STARTED_PROPERTY] = str(int(load.started_at * 1000))
    renamed = [] if load.recreate else _renames(record.columns, load,
                                                table.schema().column_names)
    with table.transaction() as tx:
        if renamed:  # same field id: older snapshots read under the new name
            with tx.update_schema() as update:
                for old, new in renamed:
                    update.rename_column(old, new)
        if load.recreate and not created:
            _recreate_schema(tx, incoming)
        plan = plan_schema(tx.table_metadata.schema(), incoming, load.schema_contract,
                           load.primary_key)
        if plan.changes_schema:
            with tx.update_schema() as update:
                for name, wider in plan.promotions:
                    update.update_column(name, field_type=wider)
                if plan.new_columns:
                    update.union_by_name(pa.schema(plan.new_columns))
        apply_layout(tx, load.partition_by, load.sort_by)
        if load.history is not None and load.write_mode in ("merge", "replace"):
            _write_history(tx, table, load, incoming, plan, props)
        else:
            _write(tx, table.io, load, incoming, plan, props)
        current = tx.table_metadata.current_snapshot()
        if current is None or current.snapshot_id == before_id:
            # nothing changed (e.g. an upsert of identical rows): still commit the new state
            empty = schema_to_pyarrow(tx.table_metadata.schema()).empty_table()
            tx.append(empty, snapshot_properties=props)
    # the committed transaction has already refreshed `table` with the catalog's answer
    return _summarize(table, before_id, load.identifier, plan, created, tuple(renamed))


def _summarize(table: Table, before_id: int | None, identifier: tuple[str, str],
               plan: SchemaPlan, created: bool, renamed: tuple[tuple[str, str], ...]
               ) -> CommitResult:
    snapshot = table.current_snapshot()
    current_id = snapshot.snapshot_id if snapshot is not None else None
    added = records = size = deletes = 0
    while snapshot is not None and snapshot.snapshot_id != before_id:
        added += 1
        summary = snapshot.summary
        if summary is not None:
            records += int(summary["added-records"] or 0)
            size += int(summary["added-files-size"] or 0)
            deletes += int(summary["added-delete-files"] or 0)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    newest = table.current_snapshot()
    summary = newest.summary if newest is not None else None
    opened = summary.get(HISTORY_OPENED) if summary is not None else None
    closed = summary.get(HISTORY_CLOSED) if summary is not None else None
    return CommitResult(identifier, current_id, added, records, size, plan.added,
                        total_rows(newest), tuple(plan.changes),
                        before_id, created, renamed,
                        int(opened) if opened is not None and added else None,
                        int(closed) if closed is not None and added else None, deletes)


def undo_commit(catalog: Catalog, result: CommitResult) -> None:
    """Take back a commit of this load (a later table of the same load failed).

    Only if the table is still where this load left it: the rollback asserts the current
    snapshot, so a commit by anyone else since makes it fail instead of losing their data.
    """
    table = catalog.load_table(result.identifier)
    current = table.current_snapshot()
    if current is None or current.snapshot_id != result.snapshot_id:
        raise CommitFailedException(f"{'.'.join(result.identifier)} moved since this load")
    if result.before_snapshot_id is None:
        if result.created:
            catalog.drop_table(result.identifier)
            return
        raise CommitFailedException(f"{'.'.join(result.identifier)} has no earlier snapshot")
    table.manage_snapshots().rollback_to_snapshot(result.before_snapshot_id).commit()


__all__ = ["UNFENCED", "CommitResult", "TableLoad", "commit_table_load", "total_rows",
           "undo_commit"]
