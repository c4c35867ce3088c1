"""The cursor lives in the Iceberg snapshot: exactly-once across runs, crashes and machines."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from floe.runtime.iceberg import commit as commit_module
from floe.runtime.iceberg.state import read_committed_state
from floe.runtime.ingestion import runner
from tests.runtime.harness import Project

SQLITE_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: shop_db
    source_type: sql_database
    destination_table: bronze
    cursor_field: updated_at
    source_config:
      credentials: sqlite:///shop.db
      tables: [customers]
"""


def _db(root: Path, rows: list[tuple[int, str, str]]) -> None:
    with sqlite3.connect(root / "shop.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT, "
                   "updated_at TEXT)")
        db.executemany("INSERT OR REPLACE INTO customers VALUES (?, ?, ?)", rows)


@pytest.fixture(params=["embedded", "rest"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    rest = request.getfixturevalue("rest_catalog") if request.param == "rest" else None
    project = Project(tmp_path, rest=rest)
    project.write(SQLITE_PROJECT)
    if rest is not None:
        project.drop_all_tables()
    _db(tmp_path, [(1, "a", "2024-01-01"), (2, "b", "2024-01-02")])
    return project


def test_only_new_rows_are_loaded(project: Project) -> None:
    assert project.run("shop_db").rows_loaded == 2
    assert project.run("shop_db").rows_loaded == 0
    _db(project.root, [(3, "c", "2024-01-03")])
    third = project.run("shop_db")
    assert third.rows_loaded == 1
    assert [r["id"] for r in project.read("bronze.customers")] == [1, 2, 3]
    state = read_committed_state(project.catalog().load_table(("bronze", "customers")),
                                  "shop__shop_db")
    assert state is not None
    cursor = state["resources"]["customers"]["incremental"]["updated_at"]
    assert cursor["last_value"] == "2024-01-03"


def test_state_survives_losing_every_local_file_but_the_table(project: Project) -> None:
    assert project.run("shop_db").rows_loaded == 2
    shutil.rmtree(project.root / "target")  # nothing but the catalog + warehouse is kept
    assert project.run("shop_db").rows_loaded == 0


def test_crash_between_extract_and_commit_loses_and_duplicates_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert project.run("shop_db").rows_loaded == 2
    _db(project.root, [(3, "c", "2024-01-03")])

    def crash(*_: object, **__: object) -> None:
        raise OSError("machine lost power before the commit")

    monkeypatch.setattr(runner, "commit_table_load", crash)
    crashed = project.run("shop_db")
    assert not crashed.success
    assert "machine lost power" in crashed.errors[0]
    monkeypatch.setattr(runner, "commit_table_load", commit_module.commit_table_load)
    assert [r["id"] for r in project.read("bronze.customers")] == [1, 2]
    recovered = project.run("shop_db")
    assert recovered.rows_loaded == 1
    assert [r["id"] for r in project.read("bronze.customers")] == [1, 2, 3]


def test_full_refresh_resets_the_cursor_and_replaces(project: Project) -> None:
    assert project.run("shop_db").rows_loaded == 2
    refreshed = project.run("shop_db", full_refresh=True)
    assert refreshed.rows_loaded == 2
    assert [r["id"] for r in project.read("bronze.customers")] == [1, 2]
