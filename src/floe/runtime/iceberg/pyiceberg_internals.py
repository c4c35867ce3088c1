"""Every private pyiceberg API floe relies on, in one place (pinned: pyiceberg 0.12).

floe commits merges as one overwrite snapshot, which needs a few of pyiceberg's internal
helpers (the public ``Transaction.upsert`` writes two snapshots and cannot run after a schema
change in the same transaction).  Keeping them here, with ``tests/runtime/test_pyiceberg_fence.py``
exercising each one, means a pyiceberg upgrade breaks one module and one test, not the runtime.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
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
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriter,
    ManifestWriterV2,
)
from pyiceberg.table import FileScanTask, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.typedef import EMPTY_DICT
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


class _DeleteManifestWriter(ManifestWriterV2):
    """A v2 manifest of delete files (pyiceberg 0.12 writes data manifests only)."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class RowLevelOverwrite(_OverwriteFiles):
    """pyiceberg's overwrite snapshot, plus position-delete files added and removed in it.

    pyiceberg reads position deletes but its producers only add and remove data files (an
    overwrite would even rewrite a delete manifest as a data manifest).  This one keeps the
    delete files apart: added ones go to their own delete manifest, removed ones are written
    out of the delete manifests that held them, and both count in the snapshot summary
    (``total-position-deletes``).  Use it as ``tx.update_snapshot().overwrite()`` is used.
    """

    def __init__(self, tx: Transaction, io: FileIO, snapshot_properties: dict[str, str],
                 commit_uuid: uuid.UUID | None = None) -> None:
        has_parent = tx.table_metadata.snapshot_by_name(MAIN_BRANCH) is not None
        super().__init__(operation=Operation.OVERWRITE if has_parent else Operation.APPEND,
                         transaction=tx, io=io, commit_uuid=commit_uuid,
                         snapshot_properties=snapshot_properties, branch=MAIN_BRANCH)
        self._added_delete_files: list[DataFile] = []
        self._removed_delete_files: set[DataFile] = set()

    def __enter__(self) -> RowLevelOverwrite:
        return self

    def add_delete_file(self, delete_file: DataFile) -> None:
        self._added_delete_files.append(delete_file)

    def remove_delete_file(self, delete_file: DataFile) -> None:
        self._removed_delete_files.add(delete_file)

    def _delete_writer(self, spec_id: int) -> ManifestWriter:
        return _DeleteManifestWriter(self.spec(spec_id), self.schema(),
                                     self.new_manifest_output(), self._snapshot_id,
                                     self._compression)

    def _manifests(self) -> list[ManifestFile]:
        manifests = super()._manifests()
        if not self._added_delete_files and not self._removed_delete_files:
            return manifests
        kept: list[ManifestFile] = []
        gone: dict[int, list[ManifestEntry]] = defaultdict(list)
        for manifest in manifests:
            if manifest.content != ManifestContent.DELETES or not self._removed_delete_files:
                kept.append(manifest)
                continue
            entries = manifest.fetch_manifest_entry(self._io, discard_deleted=True)
            stays = [e for e in entries if e.data_file not in self._removed_delete_files]
            if len(stays) == len(entries):
                kept.append(manifest)
                continue
            for entry in entries:
                if entry.data_file in self._removed_delete_files:
                    gone[manifest.partition_spec_id].append(entry)
            if stays:
                with self._delete_writer(manifest.partition_spec_id) as writer:
                    for entry in stays:
                        writer.existing(entry)
                kept.append(writer.to_manifest_file())
        for spec_id, entries in gone.items():
            with self._delete_writer(spec_id) as writer:
                for entry in entries:
                    writer.delete(entry)
            kept.append(writer.to_manifest_file())
        by_spec: dict[int, list[DataFile]] = defaultdict(list)
        for delete_file in self._added_delete_files:
            by_spec[delete_file.spec_id].append(delete_file)
        for spec_id, files in by_spec.items():
            with self._delete_writer(spec_id) as writer:
                for delete_file in files:
                    writer.add(ManifestEntry.from_args(
                        status=ManifestEntryStatus.ADDED, snapshot_id=self._snapshot_id,
                        sequence_number=None, file_sequence_number=None,
                        data_file=delete_file))
            kept.append(writer.to_manifest_file())
        return kept

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        data, removed = self._added_data_files, self._deleted_data_files
        self._added_data_files = [*data, *self._added_delete_files]
        self._deleted_data_files = removed | self._removed_delete_files
        try:  # the summary collector counts delete files by their content
            return super()._summary(snapshot_properties)
        finally:
            self._added_data_files, self._deleted_data_files = data, removed


def is_position_deletes(data_file: DataFile) -> bool:
    return bool(data_file.content == DataFileContent.POSITION_DELETES)
