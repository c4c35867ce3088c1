"""Contract test for the pyiceberg internals floe relies on (runtime/iceberg/pyiceberg_internals)
and for the one behaviour of pyiceberg floe turns off (blind commit retries).  A pyiceberg
upgrade that changes any of them fails here first."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import EqualTo
from pyiceberg.manifest import ManifestContent
from pyiceberg.types import DecimalType, LongType, StringType

from floe.runtime.iceberg.commit import NO_BLIND_RETRY
from floe.runtime.iceberg.position_deletes import dead_positions, write_position_deletes
from floe.runtime.iceberg.pyiceberg_internals import (
    RowLevelOverwrite,
    _cached_table_metadata,
    arrow_to_iceberg_type,
    cache_transaction_metadata,
    data_files,
    files_matching,
    storage_path,
    stored_files,
)

ROWS = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})


def _catalog(tmp_path: Path) -> Catalog:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("ns")
    return catalog


def test_the_internals_floe_uses(tmp_path: Path) -> None:
    assert arrow_to_iceberg_type(pa.int64()) == LongType()
    assert arrow_to_iceberg_type(pa.string()) == StringType()
    assert arrow_to_iceberg_type(pa.decimal128(14, 2)) == DecimalType(14, 2)
    table = _catalog(tmp_path).create_table(("ns", "t"), schema=ROWS.schema)
    table.append(ROWS)
    with table.transaction() as tx:
        assert len(list(files_matching(tx, EqualTo("id", 2)))) == 1
        written = list(data_files(tx.table_metadata, table.io, ROWS, uuid.uuid4(),
                                  itertools.count(0)))
        assert sum(f.record_count for f in written) == 3
    listed = dict(stored_files(table.io, table.location()))
    [task] = table.scan().plan_files()
    assert storage_path(task.file.file_path) in listed
    assert storage_path(table.metadata_location) in listed
    assert all(modified > 0 for modified in listed.values())


@pytest.mark.parametrize("blind_retry", [True, False])
def test_commit_retries_are_what_floe_turns_off(tmp_path: Path, blind_retry: bool) -> None:
    """Left on, pyiceberg re-applies a raced append on the newer table: rows land twice."""
    catalog = _catalog(tmp_path)
    properties = {} if blind_retry else NO_BLIND_RETRY
    catalog.create_table(("ns", "t"), schema=ROWS.schema, properties=properties)
    first, second = catalog.load_table(("ns", "t")), catalog.load_table(("ns", "t"))
    first.append(ROWS)
    if blind_retry:
        second.append(ROWS)  # pyiceberg retried on its own
        assert len(catalog.load_table(("ns", "t")).scan().to_arrow()) == 6
    else:
        with pytest.raises(CommitFailedException):
            second.append(ROWS)
        assert len(catalog.load_table(("ns", "t")).scan().to_arrow()) == 3


def test_transaction_metadata_is_computed_once_per_update(tmp_path: Path) -> None:
    """floe caches pyiceberg's Transaction.table_metadata (a deep copy on every access): the
    same answer until an update is added, then the updated metadata."""
    from pyiceberg.table import Transaction
    from pyiceberg.table.update import update_table_metadata

    cache_transaction_metadata()
    assert Transaction.table_metadata.fget is _cached_table_metadata  # type: ignore[attr-defined]
    table = _catalog(tmp_path).create_table(("ns", "t"), schema=ROWS.schema)
    tx = table.transaction()
    first = tx.table_metadata
    assert tx.table_metadata is first
    tx.set_properties(owner="floe")
    updated = tx.table_metadata
    assert updated is not first and updated.properties["owner"] == "floe"
    fresh = update_table_metadata(table.metadata, tx._updates)  # what pyiceberg computes
    assert updated.model_dump(exclude={"last_updated_ms"}) == fresh.model_dump(
        exclude={"last_updated_ms"})  # (that one is "now" at each computation)
    tx.commit_transaction()
    assert table.metadata.properties["owner"] == "floe"


def test_position_deletes_are_added_and_removed_as_pyiceberg_reads_them(tmp_path: Path) -> None:
    """RowLevelOverwrite writes delete manifests pyiceberg 0.12 cannot: a scan applies the
    delete file, the summary counts it, and removing it brings the row back."""
    table = _catalog(tmp_path).create_table(("ns", "t"), schema=ROWS.schema)
    table.append(ROWS)
    [task] = table.scan().plan_files()
    deletes = write_position_deletes(table.io, table.metadata, task.file, np.array([1]))
    with table.transaction() as tx, RowLevelOverwrite(tx, table.io, {"k": "v"}) as snapshot:
        snapshot.add_delete_file(deletes)
    assert table.scan().to_arrow()["name"].to_pylist() == ["a", "c"]
    assert table.scan().count() == 2
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert (summary["total-records"], summary["total-position-deletes"], summary["k"]) == (
        "3", "1", "v")
    manifests = table.current_snapshot().manifests(table.io)  # type: ignore[union-attr]
    assert sorted(m.content for m in manifests) == [ManifestContent.DATA,
                                                    ManifestContent.DELETES]
    [task] = table.scan().plan_files()
    assert dead_positions(table.io, task.delete_files, task.file.file_path).tolist() == [1]
    with table.transaction() as tx, RowLevelOverwrite(tx, table.io, {}) as snapshot:
        snapshot.remove_delete_file(next(iter(task.delete_files)))
    assert table.scan().to_arrow()["name"].to_pylist() == ["a", "b", "c"]
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary["total-position-deletes"] == "0"
    assert [t.delete_files for t in table.scan().plan_files()] == [set()]
