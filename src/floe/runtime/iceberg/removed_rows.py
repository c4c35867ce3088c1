"""The rows a merge removed, kept beside its snapshot so ``floe changes`` need not diff files.

A copy-on-write merge that updates 1,000 keys spread over a 10M-row table rewrites every data
file; diffing the files it removed against the files it added reads the whole table twice to
find 1,000 rows.  The merge already holds each removed row in memory for a moment (it filters
them out of the files it rewrites), so it streams them into one Parquet file next to the
table's data — the idea of Delta Lake's change data files — and names it in the snapshot
summary, with the write id of the files it wrote back (the rows it kept).  For that snapshot,
the change is then: inserts = the files it added that are not rewrites, deletes = this file.

The file carries Iceberg field ids, so it is read with the table's current schema like any
data file (renamed columns keep their values, newer columns read as nulls).  A reader that
finds it gone falls back to diffing the snapshot's files.
"""

from __future__ import annotations

import uuid
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.typedef import Record

REMOVED_ROWS_PROPERTY = "floe.removed-rows-file"
REMOVED_COUNT_PROPERTY = "floe.removed-rows"
REWRITE_ID_PROPERTY = "floe.rewrite-id"
COMPACTION_PROPERTY = "floe.compaction"


class RemovedRows:
    """Streams the rows a merge removes into one Parquet file (bounded memory)."""

    def __init__(self, io: FileIO, metadata: TableMetadata, keep: bool = False) -> None:
        self.rewrite_id = uuid.uuid4()
        where = load_location_provider(metadata.location, metadata.properties)
        self.path = where.new_data_location(f"floe-removed-{self.rewrite_id}.parquet")
        schema = metadata.schema()
        self._io = io
        self._schema = schema_to_pyarrow(schema)  # with field ids
        self._stream = io.new_output(self.path).create(overwrite=True)
        self._writer = pq.ParquetWriter(self._stream, self._schema)
        self.count = 0
        self.kept: list[pa.Table] | None = [] if keep else None  # a history load's versions

    def properties(self) -> dict[str, str]:
        return {REMOVED_ROWS_PROPERTY: self.path, REWRITE_ID_PROPERTY: str(self.rewrite_id),
                REMOVED_COUNT_PROPERTY: str(self.count)}

    def add(self, rows: pa.Table) -> None:
        if rows.num_rows:
            typed = rows.cast(self._schema)
            self._writer.write_table(typed)
            self.count += rows.num_rows
            if self.kept is not None:
                self.kept.append(typed)

    def __enter__(self) -> RemovedRows:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._writer.close()
        self._stream.close()
        if kind is not None:  # the merge failed: nothing references the file
            self._io.delete(self.path)


def removed_rows_file(io: FileIO, snapshot: Snapshot, spec_id: int) -> DataFile | None:
    """The file of rows ``snapshot`` removed, as a data file to scan (None: it wrote none, or
    the file is gone)."""
    summary = snapshot.summary
    path = summary.get(REMOVED_ROWS_PROPERTY) if summary is not None else None
    if summary is None or path is None:
        return None
    found = io.new_input(path)
    if not found.exists():
        return None
    return parquet_file(path, spec_id, Record(), int(summary.get(REMOVED_COUNT_PROPERTY, "0")),
                        len(found))


def parquet_file(path: str, spec_id: int, partition: Record, record_count: int = 0,
                 size: int = 0) -> DataFile:
    """A Parquet file no live manifest lists, described well enough for pyiceberg to scan."""
    data_file = DataFile.from_args(
        content=DataFileContent.DATA, file_path=path, file_format=FileFormat.PARQUET,
        partition=partition, record_count=record_count, file_size_in_bytes=size)
    data_file.spec_id = spec_id
    return data_file


def is_rewrite(snapshot: Snapshot, path: str) -> bool:
    """A file ``snapshot`` wrote back: rows it kept, already in the table before."""
    summary = snapshot.summary
    rewrite_id = summary.get(REWRITE_ID_PROPERTY) if summary is not None else None
    return rewrite_id is not None and rewrite_id in path


def rows_unchanged(snapshot: Snapshot) -> bool:
    """A compaction: files rewritten, rows exactly as they were."""
    summary = snapshot.summary
    return summary is not None and summary.get(COMPACTION_PROPERTY) == "true"
