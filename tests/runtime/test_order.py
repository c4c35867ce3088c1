"""depends_on at run time: dependency order, parallel loads, skipped dependents, graph
selectors; a parallel floe run on the embedded catalog gives the serial run's results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from floe.artifacts import CompiledSource
from floe.runtime.ingestion.result import IngestionResult
from floe.runtime.order import downstream, run_in_order, upstream
from tests.runtime.harness import Project

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
""" + "".join(f"""\
  - name: {name}
    source_type: filesystem
    destination_table: bronze.{name}
    depends_on: {deps}
    source_config: {{bucket_url: landing/{name}, format: jsonl}}
""" for name, deps in [("raw", "[]"), ("orders", "[raw]"), ("report", "[orders]"),
                       ("clicks", "[]"), ("views", "[]"), ("users", "[]")])


def test_graph_helpers() -> None:
    deps = {"silver": ["bronze.orders"], "bronze": ["raw"], "raw": [], "other": []}
    assert upstream(deps, "silver") == {"bronze", "raw"}
    assert downstream(deps, "raw") == {"bronze", "silver"}


def _project(root: Path) -> Project:
    project = Project(root)
    project.write(PROJECT)
    for name in ("raw", "orders", "report", "clicks", "views", "users"):
        folder = root / "landing" / name
        folder.mkdir(parents=True)
        rows = [{"id": i, "source": name} for i in range(20)]
        (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return project


@pytest.mark.parametrize("threads", [1, 3])
def test_order_skips_and_parallelism(tmp_path: Path, threads: int) -> None:
    sources = _project(tmp_path).compile().sources
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    lock = threading.Lock()

    def load(source: CompiledSource) -> IngestionResult:
        with lock:
            started[source.name] = time.monotonic()
        time.sleep(0.2)
        with lock:
            finished[source.name] = time.monotonic()
        return IngestionResult(source=source.name, success=source.name != "orders")

    results = run_in_order(sources, load, threads)
    assert [results[s].status for s in ("raw", "orders", "report", "clicks")] == [
        "success", "failed", "skipped", "success"]
    assert results["report"].errors == ("skipped: depends on orders, which failed",)
    assert "report" not in started  # never started
    assert started["orders"] >= finished["raw"]  # after what it depends on
    overlapping = started["clicks"] < finished["raw"] and started["raw"] < finished["clicks"]
    assert overlapping == (threads > 1)


def test_floe_run_in_parallel_equals_serial(tmp_path: Path) -> None:
    """The CLI on the embedded SQLite catalog: a bad file fails `orders`, so `report` is
    skipped with its name, the rest loads; --threads 4 and 1 leave the same tables."""
    project = _project(tmp_path)
    (tmp_path / "landing" / "orders" / "a.jsonl").write_text("{not json\n")
    project.compile()
    floe = str(Path(sys.executable).parent / "floe")
    env = {**os.environ, "COLUMNS": "200"}
    counts = []
    for threads in ("4", "1"):
        done = subprocess.run([floe, "run", "--threads", threads], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "report: skipped: depends on orders, which failed" in done.stdout
        assert "database is locked" not in done.stdout + done.stderr
        assert done.stdout.count(" ok ") == 4, done.stdout
        counts.append({t: len(project.read(f"bronze.{t}")) for t in
                       ("raw", "clicks", "views", "users")})
        assert ("bronze", "report") not in project.catalog().list_tables("bronze")
    assert counts[0] == {"raw": 20, "clicks": 20, "views": 20, "users": 20}
    assert counts[1] == counts[0]  # the second run found nothing new: same rows


def test_select_graph_operators(tmp_path: Path) -> None:
    from floe.runtime.project import select_sources

    artifacts = _project(tmp_path).compile()
    assert [s.name for s in select_sources(artifacts, ["raw+"])] == ["raw", "orders", "report"]
    assert [s.name for s in select_sources(artifacts, ["+report"])] == [
        "raw", "orders", "report"]
    assert [s.name for s in select_sources(artifacts, ["orders"])] == ["orders"]


def test_threads_three_respects_every_edge_by_commit_time(tmp_path: Path) -> None:
    """A 6-source graph with --threads 3: every source's commit comes after the commits of
    what it depends on, and the tables equal a serial run's."""
    tables: list[dict[str, int]] = []
    for threads in ("3", "1"):
        root = tmp_path / threads
        root.mkdir()
        project = _project(root)
        project.compile()
        floe = str(Path(sys.executable).parent / "floe")
        done = subprocess.run([floe, "run", "--threads", threads], cwd=root,
                              capture_output=True, text=True, env=os.environ)
        assert done.returncode == 0, done.stdout + done.stderr
        catalog = project.catalog()
        committed = {}
        for name in ("raw", "orders", "report", "clicks", "views", "users"):
            snapshot = catalog.load_table(("bronze", name)).current_snapshot()
            assert snapshot is not None
            committed[name] = snapshot.timestamp_ms
        assert committed["raw"] <= committed["orders"] <= committed["report"]
        tables.append({n: len(project.read(f"bronze.{n}")) for n in committed})
    assert tables[0] == tables[1] == {n: 20 for n in tables[0]}
