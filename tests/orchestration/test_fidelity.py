"""The same behaviour under `floe run` and under Dagster: attempts, timeouts, whole-schema
sources, schema changes in metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest

from floe.runtime.dagster import build_definitions
from tests.orchestration.project import drop_orders
from tests.runtime.harness import Project
from tests.servers import Postgres


class _Api(BaseHTTPRequestHandler):
    """/orders answers 503 forever; /slow answers after 4 s."""

    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).calls.append(self.path)
        if self.path.startswith("/slow"):
            time.sleep(4)
            body, status = json.dumps([{"id": 1}]).encode(), 200
        else:
            body, status = b"down", 503
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    _Api.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


API_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: down
    source_type: rest_api
    destination_table: bronze.down
    retry: {{max_retries: 2, initial_delay_seconds: 0.05, max_delay_seconds: 0.1}}
    source_config:
      client: {{base_url: "{url}"}}
      resources: [{{name: down, endpoint: {{path: /orders, paginator: single_page}}}}]
  - name: slow
    source_type: rest_api
    destination_table: bronze.slow
    timeout_seconds: 1
    retry: {{max_retries: 0}}
    source_config:
      client: {{base_url: "{url}"}}
      resources: [{{name: slow, endpoint: {{path: /slow, paginator: single_page}}}}]
"""


@pytest.fixture(autouse=True)
def _no_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt's HTTP client retries on its own; floe's attempts are what is counted."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")


def _api_project(root: Path, url: str) -> tuple[Project, dg.Definitions]:
    project = Project(root)
    project.write(API_PROJECT.format(url=url))
    project.compile()
    return project, build_definitions(root / "target" / "compiled_artifacts.json")


