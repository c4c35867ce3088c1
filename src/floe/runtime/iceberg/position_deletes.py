"""Merge-on-read: a merge marks the rows it replaces in a position-delete file instead of
rewriting the data files that hold them.

Copy-on-write makes a merge cost what the files it touches cost: 10k changed keys spread over a
1M-row table rewrite all 1M rows.  A table whose ``write.merge.mode`` is ``merge-on-read``
(Iceberg's own property; floe sets it on ``postgres_cdc`` tables) gets, per touched data file,
one file-scoped delete file (Iceberg v2 position deletes: ``file_path``, ``pos``) naming every
dead row of that file — the earlier ones too, so a data file never has more than one — and the
new rows as a new data file.  Every Iceberg reader applies them (pyiceberg, Spark, Trino,
DuckDB); ``floe maintain`` rewrites files with deletes away.

A file with at least half of its rows dead is rewritten instead (reads stay cheap), and a file
with none left is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.conversions import to_bytes
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import FileScanTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.types import LongType, StringType

from floe.runtime.iceberg.pyiceberg_internals import is_position_deletes

MERGE_MODE = "write.merge.mode"
# only merges: pyiceberg's own Table.delete reads write.delete.mode and cannot do it by position
MERGE_ON_READ = {MERGE_MODE: "merge-on-read"}
PATH_FIELD_ID = 2147483546  # reserved by the Iceberg spec for position delete files
POS_FIELD_ID = 2147483545
_PATH_ID = {b"PARQUET:field_id": str(PATH_FIELD_ID).encode()}
_POS = pa.field("pos", pa.int64(), nullable=False,
                metadata={b"PARQUET:field_id": str(POS_FIELD_ID).encode()})
# what floe writes: the one path as a dictionary (parquet stores it as plain strings)
_DICTIONARY_SCHEMA = pa.schema([
    pa.field("file_path", pa.dictionary(pa.int32(), pa.string()), nullable=False,
             metadata=_PATH_ID), _POS])


def merge_on_read(metadata: TableMetadata) -> bool:
    """Does this table take position deletes (v2+, and asked for)?"""
    return metadata.format_version >= 2 and \
        metadata.properties.get(MERGE_MODE) == "merge-on-read"


def scoped_to(delete_file: DataFile, data_path: str) -> bool:
    """A delete file that names only ``data_path`` (floe's kind): it goes when that file goes.
    Another engine's delete file may name several data files, and stays."""
    lower, upper = delete_file.lower_bounds or {}, delete_file.upper_bounds or {}
    bound = data_path.encode()
    return is_position_deletes(delete_file) and lower.get(PATH_FIELD_ID) == bound and \
        upper.get(PATH_FIELD_ID) == bound


def scoped_deletes(task: FileScanTask) -> list[DataFile]:
    """The delete files of ``task`` that go when its data file goes (or gets a new one)."""
    return [d for d in task.delete_files if scoped_to(d, task.file.file_path)]


def _rows(io: FileIO, delete_file: DataFile, columns: tuple[str, ...] = ("file_path", "pos")
          ) -> pa.Table:
    with io.new_input(delete_file.file_path).open() as stream:
        return pq.read_table(stream, columns=list(columns))


def dead_positions(io: FileIO, delete_files: Iterable[DataFile], data_path: str) -> np.ndarray:
    """The sorted positions of ``data_path`` that ``delete_files`` delete."""
    found: list[np.ndarray] = [np.empty(0, np.int64)]
    for delete_file in delete_files:
        if not is_position_deletes(delete_file):
            continue
        if scoped_to(delete_file, data_path):  # its file_path is this file: positions only
            rows = _rows(io, delete_file, ("pos",))
        else:
            rows = _rows(io, delete_file)
            rows = rows.filter(pa.compute.equal(rows["file_path"], data_path))
        found.append(rows["pos"].to_numpy())
    if len(found) == 2:  # one delete file (floe writes its positions sorted, each once)
        only = found[1].astype(np.int64, copy=False)
        if not only.size or bool(np.all(only[1:] > only[:-1])):
            return only
    return np.unique(np.concatenate(found)).astype(np.int64, copy=False)


def positions_by_file(io: FileIO, delete_file: DataFile) -> dict[str, np.ndarray]:
    """Every data file ``delete_file`` names, with the positions it deletes there."""
    rows = _rows(io, delete_file)
    paths = pa.compute.unique(rows["file_path"]).to_pylist()
    return {path: np.unique(rows.filter(pa.compute.equal(rows["file_path"], path))["pos"]
                            .to_numpy()) for path in paths}


def write_position_deletes(io: FileIO, metadata: TableMetadata, data_file: DataFile,
                           positions: np.ndarray) -> DataFile:
    """One delete file of ``data_file``'s ``positions`` (sorted), in the data file's partition."""
    where = load_location_provider(metadata.location, metadata.properties)
    path = where.new_data_location(f"floe-deletes-{uuid.uuid4()}.parquet")
    # the one path as a dictionary, not a string per position (written as plain parquet
    # strings: no Arrow schema is stored, so every reader reads the spec's string column)
    same_path = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(positions), np.int32)),
                                               pa.array([data_file.file_path], pa.string()))
    rows = pa.table([same_path, pa.array(positions, pa.int64())], schema=_DICTIONARY_SCHEMA)
    with io.new_output(path).create(overwrite=True) as stream:
        pq.write_table(rows, stream, store_schema=False)
    deletes = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES, file_path=path,
        file_format=FileFormat.PARQUET, partition=data_file.partition,
        record_count=len(positions), file_size_in_bytes=len(io.new_input(path)),
        lower_bounds={PATH_FIELD_ID: to_bytes(StringType(), data_file.file_path),
                      POS_FIELD_ID: to_bytes(LongType(), int(positions[0]))},
        upper_bounds={PATH_FIELD_ID: to_bytes(StringType(), data_file.file_path),
                      POS_FIELD_ID: to_bytes(LongType(), int(positions[-1]))},
        value_counts={PATH_FIELD_ID: len(positions), POS_FIELD_ID: len(positions)},
        null_value_counts={PATH_FIELD_ID: 0, POS_FIELD_ID: 0})
    deletes.spec_id = data_file.spec_id
    return deletes
