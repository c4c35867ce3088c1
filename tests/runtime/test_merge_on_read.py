"""Merge-on-read tables (``write.merge.mode: merge-on-read``, set on every table floe creates for a
merge source): a merge writes a position-delete file per touched data file instead of rewriting
it; every reader sees the merged rows, the row count stays right, ``floe changes`` reports the
change (with or without the merge's removed-rows file), and replace, a mostly-deleted file and
``floe maintain``'s compaction leave no delete file behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from floe.runtime.iceberg.commit import TableLoad, commit_table_load
from floe.runtime.iceberg.diff import diff
from floe.runtime.iceberg.loads import total_rows
from floe.runtime.iceberg.position_deletes import merge_on_read
from floe.runtime.maintain import compact

IDENTIFIER = ("bronze", "t")


class Bronze:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog: Catalog = SqlCatalog("t", uri=f"sqlite:///{root}/c.db",
                                           warehouse=(root / "w").as_uri())
        self.loads = 0

    def load(self, rows: dict[str, list[Any]], mode: str = "merge") -> Table:
        """A load; the first one creates the table as a merge source's first load does."""
        self.loads += 1
        path = self.root / f"load{self.loads}.parquet"
        pq.write_table(pa.table({"id": pa.array(rows["id"], pa.int64()), "v": rows["v"],
                                 "gone": pa.array(rows.get("gone", [False] * len(rows["id"])),
                                                  pa.bool_())}), path)
        commit_table_load(self.catalog, TableLoad(
            identifier=IDENTIFIER, files=[str(path)], write_mode=mode,  # type: ignore[arg-type]
            merge_strategy="upsert", primary_key=("id",), schema_contract="evolve", state=None,
            load_id=f"load{self.loads}", delete_column="gone"))
        return self.table()

    def table(self) -> Table:
        return self.catalog.load_table(IDENTIFIER)

    def rows(self) -> dict[int, str]:
        found = self.table().scan(selected_fields=("id", "v")).to_arrow().to_pylist()
        assert len(found) == len({r["id"] for r in found}), "a key is there twice"
        return {r["id"]: r["v"] for r in found}

    def delete_files(self) -> list[set[str]]:
        return [{f.file_path for f in task.delete_files}
                for task in self.table().scan().plan_files()]


def _summary(table: Table) -> dict[str, str]:
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    return dict(snapshot.summary.additional_properties)


def test_a_merge_writes_position_deletes_and_readers_apply_them(tmp_path: Path) -> None:
    bronze = Bronze(tmp_path)
    bronze.load({"id": list(range(100)), "v": [f"v{i}" for i in range(100)]}, mode="merge")
    assert merge_on_read(bronze.table().metadata)
    table = bronze.load({"id": [1, 2, 3, 4, 5, 10, 11, 12, 200, 201],
                         "v": ["u1", "u2", "u3", "u4", "u5", "x", "x", "x", "n200", "n201"],
                         "gone": [False] * 5 + [True] * 3 + [False] * 2})
    summary = _summary(table)
    assert summary.get("deleted-data-files") is None, "the 100-row file was rewritten"
    assert summary["added-position-delete-files"] == "1"
    assert summary["total-position-deletes"] == "8"
    assert summary["floe.removed-rows"] == "8"
    expected = {i: f"v{i}" for i in range(100) if i not in (10, 11, 12)}
    expected.update({1: "u1", 2: "u2", 3: "u3", 4: "u4", 5: "u5", 200: "n200", 201: "n201"})
    assert bronze.rows() == expected
    assert total_rows(table.current_snapshot()) == len(expected) == table.scan().count()

    # key 1 again: its old version is already deleted; only the live one matches.  The first
    # data file keeps ONE delete file, holding the old positions and the new one.
    table = bronze.load({"id": [1, 50], "v": ["again", "u50"]})
    summary = _summary(table)
    assert summary["floe.removed-rows"] == "2"
    assert summary["total-position-deletes"] == "10"
    expected.update({1: "again", 50: "u50"})
    assert bronze.rows() == expected
    assert total_rows(table.current_snapshot()) == len(expected)
    assert all(len(files) <= 1 for files in bronze.delete_files())
    assert sorted(len(files) for files in bronze.delete_files()) == [0, 1, 1]


def test_changes_read_the_merges_of_a_merge_on_read_table(tmp_path: Path) -> None:
    bronze = Bronze(tmp_path)
    first = bronze.load({"id": [1, 2, 3, 4], "v": ["a", "b", "c", "d"]}, mode="merge")
    since = first.current_snapshot().snapshot_id  # type: ignore[union-attr]
    bronze.load({"id": [2, 9], "v": ["b2", "i"]})
    bronze.load({"id": [2, 3], "v": ["b3", "x"], "gone": [False, True]})
    changed = diff(bronze.table(), since, None).select(["id", "v", "_change_type"]).to_pylist()
    assert sorted((r["id"], r["v"], r["_change_type"]) for r in changed) == [
        (2, "b", "delete"), (2, "b3", "insert"), (3, "c", "delete"), (9, "i", "insert")]