def test_attempts_are_max_retries_plus_one_in_floe_run_and_in_dagster(
        tmp_path: Path, api: str) -> None:
    project, defs = _api_project(tmp_path, api)
    result = project.run("down")
    assert not result.success and result.error_category == "TRANSIENT"
    assert len(_Api.calls) == 3
    _Api.calls.clear()
    job = defs.resolve_job_def("ingest__down")
    run = job.execute_in_process(raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    assert not run.success
    assert len(_Api.calls) == 3  # Dagster's RetryPolicy only: not (2 + 1) ** 2 = 9
    retries = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2


def test_timeout_stops_the_source_in_floe_run_and_in_dagster(tmp_path: Path, api: str) -> None:
    project, defs = _api_project(tmp_path, api)
    started = time.monotonic()
    result = project.run("slow")
    assert time.monotonic() - started < 3.5
    assert result.status == "timeout" and not result.success
    assert "timed out after 1 s (timeout_seconds) while extracting; nothing was committed" \
        in result.errors[0]
    assert ("bronze", "slow") not in project.catalog().list_tables("bronze") \
        if ("bronze",) in project.catalog().list_namespaces() else True
    started = time.monotonic()
    run = defs.resolve_job_def("ingest__slow").execute_in_process(raise_on_error=False)
    assert time.monotonic() - started < 3.5
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert "timed out after 1 s" in str(failure.event_specific_data)
    retries = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []  # a timeout is not retried


SCHEMA_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: crm
    source_type: sql_database
    destination_table: bronze
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      schema: sales
"""


def test_a_whole_schema_is_one_asset_and_loads_every_table(
        tmp_path: Path, postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path)
    project.write(SCHEMA_PROJECT)
    project.compile()
    # the code location loads without reaching the database (nothing listens on port 1)
    monkeypatch.setenv("CRM_DB_URL", "postgresql://floe:pw@127.0.0.1:1/none")
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    [assets] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert assets.keys == {dg.AssetKey("ingestion__crm__sales")}
    postgres.execute("""
        DROP SCHEMA IF EXISTS sales CASCADE; CREATE SCHEMA sales;
        CREATE TABLE sales.customers (id int PRIMARY KEY, name text);
        CREATE TABLE sales.invoices (id int PRIMARY KEY, total numeric(10,2));
        INSERT INTO sales.customers VALUES (1, 'a'), (2, 'b');
        INSERT INTO sales.invoices VALUES (1, 9.5);
    """)
    environ = {"CRM_DB_URL": postgres.url}
    result = project.run("crm", environ=environ)
    assert result.success, result.errors
    assert sorted((t.table, t.rows_loaded) for t in result.tables) == [
        ("bronze.customers", 2), ("bronze.invoices", 1)]
    monkeypatch.setenv("CRM_DB_URL", postgres.url)
    postgres.execute("INSERT INTO sales.invoices VALUES (2, 1.25)")
    run = dg.materialize([assets], raise_on_error=False)
    assert run.success
    [event] = run.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["tables"] == {"bronze.customers": 2, "bronze.invoices": 2}


FILES_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
"""


def test_new_columns_are_in_the_materialization_metadata(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(FILES_PROJECT)
    project.compile()
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    drop_orders(tmp_path, [{"id": 1}], "a.jsonl")
    assert dg.materialize(assets).success
    drop_orders(tmp_path, [{"id": 2, "email": "b@x"}], "b.jsonl")
    run = dg.materialize(assets)
    [event] = run.get_asset_materialization_events()
    assert event.materialization.metadata["new_columns"].value == ["bronze.orders.email"]


MANY = [("eu", "orders", ""), ("us", "orders", ""), ("apac", "orders", ""),
        ("clicks", "clicks", "[eu, views.views]"), ("views", "views", "")] + [
        (f"feed{i}", f"feed{i}", f"[feed{i - 1}]" if i % 3 else "") for i in range(15)]
MANY_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
""" + "".join(f"""\
  - name: {name}
    source_type: filesystem
    destination_table: bronze.{table}
    depends_on: {deps or "[]"}
    source_config: {{bucket_url: landing/{name}, file_glob: "*.jsonl", format: jsonl}}
""" for name, table, deps in MANY)


def test_multiprocess_executor_materializes_twenty_sources(tmp_path: Path) -> None:
    """Twenty assets in one run, each step in its own process, three of them committing to
    one shared table at the same moment, with depends_on edges: every row once, every
    source's cursor kept."""
    project = Project(tmp_path)
    project.write(MANY_PROJECT)
    project.compile()
    expected: dict[str, int] = {}
    for name, table, _ in MANY:
        folder = tmp_path / "landing" / name
        folder.mkdir(parents=True)
        rows = [{"id": f"{name}-{i}", "source": name} for i in range(50)]
        (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        expected[table] = expected.get(table, 0) + len(rows)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "FLOE_ARTIFACTS": str(tmp_path / "target" / "compiled_artifacts.json")}
    (tmp_path / "dagster_home").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "--select", "*", "-m",
         "floe.runtime.dagster.definitions"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "multiprocess executor" in done.stdout + done.stderr
    for table, count in expected.items():
        ids = [r["id"] for r in project.read(f"bronze.{table}")]
        assert len(ids) == len(set(ids)) == count, table
    for name in ("eu", "us", "apac"):  # each kept its own cursor in the shared table
        assert project.run(name).rows_loaded == 0


def test_floe_run_shows_timeouts_and_schema_changes(tmp_path: Path, api: str) -> None:
    """What a user sees: the status `timeout` with exit 1, and new columns in the table."""
    floe = str(Path(sys.executable).parent / "floe")
    project = Project(tmp_path)
    project.write(API_PROJECT.format(url=api) + "".join(FILES_PROJECT.split("sources:\n")[1:]))
    drop_orders(tmp_path, [{"id": 1}], "a.jsonl")
    env = {**os.environ, "COLUMNS": "200", "RUNTIME__REQUEST_MAX_ATTEMPTS": "1"}
    assert subprocess.run([floe, "compile"], cwd=tmp_path, env=env).returncode == 0
    slow = subprocess.run([floe, "run", "--select", "slow"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert slow.returncode == 1
    assert "timeout" in slow.stdout
    assert "timed out after 1 s (timeout_seconds)" in slow.stdout
    assert subprocess.run([floe, "run", "--select", "orders"], cwd=tmp_path,
                          env=env, capture_output=True).returncode == 0
    drop_orders(tmp_path, [{"id": 2, "email": "b@x"}], "b.jsonl")
    evolved = subprocess.run([floe, "run", "--select", "orders"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert evolved.returncode == 0, evolved.stdout + evolved.stderr
    assert "schema changes" in evolved.stdout
    assert "+email" in evolved.stdout


def test_depends_on_is_asset_lineage(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(MANY_PROJECT)
    project.compile()
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey("ingestion__clicks__clicks")).parent_keys
    assert parents == {dg.AssetKey("ingestion__eu__orders"), dg.AssetKey("ingestion__views__views")}
