"""Runs that collide: writer fencing, sources sharing a table, parent/child commits, and many
processes loading one source at once (every row exactly once)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from floe.runtime.iceberg import commit as commit_module
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.iceberg.state import read_committed_state
from floe.runtime.ingestion import runner
from tests.runtime.harness import Project
from tests.runtime.test_rest_api import CHILD_PROJECT, serve_orders_with_items

SQLITE_APPEND = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: events
    source_type: sql_database
    destination_table: bronze
    cursor_field: id
    source_config:
      credentials: sqlite:///events.db
      tables: [events]
"""


def _events(root: Path, ids: range) -> None:
    with sqlite3.connect(root / "events.db", timeout=30) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT)")
        db.executemany("INSERT INTO events VALUES (?, ?)", [(i, f"k{i % 3}") for i in ids])


def test_a_run_that_lost_the_race_is_abandoned_not_reapplied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run B restores the cursor, then run A commits first: B must write nothing."""
    project = Project(tmp_path)
    project.write(SQLITE_APPEND)
    _events(tmp_path, range(1, 4))
    assert project.run("events").rows_loaded == 3
    _events(tmp_path, range(4, 6))
    real = commit_module.commit_table_load
    raced: list[Any] = []

    def other_run_commits_first(catalog: Any, load: Any, attempts: int = 5) -> Any:
        if not raced:  # run A, started later, commits while B is about to
            raced.append(True)
            monkeypatch.setattr(runner, "commit_table_load", real)
            other = project.run("events")
            assert other.success and other.rows_loaded == 2
        return real(catalog, load, attempts)

    monkeypatch.setattr(runner, "commit_table_load", other_run_commits_first)
    snapshots = project.snapshots("bronze.events")
    loser = project.run("events")
    assert not loser.success
    assert loser.error_category == "PERMANENT"
    assert "another run of this source committed to bronze.events first" in loser.errors[0]
    assert "nothing was written" in loser.errors[0]
    assert project.snapshots("bronze.events") == snapshots + 1  # A's commit only
    assert [r["id"] for r in project.read("bronze.events")] == [1, 2, 3, 4, 5]


FILES_TWO_SOURCES = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: eu
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing/eu, file_glob: "*.jsonl", format: jsonl}
  - name: us
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing/us, file_glob: "*.jsonl", format: jsonl}
"""


def _drop(root: Path, name: str, row: dict[str, Any]) -> None:
    path = root / "landing" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row) + "\n")


def test_two_sources_sharing_a_table_keep_their_own_cursors(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(FILES_TWO_SOURCES)
    _drop(tmp_path, "eu/a.jsonl", {"id": 1, "region": "eu"})
    _drop(tmp_path, "us/a.jsonl", {"id": 2, "region": "us"})
    for _ in range(3):
        assert project.run("eu").success
        assert project.run("us").success
    assert [(r["id"], r["region"]) for r in project.read("bronze.orders")] == [
        (1, "eu"), (2, "us")]
    table = project.catalog().load_table(("bronze", "orders"))
    assert read_committed_state(table, "shop__eu") is not None
    assert read_committed_state(table, "shop__us") is not None
    _drop(tmp_path, "us/b.jsonl", {"id": 3, "region": "us"})
    assert project.run("us").rows_loaded == 1
    assert project.run("eu").rows_loaded == 0
    # a full refresh of one source empties the table of everyone's rows: the other source's
    # cursor goes with them, so its next run loads its files again instead of losing them
    assert project.run("eu", full_refresh=True).rows_loaded == 1
    assert project.run("us").rows_loaded == 2
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 2, 3]


