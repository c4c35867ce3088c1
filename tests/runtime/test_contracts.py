"""Schema contracts are enforced against the real Iceberg table; columns are never dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.harness import Project
from tests.runtime.test_write_modes import FILES_PROJECT, clear, drop


def _project(tmp_path: Path, contract: str) -> Project:
    project = Project(tmp_path)
    project.write(FILES_PROJECT.format(mode="append", extra=f"schema_contract: {contract}"))
    drop(tmp_path, "a.jsonl", [{"id": 1, "name": "a"}])
    assert project.run("orders").success
    clear(tmp_path)
    drop(tmp_path, "b.jsonl", [{"id": 2, "name": "b", "email": "b@x"}])
    return project


def test_evolve_adds_the_new_column(tmp_path: Path) -> None:
    project = _project(tmp_path, "evolve")
    result = project.run("orders")
    assert result.success, result.errors
    assert result.tables[0].new_columns == ("email",)
    assert [(r["id"], r["email"]) for r in project.read("bronze.orders")] == [
        (1, None), (2, "b@x")]


def test_freeze_rejects_the_load_and_leaves_the_table_untouched(tmp_path: Path) -> None:
    project = _project(tmp_path, "freeze")
    snapshots = project.snapshots("bronze.orders")
    result = project.run("orders")
    assert not result.success
    assert result.error_category == "PERMANENT"
    assert "schema contract 'freeze' rejects new column(s) email" in result.errors[0]
    assert "table=bronze.orders" in result.errors[0]
    assert project.snapshots("bronze.orders") == snapshots
    assert "email" not in project.columns("bronze.orders")
    clear(tmp_path)  # the offending file is gone: the next run is not blocked
    drop(tmp_path, "c.jsonl", [{"id": 3, "name": "c"}])
    later = project.run("orders")
    assert later.success, later.errors
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 3]


def test_discard_value_drops_the_new_column(tmp_path: Path) -> None:
    project = _project(tmp_path, "discard_value")
    result = project.run("orders")
    assert result.success, result.errors
    assert "email" not in project.columns("bronze.orders")
    assert [(r["id"], r["name"]) for r in project.read("bronze.orders")] == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("contract", ["evolve", "freeze", "discard_value"])
def test_columns_removed_at_the_source_are_kept(tmp_path: Path, contract: str) -> None:
    project = Project(tmp_path)
    project.write(FILES_PROJECT.format(mode="append", extra=f"schema_contract: {contract}"))
    drop(tmp_path, "a.jsonl", [{"id": 1, "name": "a", "note": "x"}])
    assert project.run("orders").success
    clear(tmp_path)
    drop(tmp_path, "b.jsonl", [{"id": 2, "name": "b"}])
    result = project.run("orders")
    assert result.success, result.errors
    assert project.columns("bronze.orders") == ["id", "name", "note"]
    assert [(r["id"], r["note"]) for r in project.read("bronze.orders")] == [(1, "x"), (2, None)]
