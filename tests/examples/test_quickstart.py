"""The quickstart as `make run` does it: compile, run, tables, read back with pyiceberg."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from pyiceberg.catalog import load_catalog

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def floe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "floe.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def _copy(tmp_path: Path) -> Path:
    project = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("target", ".floe",
                                                                       "shop.db"))
    with sqlite3.connect(project / "data" / "shop.db") as db:
        db.executescript((project / "data" / "shop.sql").read_text())
    return project


def test_quickstart_compiles_runs_and_lands_tables(tmp_path: Path) -> None:
    project = _copy(tmp_path)
    compiled = floe("compile", cwd=project)
    assert compiled.returncode == 0, compiled.stderr
    ran = floe("run", cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "bronze.orders" in ran.stdout and "bronze.customers" in ran.stdout

    catalog = load_catalog("floe", type="sql",
                           uri=f"sqlite:///{project / '.floe' / 'catalog.db'}",
                           warehouse=(project / ".floe" / "warehouse").as_uri())
    orders = catalog.load_table(("bronze", "orders")).scan().to_arrow().to_pylist()
    assert sorted((o["id"], o["status"]) for o in orders) == [
        (1, "shipped"), (2, "shipped"), (3, "shipped"), (4, "pending")]  # id 2 was merged
    customers = catalog.load_table(("bronze", "customers")).scan().to_arrow()
    assert sorted(customers.column("name").to_pylist()) == ["Alice", "Bob", "Carol"]
    assert catalog.load_table(("bronze", "products")).scan().to_arrow().num_rows == 3

    listed = floe("tables", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "bronze.products" in listed.stdout

    again = floe("run", "--select", "shop_db", cwd=project)  # incremental: nothing new
    assert again.returncode == 0
    assert catalog.load_table(("bronze", "customers")).scan().to_arrow().num_rows == 3

    shown = floe("show", "bronze.customers", "--limit", "2", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "first 2 rows" in shown.stdout and "updated_at" in shown.stdout


def test_run_without_artifact_says_compile_first(tmp_path: Path) -> None:
    result = floe("run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{tmp_path / 'target' / 'compiled_artifacts.json'} not found: run `floe compile` first")


def test_unknown_select_suggests_the_source(tmp_path: Path) -> None:
    project = _copy(tmp_path)
    assert floe("compile", cwd=project).returncode == 0
    result = floe("run", "--select", "order", cwd=project)
    assert result.returncode == 1
    assert "--select: no source named 'order' (did you mean 'orders'?)" in result.stderr


def test_failed_source_exits_1_and_the_others_still_run(tmp_path: Path) -> None:
    project = _copy(tmp_path)
    (project / "data" / "shop.db").unlink()
    (project / "data" / "shop.db").mkdir()  # the database cannot be opened
    assert floe("compile", cwd=project).returncode == 0
    result = floe("run", cwd=project)
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    catalog = load_catalog("floe", type="sql",
                           uri=f"sqlite:///{project / '.floe' / 'catalog.db'}",
                           warehouse=(project / ".floe" / "warehouse").as_uri())
    assert catalog.load_table(("bronze", "orders")).scan().to_arrow().num_rows == 4
