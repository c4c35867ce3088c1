"""Append dlt's Parquet files to a table as they are, instead of decoding and re-encoding them.

dlt already wrote each load as Parquet; when those files hold exactly the table's columns and
types (nothing to cast, no variant column, an unpartitioned, unsorted table), copying their
bytes (or hard-linking them, on one local filesystem) to where the table writes its data files
(its location provider) and registering them
with pyiceberg's ``add_files`` gives the same rows as ``append`` without a second encode (1M
rows: ~0.2 s of a 1 s load).  The files
carry no Iceberg field ids, so pyiceberg records the table's name mapping, which its schema
updates keep current (renames included); every reader resolves columns by name through it.
Anything else takes the ``append`` path.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.table import Transaction
from pyiceberg.table.locations import load_location_provider

from floe.runtime.iceberg.evolution import SchemaPlan
from floe.runtime.iceberg.pyiceberg_internals import arrow_to_iceberg_type

_COPY_CHUNK = 8 * 1024 * 1024


def registrable(tx: Transaction, plan: SchemaPlan, files: Sequence[str]) -> bool:
    """dlt's files can be table data files as they are."""
    metadata = tx.table_metadata
    if plan.changes or not metadata.spec().is_unpartitioned() or metadata.sort_order().fields:
        return False
    columns = {f.name: f.field_type for f in metadata.schema().fields}
    for path in files:
        for field in pq.read_schema(path):
            if field.name not in columns or not columns[field.name].is_primitive:
                return False
            try:
                if arrow_to_iceberg_type(field.type) != columns[field.name]:
                    return False
            except (TypeError, ValueError):
                return False
    return True


def register(tx: Transaction, io: FileIO, files: Sequence[str],
             props: dict[str, str]) -> None:
    """Copy ``files`` into the table's data folder and append them in one snapshot."""
    metadata = tx.table_metadata
    where = load_location_provider(metadata.location, metadata.properties)
    copies = []
    for path in files:
        target = where.new_data_location(f"{uuid.uuid4()}.parquet")
        if not _link(Path(path), target):
            with Path(path).open("rb") as source, io.new_output(target).create() as copy:
                shutil.copyfileobj(source, copy, _COPY_CHUNK)
        copies.append(target)
    tx.add_files(copies, snapshot_properties=props, check_duplicate_files=False)


def _link(path: Path, target: str) -> bool:
    """A hard link instead of a copy when the table lives on the same local filesystem as dlt's
    working folder (the embedded platform, a bench): no byte is copied (5M rows: 0.19 s of a
    1.66 s load was the copy), and dlt's own file stays for a commit that is retried.  False
    where a link cannot be made (object storage, another filesystem): the caller copies."""
    parsed = urlparse(target)
    if parsed.scheme not in ("", "file"):
        return False
    local = Path(unquote(parsed.path))
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, local)
    except OSError:
        return False
    return True
