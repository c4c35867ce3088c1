"""The load side of a merge, streamed: only its keys are held in memory, never its rows.

A merge needs three things from the load: which keys it replaces (to take their old versions
out of the table), which keys it deletes, and the rows to write.  The first pass reads the key
columns alone (and ``delete_column``), in the order the rows come, and decides there which rows
survive: the last one sent per key for ``upsert``, every row for ``delete-insert``, none that a
delete marker removes.  The second pass streams the rows file by file, batch by batch, keeping
the survivors by position.  A 10M-row load of five columns holds ~200 MB of keys instead of
every row (2.1 GB peak before).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyiceberg.table.upsert_util import has_duplicate_rows

from floe.runtime.iceberg.evolution import SchemaPlan

_BATCH = 256_000


@dataclass
class MergeLoad:
    rows: pa.RecordBatchReader | pa.Table  # the rows to write
    replaced: pa.Table  # keys of those rows
    deleted: pa.Table  # keys marked deleted in the load


def marked(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A delete marker: true for a boolean column, non-null for anything else."""
    if pa.types.is_boolean(column.type):
        return pc.fill_null(column, False)
    return pc.is_valid(column)


def _keys(files: Sequence[str], incoming: pa.Schema, plan: SchemaPlan, keys: list[str],
          marker: str | None) -> tuple[pa.Table, list[int]]:
    """The load's key columns (and marker), in the order the rows come, and each file's
    row count."""
    wanted = [*keys, *([marker] if marker else [])]
    parts = [ds.dataset([path], schema=incoming, format="parquet").to_table(
        columns={c: plan.projection[c] for c in wanted}) for path in files]
    return pa.concat_tables(parts), [part.num_rows for part in parts]


def unique_keys(table: pa.Table, keys: list[str]) -> bool:
    """No key appears twice (one key column: a hash set of its values, not a group-by)."""
    column = table[keys[0]] if len(keys) == 1 else None
    if column is not None and (pa.types.is_integer(column.type)
                               or pa.types.is_timestamp(column.type)) and not column.null_count:
        values = column.to_numpy()  # numbers: a sort (or none, if they come sorted) beats
        if bool(np.all(values[1:] > values[:-1])):  # a hash table of 10M keys by ~1 GB
            return True
        values = np.sort(values)
        return not bool(np.any(values[1:] == values[:-1]))
    return not has_duplicate_rows(table.select(keys), keys)


def last_per_key(table: pa.Table, keys: list[str]) -> pa.Array:
    """For each row: is it the last one sent for its key."""
    if unique_keys(table, keys):
        return pa.array(np.ones(table.num_rows, dtype=bool))
    order = pa.array(np.arange(table.num_rows, dtype=np.int64))
    last = table.select(keys).append_column("__order", order).group_by(
        keys, use_threads=False).aggregate([("__order", "max")])["__order_max"]
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[last.to_numpy()] = True
    return pa.array(keep)


def _rows(files: Sequence[str], incoming: pa.Schema, plan: SchemaPlan, keep: np.ndarray,
          starts: list[int], first_key: str, expected: pa.ChunkedArray
          ) -> Iterator[pa.RecordBatch]:
    for number, path in enumerate(files):
        at = starts[number]
        scanner = ds.dataset([path], schema=incoming, format="parquet").scanner(
            columns=plan.projection, batch_size=_BATCH)
        for batch in scanner.to_batches():
            end = at + batch.num_rows
            if not batch[first_key].equals(expected.slice(at, batch.num_rows).combine_chunks()):
                raise RuntimeError("the merge's second read of the load came back in another "
                                   "order than its first")
            mask = keep[at:end]
            at = end
            if mask.all():
                yield batch
            elif mask.any():
                yield batch.filter(pa.array(mask))


def _survivors(found: pa.Table, keys: list[str], last_wins: bool, marker: str | None
               ) -> tuple[np.ndarray, pa.Table]:
    """Which rows the merge writes (the last per key for upsert, all for delete-insert, none a
    delete marker flags), and the keys the markers delete."""
    keep = last_per_key(found, keys).to_numpy(zero_copy_only=False) if last_wins \
        else np.ones(found.num_rows, dtype=bool)
    deleted = found.select(keys).slice(0, 0)
    if marker is not None:
        flagged = marked(found[marker]).to_numpy(zero_copy_only=False) & keep
        deleted = found.select(keys).filter(pa.array(flagged))
        keep &= ~flagged
    return keep, deleted


def whole_merge_load(rows: pa.Table, keys: list[str], last_wins: bool, marker: str | None
                     ) -> MergeLoad:
    """The same decisions on a load read whole (a partitioned or sorted table sorts it)."""
    marker = marker if marker and marker in rows.column_names else None
    keep, deleted = _survivors(rows, keys, last_wins, marker)
    kept = rows.filter(pa.array(keep))
    return MergeLoad(kept, kept.select(keys), deleted)


def stream_merge_load(files: Sequence[str], incoming: pa.Schema, plan: SchemaPlan,
                      keys: list[str], last_wins: bool, marker: str | None) -> MergeLoad:
    marker = marker if marker and marker in incoming.names else None
    found, counts = _keys(files, incoming, plan, keys, marker)
    keep, deleted = _survivors(found, keys, last_wins, marker)
    starts = [int(s) for s in np.concatenate([[0], np.cumsum(counts)])]
    schema = ds.dataset(list(files), schema=incoming, format="parquet").scanner(
        columns=plan.projection).projected_schema
    reader = pa.RecordBatchReader.from_batches(schema, _rows(
        files, incoming, plan, keep, starts, keys[0], found[keys[0]]))
    return MergeLoad(reader, found.select(keys).filter(pa.array(keep)), deleted)
