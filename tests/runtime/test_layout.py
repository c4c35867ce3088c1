"""partition_by and sort_by: applied when the table is created, evolved when changed, data
files written partitioned and sorted."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyiceberg.io.pyarrow import PyArrowFileIO

from tests.compiler.helpers import errors_of
from tests.runtime.harness import Project

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: events
    source_type: filesystem
    destination_table: bronze.events
    write_mode: merge
    primary_key: id
    partition_by: {partition}
    sort_by: [id desc]
    source_config: {{bucket_url: landing, file_glob: "*.jsonl", format: jsonl}}
"""


def _drop(root: Path, name: str, ids: range | list[int], region: str) -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    rows = [{"id": i, "region": region, "updated_at": f"2024-01-0{1 + i % 3}T10:00:00Z"}
            for i in ids]
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_partitioned_sorted_and_evolved(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(PROJECT.format(partition="[day(updated_at), bucket(4, id)]"))
    _drop(tmp_path, "a.jsonl", range(40), "eu")
    first = project.run("events")
    assert first.success, first.errors
    table = project.catalog().load_table(("bronze", "events"))
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("updated_at_day", "day"), ("id_bucket4", "bucket[4]")]
    assert [(table.schema().find_column_name(f.source_id), f.direction.name)
            for f in table.sort_order().fields] == [("id", "DESC")]
    files = list(table.scan().plan_files())
    assert len(files) == 12  # 3 days x 4 buckets
    for task in files:
        days = {task.file.partition[0]}
        rows = pq.read_table(PyArrowFileIO().new_input(task.file.file_path).open())
        ids = rows["id"].to_pylist()
        assert ids == sorted(ids, reverse=True)  # written in the sort order
        assert len(days) == 1 and len({r % 3 for r in ids}) == 1  # one day per file
    # floe.yaml changes its partitioning: a new spec; old files keep theirs; a merge still works
    project.write(PROJECT.format(partition="[identity(region)]"))
    _drop(tmp_path, "b.jsonl", range(35, 45), "us")
    assert project.run("events").success
    table = project.catalog().load_table(("bronze", "events"))
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("region", "identity")]
    assert len(table.specs()) == 3  # unpartitioned at creation, then the two layouts
    from rich.console import Console

    from floe.runtime.console import print_table_details

    console = Console(record=True, width=200)
    project.compile()
    print_table_details(console, tmp_path / "target" / "compiled_artifacts.json",
                        "bronze.events", 1)
    assert "partitioned by: identity(region); sorted by: id desc" in console.export_text()
    rows = project.read("bronze.events")
    assert [r["id"] for r in rows] == list(range(45))
    assert {r["region"] for r in rows if r["id"] >= 35} == {"us"}


def test_a_bad_transform_is_located(tmp_path: Path) -> None:
    text = PROJECT.format(partition="[week(updated_at)]").replace("{{", "{").replace("}}", "}")
    assert errors_of(tmp_path, text) == [
        "10:20: sources[0].partition_by[0]: 'week(updated_at)' is not a partition transform"]


@pytest.mark.parametrize("mode", ["merge-on-read", "copy-on-write"])
def test_a_merge_into_one_partition_touches_only_that_partitions_files(
        tmp_path: Path, mode: str) -> None:
    project = Project(tmp_path)
    project.write(PROJECT.format(partition="[identity(region)]"))
    _drop(tmp_path, "a.jsonl", range(30), "eu")
    _drop(tmp_path, "b.jsonl", range(30, 60), "us")
    assert project.run("events").success
    table = project.catalog().load_table(("bronze", "events"))
    assert table.metadata.properties["write.merge.mode"] == "merge-on-read"  # floe's default
    with table.transaction() as tx:
        tx.set_properties({"write.merge.mode": mode})
    before = {task.file.partition[0]: task.file.file_path for task in table.scan().plan_files()}
    assert set(before) == {"eu", "us"}
    _drop(tmp_path, "c.jsonl", [31, 35], "us")  # two updates, both in us
    assert project.run("events").success
    table = project.catalog().load_table(("bronze", "events"))
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary["floe.removed-rows"] == "2"
    tasks = list(table.scan().plan_files())
    after = {task.file.file_path for task in tasks}
    if mode == "copy-on-write":
        assert snapshot.summary["deleted-data-files"] == "1"  # us's file, nothing of eu
        assert before["eu"] in after and before["us"] not in after
    else:  # us's file gets a delete file in its partition; eu's is untouched
        assert snapshot.summary["deleted-data-files"] is None
        assert snapshot.summary["added-position-delete-files"] == "1"
        assert before["eu"] in after and before["us"] in after
        [deletes] = [t.delete_files for t in tasks if t.file.file_path == before["us"]]
        assert [d.partition[0] for d in deletes] == ["us"]
    from rich.console import Console

    from floe.runtime.console import print_table_details

    console = Console(record=True, width=200)
    print_table_details(console, tmp_path / "target" / "compiled_artifacts.json",
                        "bronze.events", 1)
    deleted = "1 (2 rows" if mode == "merge-on-read" else "0 (0 rows"
    assert f"merges: {mode}; position-delete files: {deleted};" in console.export_text()
    assert len(project.read("bronze.events")) == 60