def test_a_mostly_deleted_file_is_rewritten_and_an_emptied_one_dropped(tmp_path: Path) -> None:
    bronze = Bronze(tmp_path)
    bronze.load({"id": [1, 2, 3, 4], "v": ["a", "b", "c", "d"]}, mode="merge")
    bronze.load({"id": [1], "v": ["a2"]})  # 1 of 4: a delete file
    assert sorted(len(f) for f in bronze.delete_files()) == [0, 1]
    table = bronze.load({"id": [2, 7], "v": ["b2", "g"]})  # 2 of 4 dead: rewritten
    summary = _summary(table)
    assert summary["deleted-data-files"] == "1"
    assert summary["removed-position-delete-files"] == "1"
    assert summary["total-position-deletes"] == "0"
    assert bronze.delete_files() == [set(), set(), set()]  # kept 3 and 4, a2, the load
    assert bronze.rows() == {1: "a2", 2: "b2", 3: "c", 4: "d", 7: "g"}
    table = bronze.load({"id": [2], "v": ["x"], "gone": [True]})  # the last row of a file
    assert bronze.rows() == {1: "a2", 3: "c", 4: "d", 7: "g"}
    assert total_rows(table.current_snapshot()) == 4


def test_replace_and_compaction_leave_no_delete_file(tmp_path: Path) -> None:
    bronze = Bronze(tmp_path)
    for start in range(0, 50, 10):  # five small files, each given a delete file below
        bronze.load({"id": list(range(start, start + 10)), "v": ["v"] * 10})
    bronze.load({"id": [0, 10, 20, 30, 40], "v": ["new"] * 5})
    before = bronze.rows()
    assert sum(len(f) for f in bronze.delete_files()) == 5
    table = bronze.table()
    assert compact(table) == 6
    table = bronze.table()
    assert bronze.delete_files() == [set()]
    assert bronze.rows() == before
    assert total_rows(table.current_snapshot()) == 50
    assert _summary(table)["total-position-deletes"] == "0"

    bronze.load({"id": [5], "v": ["only"]})
    assert sum(len(f) for f in bronze.delete_files()) == 1
    table = bronze.load({"id": [1, 2], "v": ["r1", "r2"]}, mode="replace")
    assert bronze.rows() == {1: "r1", 2: "r2"}
    assert bronze.delete_files() == [set()]
    assert total_rows(table.current_snapshot()) == 2
    assert _summary(table)["total-position-deletes"] == "0"


def test_a_table_set_to_copy_on_write_rewrites(tmp_path: Path) -> None:
    bronze = Bronze(tmp_path)
    table = bronze.load({"id": list(range(10)), "v": ["v"] * 10})
    with table.transaction() as tx:
        tx.set_properties({"write.merge.mode": "copy-on-write"})
    table = bronze.load({"id": [3], "v": ["x"]})
    assert not merge_on_read(table.metadata)
    assert _summary(table)["deleted-data-files"] == "1"
    assert bronze.delete_files() == [set(), set()]
    assert bronze.rows()[3] == "x"


def test_an_append_or_replace_table_stays_copy_on_write(tmp_path: Path) -> None:
    bronze = Bronze(tmp_path)
    assert not merge_on_read(bronze.load({"id": [1], "v": ["a"]}, mode="append").metadata)


def test_changes_without_the_removed_rows_files_read_the_position_deletes(
        tmp_path: Path) -> None:
    """As for a table another engine merged into by position: the deletes are read from the
    delete files, and a file rewritten while it had deletes removes only its live rows."""
    bronze = Bronze(tmp_path)
    first = bronze.load({"id": list(range(10)), "v": [f"v{i}" for i in range(10)]})
    since = first.current_snapshot().snapshot_id  # type: ignore[union-attr]
    bronze.load({"id": [1, 2], "v": ["a", "b"]})  # position deletes
    bronze.load({"id": [3, 4, 5], "v": ["c", "d", "e"], "gone": [False, False, True]})
    bronze.load({"id": [1], "v": ["a2"]})  # 1 of the second load's 2 rows: rewritten
    bronze.load({"id": [7], "v": ["g"]})  # 1 of the rewritten first file's 5: by position
    table = bronze.table()
    def changed() -> list[tuple[int, str, str]]:
        rows = diff(table, since, None).select(["id", "v", "_change_type"]).to_pylist()
        return sorted((r["id"], r["v"], r["_change_type"]) for r in rows)

    expected = [(1, "a2", "insert"), (1, "v1", "delete"), (2, "b", "insert"),
                (2, "v2", "delete"), (3, "c", "insert"), (3, "v3", "delete"),
                (4, "d", "insert"), (4, "v4", "delete"), (5, "v5", "delete"),
                (7, "g", "insert"), (7, "v7", "delete")]
    assert changed() == expected
    assert _summary(table)["added-position-delete-files"] == "1"
    rewrites = [s for s in table.snapshots() if (s.summary or {}).get("deleted-data-files")]
    assert rewrites, "the third load should have rewritten the first file (5 of 10 dead)"
    for snapshot in table.snapshots():
        path = (snapshot.summary or {}).get("floe.removed-rows-file")
        if path:
            Path(path.removeprefix("file://")).unlink()
    assert changed() == expected
