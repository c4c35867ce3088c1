"""Appends whose files already match the table are registered as they are (no second encode);
columns added or renamed later still read right, and anything needing a cast is rewritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from floe.runtime.iceberg.commit import TableLoad, commit_table_load


def _append(catalog: SqlCatalog, tmp_path: Path, name: str, rows: pa.Table) -> Table:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(rows, path)
    commit_table_load(catalog, TableLoad(
        identifier=("bronze", "t"), files=[str(path)], write_mode="append",
        merge_strategy="upsert", primary_key=(), schema_contract="evolve", state=None,
        load_id=name))
    return catalog.load_table(("bronze", "t"))


def _added_paths(table: Table) -> list[str]:
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return [entry.data_file.file_path for manifest in snapshot.manifests(table.io)
            if manifest.added_snapshot_id == snapshot.snapshot_id
            for entry in manifest.fetch_manifest_entry(table.io)]


def _rows(table: Table) -> list[dict[str, Any]]:
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def test_matching_files_are_registered_and_stay_readable(tmp_path: Path) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("bronze")
    first = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    table = _append(catalog, tmp_path, "one", first)  # creates the table: written by pyiceberg
    table = _append(catalog, tmp_path, "two", pa.table({
        "id": pa.array([3], pa.int64()), "name": ["c"]}))
    [registered] = _added_paths(table)
    assert pq.read_metadata(registered.removeprefix("file://")).num_rows == 1
    assert pq.read_schema(registered.removeprefix("file://")).field("id").metadata is None
    assert table.metadata.name_mapping() is not None  # readers find columns by name

    # a new column arrives: the table grows it, the file is registered, older rows read null
    table = _append(catalog, tmp_path, "three", pa.table({
        "id": pa.array([4], pa.int64()), "name": ["d"], "email": ["d@x"]}))
    assert len(_added_paths(table)) == 1 and "email" in table.schema().column_names
    with table.update_schema() as update:  # a rename keeps the registered files readable
        update.rename_column("name", "label")
    table = catalog.load_table(("bronze", "t"))
    assert [(r["id"], r["label"], r["email"]) for r in _rows(table)] == [
        (1, "a", None), (2, "b", None), (3, "c", None), (4, "d", "d@x")]

    # values that need a cast (an int into a string column) are rewritten, not registered
    table = _append(catalog, tmp_path, "four", pa.table({
        "id": pa.array([5], pa.int64()), "label": pa.array([7], pa.int64())}))
    [rewritten] = _added_paths(table)
    assert pq.read_schema(rewritten.removeprefix("file://")).field("id").metadata == {
        b"PARQUET:field_id": b"1"}
    assert [(r["id"], r["label"]) for r in _rows(table)][-1] == (5, "7")


def test_registered_and_removed_rows_files_follow_the_tables_data_path(tmp_path: Path) -> None:
    """A table whose data lives elsewhere (write.data.path, or object-storage layout) gets the
    copied files and a merge's removed rows there, like pyiceberg's own data files."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("bronze")
    table = _append(catalog, tmp_path, "one", pa.table({"id": pa.array([1], pa.int64())}))
    elsewhere = (tmp_path / "elsewhere").as_uri()
    with table.transaction() as tx:
        tx.set_properties({"write.data.path": elsewhere})
    table = _append(catalog, tmp_path, "two", pa.table({"id": pa.array([2], pa.int64())}))
    [registered] = _added_paths(table)
    assert registered.startswith(elsewhere)
    path = tmp_path / "merge.parquet"
    pq.write_table(pa.table({"id": pa.array([1], pa.int64())}), path)
    commit_table_load(catalog, TableLoad(
        identifier=("bronze", "t"), files=[str(path)], write_mode="merge",
        merge_strategy="upsert", primary_key=("id",), schema_contract="evolve", state=None,
        load_id="merge"))
    snapshot = catalog.load_table(("bronze", "t")).current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary["floe.removed-rows-file"].startswith(elsewhere)


def test_a_big_load_is_registered_as_several_files(tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    """dlt rotates its Parquet files (floe sets DATA_WRITER__FILE_MAX_BYTES; here a small one),
    so a big load becomes several data files, every row once."""
    import os

    from floe.runtime.ingestion import runner  # noqa: F401  (sets the default)
    from tests.runtime.harness import Project

    assert int(os.environ["DATA_WRITER__FILE_MAX_BYTES"]) == 48 * 1024 * 1024
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_BYTES", str(64 * 1024))
    (tmp_path / "landing").mkdir()
    pq.write_table(pa.table({"id": pa.array(range(200_000), pa.int64()),
                             "note": [f"row number {i}" for i in range(200_000)]}),
                   tmp_path / "landing" / "big.parquet")
    from floe.runtime.ingestion import landing

    monkeypatch.setattr(landing, "_PARQUET_BATCH_ROWS", 50_000)  # 4 items for dlt
    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: shop, version: 1.0.0}
        sources:
          - name: big
            source_type: filesystem
            destination_table: bronze.big
            source_config: {bucket_url: landing, file_glob: "*.parquet", format: parquet}
        """)
    assert project.run("big").success
    table = project.catalog().load_table(("bronze", "big"))
    assert len(_added_paths(table)) > 1
    ids = table.scan().to_arrow()["id"].to_pylist()
    assert sorted(ids) == list(range(200_000))
