"""A dlt load's normalized files, transformed: each file read, shaped, and written again
(Bronze data files: compressed like dlt's).

A merge keeps the last row sent per key, so ``where`` is decided on that row too: a key whose
last row fails the filter is deleted from Bronze (written apart, as keys, for the commit), and
its earlier rows that passed are left out; a key whose last row passes is upserted as usual."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    rows: int = 0


def transform_files(transform: TableTransform, files: Sequence[str], table_name: str,
                    key: Sequence[str], workdir: Path, merge: bool = False
                    ) -> TransformedFiles:
    done = TransformedFiles()
    workdir.mkdir(parents=True, exist_ok=True)
    decided: list[pa.Table] = []  # merge: each row's key and whether it passed, in order
    for number, path in enumerate(files):
        applied = transform.apply(pq.read_table(path), table_name, key, filter_rows=False)
        rows = applied.rows
        if applied.kept is not None:
            if merge and key:
                decided.append(rows.select(list(key)).append_column(_PASSED, applied.kept))
            rows = rows.filter(applied.kept)
        target = workdir / f"{Path(path).stem}.{number}.parquet"
        pq.write_table(rows, target)
        done.files.append(str(target))
        done.rows += rows.num_rows
    if decided:
        _delete_failing_last_rows(done, pa.concat_tables(decided), list(key), workdir)
    return done


def _delete_failing_last_rows(done: TransformedFiles, decided: pa.Table, key: list[str],
                              workdir: Path) -> None:
    last = decided.filter(last_per_key(decided, key))
    gone = last.filter(pc.invert(last[_PASSED])).select(key)
    if not gone.num_rows:
        return
    path = workdir / "filtered-keys.parquet"
    pq.write_table(gone, path)
    done.filtered_keys.append(str(path))
    deleted = KeySet(gone)
    if not pc.any(deleted.hits(decided.filter(decided[_PASSED]))).as_py():
        return
    done.rows = 0
    for file in done.files:  # a row that passed, sent before its key's failing last row
        rows = pq.read_table(file)
        rows = rows.filter(pc.invert(deleted.hits(rows)))  # (order kept: last-per-key)
        pq.write_table(rows, file)
        done.rows += rows.num_rows
