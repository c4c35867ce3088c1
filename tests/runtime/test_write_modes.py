"""append, replace and merge (upsert, delete-insert), read back with pyiceberg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from tests.runtime.harness import Project

FILES_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    write_mode: {mode}
    {extra}
    source_config: {{bucket_url: landing, file_glob: "*.jsonl", format: jsonl}}
"""


def drop(project: Path, name: str, rows: list[dict[str, object]]) -> None:
    folder = project / "landing"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def operations_since(table: Table, before: Snapshot | None) -> list[str]:
    """The operations of the snapshots added after ``before``, oldest first."""
    added = []
    snapshot = table.current_snapshot()
    while snapshot is not None and (before is None or snapshot.snapshot_id != before.snapshot_id):
        added.append(snapshot.summary.operation.value if snapshot.summary else "?")
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return added[::-1]


def clear(project: Path) -> None:
    for path in (project / "landing").glob("*.jsonl"):
        path.unlink()


@pytest.fixture(params=["embedded", "rest", "glue"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """Every write-mode test runs on the embedded SQL catalog, on an Iceberg REST catalog + S3
    (SeaweedFS) and on an AWS Glue catalog + S3 API (moto's server)."""
    if request.param == "embedded":
        return Project(tmp_path)
    project = Project(tmp_path, rest=request.getfixturevalue(f"{request.param}_catalog"))
    project.write(FILES_PROJECT.format(mode="append", extra=""))
    project.drop_all_tables()
    return project


def test_append_reads_each_landed_file_once(project: Project) -> None:
    project.write(FILES_PROJECT.format(mode="append", extra=""))
    drop(project.root, "a.jsonl", [{"id": 1, "amount": 1.5}, {"id": 2, "amount": 2.5}])
    first = project.run("orders")
    assert first.success, first.errors
    assert first.rows_loaded == 2
    assert first.bytes_written > 0
    again = project.run("orders")
    assert again.success and again.rows_loaded == 0, "a.jsonl was already loaded"
    drop(project.root, "b.jsonl", [{"id": 3, "amount": 3.5}])
    third = project.run("orders")
    assert third.rows_loaded == 1
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 2, 3]
    refreshed = project.run("orders", full_refresh=True)
    assert refreshed.rows_loaded == 3, "--full-refresh reads every file again"
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 2, 3]


def test_replace_is_one_commit_with_only_the_new_rows(project: Project) -> None:
    project.write(FILES_PROJECT.format(mode="replace", extra=""))
    drop(project.root, "a.jsonl", [{"id": 1, "amount": 1.0}, {"id": 2, "amount": 2.0}])
    assert project.run("orders").success
    clear(project.root)
    drop(project.root, "b.jsonl", [{"id": 3, "amount": 3.0}])
    catalog = project.catalog()
    before_table = catalog.load_table(("bronze", "orders"))
    before, before_snapshot = before_table.metadata.metadata_log, before_table.current_snapshot()
    result = project.run("orders")
    assert result.success, result.errors
    assert [r["id"] for r in project.read("bronze.orders")] == [3]
    table = catalog.load_table(("bronze", "orders"))
    assert len(table.metadata.metadata_log) == len(before) + 1, "one catalog commit"
    assert operations_since(table, before_snapshot) == ["overwrite"], "one snapshot"


def test_merge_upsert_updates_and_inserts(project: Project) -> None:
    project.write(FILES_PROJECT.format(mode="merge", extra="primary_key: id"))
    drop(project.root, "a.jsonl", [{"id": 1, "status": "new"}, {"id": 2, "status": "new"}])
    assert project.run("orders").success
    clear(project.root)
    drop(project.root, "b.jsonl", [{"id": 2, "status": "shipped"}, {"id": 3, "status": "new"},
                                   {"id": 3, "status": "paid"}])
    before = project.catalog().load_table(("bronze", "orders")).current_snapshot()
    result = project.run("orders")
    assert result.success, result.errors
    rows = project.read("bronze.orders")
    assert [(r["id"], r["status"]) for r in rows] == [(1, "new"), (2, "shipped"), (3, "paid")]
    table = project.catalog().load_table(("bronze", "orders"))
    assert operations_since(table, before) == ["overwrite"], "a merge is one snapshot"
    assert before is not None
    previous = table.scan(snapshot_id=before.snapshot_id).to_arrow().sort_by("id")
    assert previous.column("status").to_pylist() == ["new", "new"], "time travel still works"


def test_merge_of_the_same_rows_again_keeps_one_copy(project: Project) -> None:
    """Every row of the existing file matches: the file is dropped, not rewritten empty."""
    project.write(FILES_PROJECT.format(mode="merge", extra="primary_key: id"))
    drop(project.root, "a.jsonl", [{"id": 1, "status": "new"}, {"id": 2, "status": "new"}])
    assert project.run("orders").success
    result = project.run("orders")
    assert result.success, result.errors
    assert [(r["id"], r["status"]) for r in project.read("bronze.orders")] == [
        (1, "new"), (2, "new")]


def test_merge_delete_insert(project: Project) -> None:
    project.write(FILES_PROJECT.format(
        mode="merge", extra="primary_key: [id, line]\n    merge_strategy: delete-insert"))
    drop(project.root, "a.jsonl", [{"id": 1, "line": 1, "qty": 1}, {"id": 1, "line": 2, "qty": 1},
                                   {"id": 2, "line": 1, "qty": 5}])
    assert project.run("orders").success
    clear(project.root)
    drop(project.root, "b.jsonl", [{"id": 1, "line": 2, "qty": 9}])
    assert project.run("orders").success
    rows = sorted((r["id"], r["line"], r["qty"]) for r in project.read("bronze.orders"))
    assert rows == [(1, 1, 1), (1, 2, 9), (2, 1, 5)]


def test_empty_source_is_success_with_zero_rows(project: Project) -> None:
    project.write(FILES_PROJECT.format(mode="append", extra=""))
    (project.root / "landing").mkdir()
    result = project.run("orders")
    assert result.success, result.errors
    assert (result.rows_loaded, result.tables) == (0, ())
