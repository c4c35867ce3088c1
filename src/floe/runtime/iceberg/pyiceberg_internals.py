"""Every private pyiceberg API floe relies on, in one place (pinned: pyiceberg 0.12).

floe commits merges as one overwrite snapshot, which needs a few of pyiceberg's internal
helpers (the public ``Transaction.upsert`` writes two snapshots and cannot run after a schema
change in the same transaction).  Keeping them here, with ``tests/runtime/test_pyiceberg_fence.py``
exercising each one, means a pyiceberg upgrade breaks one module and one test, not the runtime.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyarrow.fs import FileSelector, FileType
from pyiceberg.expressions import BooleanExpression
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    PyArrowFileIO,
    _dataframe_to_data_files,
    _pyarrow_to_schema_without_ids,
)
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.types import IcebergType


def arrow_to_iceberg_type(arrow_type: pa.DataType) -> IcebergType:
    """The Iceberg type pyiceberg would create for a column of ``arrow_type``."""
    schema = _pyarrow_to_schema_without_ids(pa.schema([pa.field("c", arrow_type)]))
    return schema.fields[0].field_type


def data_files(metadata: TableMetadata, io: FileIO, data: pa.Table | pa.RecordBatchReader,
               commit_uuid: Any, counter: itertools.count[int]) -> Iterable[DataFile]:
    """Write ``data`` as Parquet data files of the table (not yet part of any snapshot)."""
    return _dataframe_to_data_files(metadata, data, io, commit_uuid, counter)


def stored_files(io: FileIO, location: str) -> Iterator[tuple[str, float]]:
    """Every file under ``location`` as (path, modified at, epoch seconds), paths spelled as
    ``storage_path`` spells them.  pyiceberg's FileIO cannot list; its pyarrow filesystem
    (built from the catalog's own S3 settings) can."""
    if not isinstance(io, PyArrowFileIO):
        raise NotImplementedError(f"listing files needs pyiceberg's PyArrowFileIO, not "
                                  f"{type(io).__name__}")
    scheme, netloc, path = PyArrowFileIO.parse_location(location)
    filesystem = io.fs_by_scheme(scheme, netloc)
    for info in filesystem.get_file_info(FileSelector(path, recursive=True,
                                                      allow_not_found=True)):
        if info.type == FileType.File and info.mtime is not None:
            yield info.path, info.mtime.timestamp()


def storage_path(location: str) -> str:
    """A file's location without its scheme, as ``stored_files`` lists it."""
    return PyArrowFileIO.parse_location(location)[2]


_TABLE_METADATA = Transaction.table_metadata


def _cached_table_metadata(tx: Transaction) -> TableMetadata:
    """``Transaction.table_metadata``, computed once per (table metadata, pending updates).

    pyiceberg re-applies every pending update to a deep copy of the whole table metadata on
    each access, and a commit reads it ~23 times; the copy grows with the snapshot log (floe
    keeps each source's state in every snapshot's summary).  At 100 snapshots that was 90% of
    a commit (0.43 s).  Metadata models are frozen, and a new update or a refreshed table makes
    a new key, so sharing one result is safe.
    """
    key = (tx._table.metadata, tx._updates)
    cached = tx.__dict__.get("_floe_metadata")
    if cached is not None and cached[0] is key[0] and cached[1] is key[1]:
        return cached[2]  # type: ignore[no-any-return]
    metadata: TableMetadata = _TABLE_METADATA.fget(tx)  # type: ignore[attr-defined]
    tx.__dict__["_floe_metadata"] = (*key, metadata)
    return metadata


def cache_transaction_metadata() -> None:
    """Install ``_cached_table_metadata`` as ``Transaction.table_metadata`` (idempotent)."""
    Transaction.table_metadata = property(_cached_table_metadata)  # type: ignore[method-assign,assignment]


def files_matching(tx: Transaction, row_filter: BooleanExpression) -> Iterable[FileScanTask]:
    """The data files of the transaction's current state that may hold matching rows."""
    return tx._scan(row_filter=row_filter).plan_files()
