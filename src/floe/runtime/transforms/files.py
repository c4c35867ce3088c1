"""A dlt load's rows through the source's transform.

Arrow items (sql_database, filesystem, Arrow-yielding python sources) are shaped as dlt
extracts them (a map step on each resource), so dlt writes the shaped rows once: reading and
writing the normalized files again would cost more than the transform (1M rows: 0.8 s).
Python dicts (rest_api, dict-yielding python sources) are shaped after dlt normalized them,
file by file, under the names dlt gave their columns.

A merge keeps the last row sent per key, so ``where`` is decided on that row too: a key whose
last row fails the filter is deleted from Bronze (written apart, as keys, for the commit), and
its earlier rows that passed are left out; a key whose last row passes is upserted as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from floe.runtime.iceberg.keyset import KeySet
from floe.runtime.iceberg.merge_load import last_per_key
from floe.runtime.transforms.table import TableTransform

_PASSED = "__floe_passed"


@dataclass
class TransformedFiles:
    files: list[str] = field(default_factory=list)
    filtered_keys: list[str] = field(default_factory=list)  # merge: keys to delete
    rows: int | None = None  # rows landing (None: as dlt counted them)


@dataclass
class _Seen:
    table: str
    key: Sequence[str]
    merge: bool
    arrow: bool = False
    dicts: bool = False
    decided: list[pa.Table] = field(default_factory=list)  # merge: key + passed, in order


class Shaper:
    """One load's transform, shared by its resources' map steps and its commit."""

    def __init__(self, transform: TableTransform) -> None:
        self.transform = transform
        self.seen: dict[str, _Seen] = {}  # by Bronze table

    def step(self, table: str, key: Sequence[str], merge: bool, at_extract: bool = True
             ) -> Callable[[Any], Any]:
        """The map step for the resource landing in ``table``: Arrow items are shaped now
        (``at_extract``), anything else passes on to be shaped from its normalized files."""
        seen = self.seen.setdefault(table, _Seen(table, key, merge))

        def shape(item: Any) -> Any:
            if not at_extract or not isinstance(item, pa.Table | pa.RecordBatch):
                seen.dicts = True
                return item
            seen.arrow = True
            rows = item if isinstance(item, pa.Table) else pa.Table.from_batches([item])
            return _decide(self.transform.apply(rows, table, key, filter_rows=False), seen)
        return shape

    def finish(self, table: str, files: Sequence[str], workdir: Path) -> TransformedFiles:
        """The table's files as they land, and the keys ``where`` deletes (merge)."""
        seen = self.seen.get(table)
        if seen is None:  # not a resource's table (quarantined rows): as they came
            return TransformedFiles(list(files))
        if seen.arrow and seen.dicts:
            raise self.transform.error(
                f"{table}: its resource yields both Arrow tables and Python dicts; floe "
                "shapes one or the other: yield one kind")
        workdir.mkdir(parents=True, exist_ok=True)
        done = TransformedFiles(list(files))
        if seen.dicts:
            done = TransformedFiles(rows=0)
            for number, path in enumerate(files):
                applied = self.transform.apply(pq.read_table(path), table, seen.key,
                                               filter_rows=False)
                target = workdir / f"{Path(path).stem}.{number}.parquet"
                rows = _decide(applied, seen)
                pq.write_table(rows, target)
                done.files.append(str(target))
                done.rows = (done.rows or 0) + rows.num_rows
        if seen.decided:  # (batches may differ in nullability)
            decided = pa.concat_tables(seen.decided, promote_options="permissive")
            _delete_failing_last_rows(done, decided, list(seen.key), workdir)
        return done


def _decide(applied: Any, seen: _Seen) -> pa.Table:
    """The rows that pass; a merge remembers each row's key and verdict."""
    rows: pa.Table = applied.rows
    if applied.kept is None:
        return rows
    if seen.merge and seen.key:
        seen.decided.append(rows.select(list(seen.key)).append_column(_PASSED, applied.kept))
    return rows.filter(applied.kept)


def _delete_failing_last_rows(done: TransformedFiles, decided: pa.Table, key: list[str],
                              workdir: Path) -> None:
    last = decided.filter(last_per_key(decided, key))
    gone = last.filter(pc.invert(last[_PASSED])).select(key)
    if not gone.num_rows:
        return
    gone = gone.cast(pa.schema([f.with_nullable(True) for f in gone.schema]))  # as a merge's
    path = workdir / "filtered-keys.parquet"
    pq.write_table(gone, path)
    done.filtered_keys.append(str(path))
    deleted = KeySet(gone)
    if not pc.any(deleted.hits(decided.filter(decided[_PASSED]))).as_py():
        return
    done.rows = 0
    for number, file in enumerate(list(done.files)):  # a row that passed, sent before its
        rows = pq.read_table(file)  # key's failing last row (order kept: last per key)
        rows = rows.filter(pc.invert(deleted.hits(rows)))
        target = workdir / f"kept.{number}.parquet"
        pq.write_table(rows, target)
        done.files[number] = str(target)
        done.rows += rows.num_rows
