"""floe maintain: small files compacted, old snapshots expired; cursors, fencing and changes
consumers keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import floe
from tests.runtime.harness import Project

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: events
    source_type: filesystem
    destination_table: bronze.events
    source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
"""


def _drop(root: Path, index: int) -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    rows = [{"id": index * 10 + i, "batch": index} for i in range(10)]
    (folder / f"{index:02}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_maintain(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(PROJECT)
    artifacts = project.root / "target" / "compiled_artifacts.json"
    for index in range(6):
        _drop(tmp_path, index)
        assert project.run("events").success
        if index == 2:  # a downstream job has read up to here
            assert len(floe.changes("bronze.events", consumer="silver",
                                    artifacts=artifacts)) == 30
    table = project.catalog().load_table(("bronze", "events"))
    assert sum(1 for _ in table.scan().plan_files()) == 6
    snapshots = len(table.snapshots())
    floe_bin = str(Path(sys.executable).parent / "floe")
    done = subprocess.run([floe_bin, "maintain", "--older-than", "0s", "--retain-last", "1"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 small files compacted" in done.stdout
    table = project.catalog().load_table(("bronze", "events"))
    assert sum(1 for _ in table.scan().plan_files()) == 1
    assert len(table.snapshots()) < snapshots
    assert sorted(r["id"] for r in project.read("bronze.events")) == list(range(60))
    # the cursor survived: nothing is loaded twice, a new file loads once
    assert project.run("events").rows_loaded == 0
    _drop(tmp_path, 6)
    assert project.run("events").rows_loaded == 10
    assert len(project.read("bronze.events")) == 70
    # the consumer's position survived too; compaction itself reports no change
    changed = floe.changes("bronze.events", consumer="silver", artifacts=artifacts)
    assert sorted(changed["id"].to_pylist()) == list(range(30, 70))
    assert set(changed["_change_type"].to_pylist()) == {"insert"}


MERGED = PROJECT.replace("destination_table: bronze.events\n",
                         "destination_table: bronze.events\n    write_mode: merge\n"
                         "    primary_key: id\n")


def test_maintain_removes_the_files_nothing_references(tmp_path: Path) -> None:
    """Merges leave every file they rewrote behind; after expiry, maintain deletes what no live
    snapshot references (and only files older than --older-than), rows unchanged."""
    import datetime as dt

    from floe.runtime.maintain import maintain_source, referenced_files, remove_orphans

    project = Project(tmp_path)
    project.write(MERGED)
    artifacts = project.compile()
    for index in range(4):  # every run updates every row: each rewrites the whole table
        (tmp_path / "landing").mkdir(exist_ok=True)
        (tmp_path / "landing" / f"{index}.jsonl").write_text("".join(
            json.dumps({"id": i, "batch": index}) + "\n" for i in range(10)))
        assert project.run("events").success
    catalog = project.catalog()
    table = catalog.load_table(("bronze", "events"))
    folder = Path(table.location().removeprefix("file://"))

    def on_disk() -> set[str]:
        return {str(p) for p in folder.rglob("*") if p.is_file()}

    crashed = folder / "data" / "crashed-load.parquet"
    crashed.write_bytes(b"left by a run that died before its commit")
    before = on_disk()
    [report] = maintain_source(catalog, artifacts.source("events"), dt.timedelta(0), 1)
    assert "unreferenced files removed" in report.note
    table = catalog.load_table(("bronze", "events"))
    after = on_disk()
    assert after == referenced_files(table)
    assert str(crashed) in before - after and len(after) < len(before) - 3
    assert [(r["id"], r["batch"]) for r in project.read("bronze.events")] == [
        (i, 3) for i in range(10)]

    old, young = folder / "data" / "old.parquet", folder / "data" / "young.parquet"
    for stray in (old, young):
        stray.write_bytes(b"x")
    two_days_ago = (dt.datetime.now() - dt.timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))
    assert remove_orphans(table, dt.timedelta(days=1)) == 1
    assert not old.exists() and young.exists()  # it may belong to a load still writing
    assert project.run("events").success  # and loading goes on


def test_orphans_on_a_rest_catalog_with_s3(tmp_path: Path, request: pytest.FixtureRequest
                                           ) -> None:
    """The same listing and deletes against SeaweedFS's S3, through the catalog's own FileIO."""
    import datetime as dt

    from floe.runtime.maintain import referenced_files, remove_orphans

    project = Project(tmp_path, rest=request.getfixturevalue("rest_catalog"))
    project.write(MERGED)
    project.drop_all_tables()
    for index in range(2):
        (tmp_path / "landing").mkdir(exist_ok=True)
        (tmp_path / "landing" / f"{index}.jsonl").write_text(
            json.dumps({"id": 1, "batch": index}) + "\n")
        assert project.run("events").success
    table = project.catalog().load_table(("bronze", "events"))
    first = min(table.snapshots(), key=lambda s: s.timestamp_ms)
    table.maintenance.expire_snapshots().by_id(first.snapshot_id).commit()
    table = project.catalog().load_table(("bronze", "events"))
    stray = f"{table.location()}/data/crashed-load.parquet"
    with table.io.new_output(stray).create() as out:
        out.write(b"x")
    assert remove_orphans(table, dt.timedelta(0)) >= 2  # the first file and the stray one
    assert not table.io.new_input(stray).exists()
    assert all(table.io.new_input(("s3://" if "://" not in p else "") + p).exists()
               for p in referenced_files(table) if "/data/" in p)
    assert [r["batch"] for r in project.read("bronze.events")] == [1]


def test_merge_on_read_then_maintain_on_a_rest_catalog_with_s3(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A merge's position-delete file on S3: referenced (orphan removal keeps it), applied by
    reads, and gone after maintain compacts its data file, rows unchanged."""
    import datetime as dt

    from floe.runtime.maintain import maintain_source, referenced_files, remove_orphans

    project = Project(tmp_path, rest=request.getfixturevalue("rest_catalog"))
    project.write(MERGED)
    artifacts = project.compile()
    project.drop_all_tables()
    (tmp_path / "landing").mkdir(exist_ok=True)
    (tmp_path / "landing" / "0.jsonl").write_text("".join(
        json.dumps({"id": i, "batch": 0}) + "\n" for i in range(10)))
    assert project.run("events").success
    (tmp_path / "landing" / "1.jsonl").write_text(json.dumps({"id": 3, "batch": 1}) + "\n")
    assert project.run("events").success
    catalog = project.catalog()
    table = catalog.load_table(("bronze", "events"))
    deletes = {d.file_path for task in table.scan().plan_files() for d in task.delete_files}
    assert len(deletes) == 1 and next(iter(deletes)).startswith("s3://")
    assert {p for p in referenced_files(table) if "floe-deletes-" in p} == {
        next(iter(deletes)).removeprefix("s3://")}
    remove_orphans(table, dt.timedelta(0))
    expected = sorted((i, 1 if i == 3 else 0) for i in range(10))
    assert sorted((r["id"], r["batch"]) for r in project.read("bronze.events")) == expected
    [report] = maintain_source(catalog, artifacts.source("events"), dt.timedelta(0), 1)
    assert "compacted" in report.note
    table = catalog.load_table(("bronze", "events"))
    assert [t.delete_files for t in table.scan().plan_files()] == [set()]
    assert sorted((r["id"], r["batch"]) for r in project.read("bronze.events")) == expected
    # the newest load's snapshot holds the cursors, so it stays, and the delete file with it
    assert table.io.new_input(next(iter(deletes))).exists()
    (tmp_path / "landing" / "2.jsonl").write_text(json.dumps({"id": 20, "batch": 2}) + "\n")
    assert project.run("events").success
    maintain_source(catalog, artifacts.source("events"), dt.timedelta(0), 1)
    assert not table.io.new_input(next(iter(deletes))).exists()  # expired, then removed
    assert len(project.read("bronze.events")) == 11


def test_300_loads_then_maintain_keeps_rows_checksum_and_every_cursor(tmp_path: Path) -> None:
    """Two sources append to one table 300 times; maintain leaves one file and the newest
    snapshots; rows, their checksum and both sources' cursors are unchanged, and the next
    fenced load of each source commits on top."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    from floe.runtime.canonical import column_hashes, row_hashes
    from floe.runtime.iceberg.commit import TableLoad, commit_table_load
    from floe.runtime.iceberg.state import read_source_state
    from floe.runtime.maintain import compact, expire, remove_orphans

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("bronze")
    tokens = {"a": None, "b": None}

    def load(index: int, source: str) -> None:
        path = tmp_path / "load.parquet"
        pq.write_table(pa.table({"id": np.arange(index * 10, index * 10 + 10),
                                 "source": [source] * 10}), path)
        commit_table_load(catalog, TableLoad(
            identifier=("bronze", "t"), files=[str(path)], write_mode="append",
            merge_strategy=None, primary_key=(), schema_contract="evolve",
            state={"cursor": index}, load_id=f"{source}{index}", source_key=source,
            expected_token=tokens[source]))
        tokens[source] = f"{source}{index}"

    for index in range(300):
        load(index, "a" if index % 2 else "b")

    def checksum() -> tuple[int, int]:
        rows = catalog.load_table(("bronze", "t")).scan().to_arrow()
        hashed = row_hashes([column_hashes(rows[c]) for c in sorted(rows.column_names)])
        return rows.num_rows, int(hashed.sum(dtype=np.uint64))

    before = checksum()
    table = catalog.load_table(("bronze", "t"))
    assert compact(table) == 300
    expire(catalog.load_table(("bronze", "t")), dt.timedelta(0), 3)
    assert remove_orphans(catalog.load_table(("bronze", "t")), dt.timedelta(0)) > 300
    table = catalog.load_table(("bronze", "t"))
    assert sum(1 for _ in table.scan().plan_files()) == 1
    assert len(table.snapshots()) <= 4
    assert checksum() == before
    assert (read_source_state(table, "a").state, read_source_state(table, "b").state) == (
        {"cursor": 299}, {"cursor": 298})
    load(300, "b")  # fenced on its token: the record survived maintenance
    load(301, "a")
    assert checksum()[0] == 3020