def test_a_failed_parent_commit_takes_back_its_children(
        tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Children commit first; if the parent (which holds the cursor) then fails, the
    children's commit is rolled back, so the next run fetches them again exactly once."""
    serve_orders_with_items(httpserver)
    project = Project(tmp_path)
    project.write(CHILD_PROJECT.format(url=httpserver.url_for("/").rstrip("/")))
    real = commit_module.commit_table_load
    order: list[str] = []

    def parent_fails(catalog: Any, load: Any, attempts: int = 5) -> Any:
        order.append(load.identifier[1])
        if load.identifier[1] == "orders":
            raise OSError("catalog went away during the parent's commit")
        return real(catalog, load, attempts)

    monkeypatch.setattr(runner, "commit_table_load", parent_fails)
    failed = project.run("shop_api")
    assert not failed.success
    assert order == ["order_items", "orders"]
    assert failed.error_category != "PARTIAL"  # the children were taken back
    assert ("bronze", "order_items") not in project.catalog().list_tables("bronze")
    monkeypatch.setattr(runner, "commit_table_load", real)
    assert project.run("shop_api").success
    items = project.read("bronze.order_items", sort_by="sku")
    assert [(i["sku"], i["_orders_id"]) for i in items] == [("CAP", 7), ("MUG", 7), ("TEE", 9)]
    assert [o["id"] for o in project.read("bronze.orders")] == [7, 9]


RUNNER = """\
import sys, time
from pathlib import Path
from floe.artifacts import load_artifacts
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.ingestion.runner import run_source

root = Path(sys.argv[1])
artifacts = load_artifacts(root / "target" / "compiled_artifacts.json")
catalog = open_catalog(artifacts.environment, root)
while not (root / "go").exists():
    time.sleep(0.01)
for _ in range(int(sys.argv[2])):
    result = run_source(artifacts.source("events"), catalog, root)
    print(result.status, result.rows_loaded, (result.errors or ("",))[0][:90], flush=True)
"""


@pytest.mark.parametrize("catalog", ["embedded", "rest"])
def test_parallel_processes_load_every_row_exactly_once(
        tmp_path: Path, request: pytest.FixtureRequest, catalog: str) -> None:
    """3 processes x 4 runs of one append source while rows keep arriving: a schedule, a
    sensor and a manual run overlapping.  Bronze ends with each source row exactly once."""
    rest = request.getfixturevalue("rest_catalog") if catalog == "rest" else None
    project = Project(tmp_path, rest=rest)
    project.write(SQLITE_APPEND)
    if rest is not None:
        project.drop_all_tables()
    _events(tmp_path, range(1, 101))
    project.compile()
    (tmp_path / "runner.py").write_text(textwrap.dedent(RUNNER))
    env = {**os.environ, **(rest.secrets if rest else {})}
    processes = [subprocess.Popen([sys.executable, str(tmp_path / "runner.py"), str(tmp_path),
                                   "4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env) for _ in range(3)]
    time.sleep(3)  # let them import and wait at the gate
    writer_done = threading.Event()

    def keep_inserting() -> None:
        for start in range(101, 401, 50):
            _events(tmp_path, range(start, start + 50))
            time.sleep(0.2)
        writer_done.set()

    writer = threading.Thread(target=keep_inserting)
    (tmp_path / "go").touch()
    writer.start()
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    writer.join()
    lines = [line for out in outputs for line in out.splitlines()
             if line.startswith(("success ", "failed ", "timeout "))]
    assert len(lines) == 12, outputs
    failures = [line for line in lines if line.startswith("failed")]
    assert all("another run of this source committed" in line for line in failures), failures
    catch_up = project.run("events")
    assert catch_up.success, catch_up.errors
    ids = [r["id"] for r in project.read("bronze.events")]
    assert ids == list(range(1, 401))  # every row, none twice


def test_a_table_written_by_an_older_floe_keeps_its_cursor(tmp_path: Path) -> None:
    """Before per-source records, floe kept one record (``floe.dlt-state``) per snapshot."""
    import pyarrow as pa
    from dlt.common.json import json as dlt_json
    from pyiceberg.catalog.sql import SqlCatalog

    from floe.runtime.iceberg.state import read_source_state

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("bronze")
    table = catalog.create_table(("bronze", "t"), schema=pa.schema([("id", pa.int64())]))
    state = {"section": "s", "state": {"incremental": {"id": {"last_value": 7}}}}
    table.append(pa.table({"id": [7]}), snapshot_properties={
        "floe.load-id": "old-load", "floe.dlt-state": dlt_json.typed_dumps(state)})
    record = read_source_state(catalog.load_table(("bronze", "t")), "any__source")
    assert (record.token, record.state) == ("old-load", state)


def test_runs_opening_a_new_embedded_catalog_at_once_all_open_it(tmp_path: Path) -> None:
    """The first open of an embedded catalog creates its tables; racing openers must not fail
    (CI saw a run die with 'table iceberg_tables already exists')."""
    project = Project(tmp_path)
    project.write(SQLITE_APPEND)
    artifacts = project.compile()
    for attempt in range(5):
        root = tmp_path / f"p{attempt}"
        root.mkdir()
        gate = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_it(root: Path = root, gate: threading.Barrier = gate,
                    errors: list[BaseException] = errors) -> None:
            gate.wait()
            try:
                open_catalog(artifacts.environment, root).list_namespaces()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
