"""The first run's copy of a table, kept on disk as it is read: each batch becomes a plain
Parquet working file, so a copy of any size holds one batch in memory (1M MySQL rows: peak
RSS 488 MB when the copy stayed in memory as Arrow).

At the commit, the parts go to the merge as they are, except where the replay touched them:
a part holding a key a later change replaced, or written before a column was renamed, is
rewritten without those rows / under the new names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_plain(table: pa.Table, path: Path) -> str:
    """A working file read once: no compression, dictionary or statistics (1M rows written
    and read in 0.12 s instead of 0.41 s)."""
    pq.write_table(table, path, compression="none", use_dictionary=False,
                   write_statistics=False)
    return str(path)


class CopyParts:
    """The copied batches: Parquet parts under ``folder``, or Arrow in memory without one."""

    def __init__(self, folder: Path | None, name: str) -> None:
        self.folder, self.name = folder, name
        self.paths: list[str] = []
        self.tables: list[pa.Table] = []
        self.renames: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.paths or self.tables)

    def add(self, table: pa.Table) -> None:
        if self.folder is None:
            self.tables.append(table)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paths.append(write_plain(
            table, self.folder / f"{self.name}.copy-{len(self.paths):05d}.parquet"))

    def rename(self, old: str, new: str) -> None:
        self.renames.append((old, new))

    def clear(self) -> None:
        for path in self.paths:
            Path(path).unlink(missing_ok=True)
        self.paths, self.tables, self.renames = [], [], []

    def _renamed(self, table: pa.Table) -> pa.Table:
        names = table.column_names
        for old, new in self.renames:
            names = [new if n == old else n for n in names]
        return table.rename_columns(names)

    def parts(self) -> Iterator[pa.Table]:
        """Each part, under the current column names."""
        yield from (self._renamed(t) for t in self.tables)
        for path in self.paths:
            yield self._renamed(pq.read_table(path))

    def matching(self, keys: pa.Table) -> pa.Table | None:
        """The copied rows whose key is in ``keys`` (None: none)."""
        found = [part.join(keys, keys.column_names, join_type="left semi")
                 for part in self.parts()]
        found = [f for f in found if f.num_rows]
        return pa.concat_tables(found, promote_options="permissive") if found else None

    def files(self, folder: Path, replaced: pa.Table | None) -> list[str]:
        """The parts as files for the commit, without the rows whose key is in ``replaced``
        (a later change supersedes them).  Untouched parts pass as they are."""
        out: list[str] = []
        sources: Sequence[pa.Table | str] = [*self.tables, *self.paths]
        untouched = (replaced is None or not replaced.num_rows) and not self.renames
        for number, source in enumerate(sources):
            if isinstance(source, str) and untouched:
                out.append(source)
                continue
            table = pq.read_table(source) if isinstance(source, str) else source
            table = self._renamed(table)
            kept = table if replaced is None or not replaced.num_rows else table.join(
                replaced, replaced.column_names, join_type="left anti")
            if isinstance(source, str) and kept.num_rows == table.num_rows \
                    and not self.renames:
                out.append(source)
                continue
            out.append(write_plain(kept, folder / f"{self.name}.part-{number:05d}.parquet"))
        return out
