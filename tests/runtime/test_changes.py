"""floe changes: rows that differ between two snapshots, across append, merge, replace, deletes
and schema changes; consumers read each change once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import floe
from floe.errors import FloeError
from tests.runtime.harness import Project

PROJECT = """\
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


def _project(root: Path, mode: str, extra: str = "") -> Project:
    project = Project(root)
    project.write(PROJECT.format(mode=mode, extra=extra))
    project.compile()
    return project


def _drop(root: Path, name: str, rows: list[dict[str, Any]]) -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.jsonl") if name.startswith("replace") else ():
        old.unlink()
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _current(project: Project) -> int:
    snapshot = project.catalog().load_table(("bronze", "orders")).current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


def _changes(project: Project, **kwargs: Any) -> list[tuple[Any, ...]]:
    found = floe.changes("bronze.orders", artifacts=project.root / "target" /
                         "compiled_artifacts.json", **kwargs)
    columns = [c for c in found.column_names if not c.startswith("_change_snapshot")
               and c != "_change_committed_at"]
    rows = [tuple(r[c] for c in columns) for r in found.select(columns).to_pylist()]
    return sorted(rows, key=lambda row: ["" if v is None else str(v) for v in row])


def test_append(tmp_path: Path) -> None:
    project = _project(tmp_path, "append")
    _drop(tmp_path, "a.jsonl", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    assert project.run("orders").success
    first = _current(project)
    _drop(tmp_path, "b.jsonl", [{"id": 3, "v": "c"}])
    assert project.run("orders").success
    assert _changes(project, since=first) == [(3, "c", "insert")]
    assert _changes(project) == [(1, "a", "insert"), (2, "b", "insert"), (3, "c", "insert")]
    assert _changes(project, since=first, until=first) == []
    assert _changes(project, until="2000-01-01T00:00:00Z") == []  # before the first snapshot


def test_merge_update_insert_delete_and_unchanged_rows_not_reported(tmp_path: Path) -> None:
    project = _project(tmp_path, "merge", "primary_key: id\n    delete_column: gone")
    _drop(tmp_path, "a.jsonl", [{"id": i, "v": f"v{i}", "gone": False} for i in (1, 2, 3)])
    assert project.run("orders").success
    first = _current(project)
    _drop(tmp_path, "b.jsonl", [{"id": 2, "v": "v2-new", "gone": False},
                                {"id": 4, "v": "v4", "gone": False},
                                {"id": 1, "v": "v1", "gone": True}])
    assert project.run("orders").success
    assert _changes(project, since=first) == [
        (1, "v1", False, "delete"), (2, "v2", False, "delete"),
        (2, "v2-new", False, "insert"), (4, "v4", False, "insert")]  # 3 was rewritten: silent


def test_replace_reports_only_what_differs(tmp_path: Path) -> None:
    project = _project(tmp_path, "replace")
    _drop(tmp_path, "replace1.jsonl", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    assert project.run("orders").success
    first = _current(project)
    _drop(tmp_path, "replace2.jsonl", [{"id": 1, "v": "a"}, {"id": 3, "v": "c"}])
    assert project.run("orders").success
    assert _changes(project, since=first) == [(2, "b", "delete"), (3, "c", "insert")]


def test_schema_change_gives_older_rows_nulls(tmp_path: Path) -> None:
    project = _project(tmp_path, "merge", "primary_key: id")
    _drop(tmp_path, "a.jsonl", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    assert project.run("orders").success
    first = _current(project)
    _drop(tmp_path, "b.jsonl", [{"id": 2, "v": "b", "email": "b@x"}])
    assert project.run("orders").success
    assert _changes(project, since=first) == [(2, "b", None, "delete"),
                                              (2, "b", "b@x", "insert")]


def test_a_consumer_reads_each_change_once(tmp_path: Path) -> None:
    project = _project(tmp_path, "append")
    _drop(tmp_path, "a.jsonl", [{"id": 1}])
    assert project.run("orders").success
    assert _changes(project, consumer="silver") == [(1, "insert")]  # a new one: everything
    assert _changes(project, consumer="silver") == []
    _drop(tmp_path, "b.jsonl", [{"id": 2}])
    assert project.run("orders").success
    _drop(tmp_path, "c.jsonl", [{"id": 3}])
    assert project.run("orders").success
    assert _changes(project, consumer="silver") == [(2, "insert"), (3, "insert")]
    assert _changes(project, consumer="silver") == []
    assert _changes(project, consumer="gold") == [(1, "insert"), (2, "insert"), (3, "insert")]


def test_expired_snapshots_are_named(tmp_path: Path) -> None:
    project = _project(tmp_path, "append")
    _drop(tmp_path, "a.jsonl", [{"id": 1}])
    assert project.run("orders").success
    with pytest.raises(FloeError, match="snapshot 42 is not in the table"):
        _changes(project, since=42)
    first = _current(project)
    for name in ("b", "c"):
        _drop(tmp_path, f"{name}.jsonl", [{"id": ord(name)}])
        assert project.run("orders").success
    table = project.catalog().load_table(("bronze", "orders"))
    table.maintenance.expire_snapshots().by_id(first).commit()
    with pytest.raises(FloeError, match=f"snapshot {first} is not in the table"):
        _changes(project, since=first)


def test_the_cli_writes_jsonl_and_parquet(tmp_path: Path) -> None:
    project = _project(tmp_path, "append")
    _drop(tmp_path, "a.jsonl", [{"id": 1, "v": "a"}])
    assert project.run("orders").success
    floe_bin = str(Path(sys.executable).parent / "floe")
    done = subprocess.run([floe_bin, "changes", "bronze.orders", "--format", "jsonl"],
                          cwd=tmp_path, capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (row["id"], row["v"], row["_change_type"]) == (1, "a", "insert")
    assert row["_change_committed_at"].endswith("+00:00")
    done = subprocess.run([floe_bin, "changes", "bronze.orders", "--since", "yesterday"],
                          cwd=tmp_path, capture_output=True, text=True, env=os.environ)
    assert done.returncode == 1
    assert "--since 'yesterday' is neither a snapshot id nor an ISO time" in done.stderr


def test_on_a_rest_catalog(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same diff on an Iceberg REST catalog + S3 (SeaweedFS), CDC-shaped: a merge with an
    update and a delete."""
    from floe.runtime.changes import table_changes

    project = Project(tmp_path, rest=request.getfixturevalue("rest_catalog"))
    project.write(PROJECT.format(mode="merge", extra="primary_key: id\n    delete_column: gone"))
    project.drop_all_tables()
    _drop(tmp_path, "a.jsonl", [{"id": i, "v": f"v{i}", "gone": False} for i in (1, 2)])
    assert project.run("orders").success
    first = project.catalog().load_table(("bronze", "orders")).current_snapshot()
    assert first is not None
    _drop(tmp_path, "b.jsonl", [{"id": 1, "v": "v1b", "gone": False},
                                {"id": 2, "v": "v2", "gone": True}])
    assert project.run("orders").success
    found = table_changes(project.catalog().load_table(("bronze", "orders")),
                          since=first.snapshot_id)
    assert sorted((r["id"], r["v"], r["_change_type"]) for r in found.to_pylist()) == [
        (1, "v1", "delete"), (1, "v1b", "insert"), (2, "v2", "delete")]


def test_a_merge_is_read_from_its_removed_rows_not_from_the_files_it_rewrote(
        tmp_path: Path) -> None:
    """A merge touching keys in every file: the diff reads the load's new file and the merge's
    removed-rows file only; with that file gone it falls back to diffing files, same rows;
    a rename after the merge reads the removed rows under the new name (field ids)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    from floe.runtime.iceberg.commit import TableLoad, commit_table_load
    from floe.runtime.iceberg.diff import _file_changes, diff, snapshots_between
    from floe.runtime.iceberg.removed_rows import REMOVED_ROWS_PROPERTY

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("bronze")

    def merge(name: str, rows: dict[str, list[Any]]) -> None:
        pq.write_table(pa.table(rows), tmp_path / f"{name}.parquet")
        commit_table_load(catalog, TableLoad(
            identifier=("bronze", "t"), files=[str(tmp_path / f"{name}.parquet")],
            write_mode="merge", merge_strategy="upsert", primary_key=("id",),
            schema_contract="evolve", state=None, load_id=name))

    for part in range(3):  # three files, ids 0-29
        merge(f"p{part}", {"id": list(range(part * 10, part * 10 + 10)),
                           "v": [f"v{i}" for i in range(part * 10, part * 10 + 10)]})
    table = catalog.load_table(("bronze", "t"))
    before = table.current_snapshot()
    assert before is not None
    merge("change", {"id": [5, 15, 25, 99], "v": ["v5", "new15", "new25", "v99"]})
    table = catalog.load_table(("bronze", "t"))
    after = table.current_snapshot()
    assert after is not None and after.summary is not None
    assert after.summary["floe.removed-rows"] == "3"
    read = _file_changes(table, snapshots_between(table, before.snapshot_id, after.snapshot_id))
    assert sorted((c.side, c.file.record_count) for c in read) == [(-1, 3), (1, 4)]
    expected = [(15, "new15", "insert"), (15, "v15", "delete"), (25, "new25", "insert"),
                (25, "v25", "delete"), (99, "v99", "insert")]  # 5 was sent unchanged: silent

    def rows(found: pa.Table, column: str = "v") -> list[tuple[Any, ...]]:
        return sorted((r["id"], r[column], r["_change_type"]) for r in found.to_pylist())

    assert rows(diff(table, before.snapshot_id, None)) == expected
    with table.update_schema() as update:
        update.rename_column("v", "value")
    table = catalog.load_table(("bronze", "t"))
    assert rows(diff(table, before.snapshot_id, after.snapshot_id), "value") == expected
    table.io.delete(after.summary[REMOVED_ROWS_PROPERTY])
    assert rows(diff(table, before.snapshot_id, after.snapshot_id), "value") == expected
