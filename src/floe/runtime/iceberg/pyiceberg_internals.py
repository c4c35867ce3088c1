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


def files_matching(tx: Transaction, row_filter: BooleanExpression) -> Iterable[FileScanTask]:
    """The data files of the transaction's current state that may hold matching rows."""
    return tx._scan(row_filter=row_filter).plan_files()
