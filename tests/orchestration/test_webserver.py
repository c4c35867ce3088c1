"""The code location served by a real Dagster webserver, asked through its GraphQL API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.orchestration.project import NOTIFY, write_project
from tests.servers import free_port

QUERY = """{
  workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
  } } }
  assetNodes {
    assetKey { path } groupName kinds
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name cronSchedule executionTimezone }
    sensors { name }
  } } }
}"""
BIN = Path(sys.executable).parent


@contextmanager
def _serving(command: list[str], cwd: Path, env: dict[str, str], port: int
             ) -> Iterator[dict[str, Any]]:
    log = cwd / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield _query_when_loaded(port, process, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _query_when_loaded(port: int, process: subprocess.Popen[bytes], log: Path
                       ) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        try:
            reply = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY},
                                  timeout=10).json()
        except (requests.RequestException, ValueError):
            reply = None  # not up yet
        if reply is not None:
            assert not reply.get("errors"), reply["errors"]
            entries = reply["data"]["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["loadStatus"] == "LOADED":
                return dict(reply["data"])
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("Dagster did not serve the code location:\n"
                                 + log.read_text(errors="replace")[-3000:])
        time.sleep(1)


def _assert_location(answer: dict[str, Any]) -> None:
    [entry] = answer["workspaceOrError"]["locationEntries"]
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    keys = {node["assetKey"]["path"][-1] for node in answer["assetNodes"]}
    assert keys == {"ingestion__orders__orders", "ingestion__crm__customers",
                    "ingestion__crm__invoices"}
    orders = next(n for n in answer["assetNodes"]
                  if n["assetKey"]["path"] == ["ingestion__orders__orders"])
    assert orders["groupName"] == "shop"
    assert set(orders["kinds"]) == {"dlt", "iceberg"}
    checks = {c["name"] for c in orders["assetChecksOrError"]["checks"]}
    assert checks == {"row_count", "not_null__id__status", "unique__id",
                      "accepted_values__status", "freshness__updated_at"}
    [repository] = answer["repositoriesOrError"]["nodes"]
    assert [(s["name"], s["cronSchedule"], s["executionTimezone"])
            for s in repository["schedules"]] == [
        ("ingest__orders__schedule", "15 6 * * *", "Europe/Paris")]
    assert {s["name"] for s in repository["sensors"]} == {
        "ingest__orders__new_files", "notify_0_on_failure"}


def test_dagster_webserver_loads_the_module(tmp_path: Path) -> None:
    project = write_project(tmp_path, NOTIFY)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path),
           "FLOE_ARTIFACTS": str(project.root / "target" / "compiled_artifacts.json")}
    command = [str(BIN / "dagster-webserver"), "-m", "floe.runtime.dagster.definitions",
               "-h", "127.0.0.1", "-p", str(port)]
    with _serving(command, tmp_path, env, port) as answer:
        _assert_location(answer)


def test_floe_dev_compiles_and_serves_the_project(tmp_path: Path) -> None:
    write_project(tmp_path, NOTIFY)
    (tmp_path / "target" / "compiled_artifacts.json").unlink()  # floe dev compiles itself
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DAGSTER_HOME", "FLOE_ARTIFACTS"}}
    with _serving([str(BIN / "floe"), "dev", "--port", str(port)], tmp_path, env,
                  port) as answer:
        _assert_location(answer)
    assert (tmp_path / "target" / "compiled_artifacts.json").exists()
    assert (tmp_path / ".floe" / "dagster").is_dir(), "run history stays with the project"
