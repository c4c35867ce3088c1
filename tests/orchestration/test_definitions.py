"""What the code location declares: assets, keys, groups, jobs, retries, schedules, sensors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from floe.errors import ArtifactError
from floe.runtime.dagster import build_definitions
from tests.orchestration.project import NOTIFY, definitions, write_project
from tests.runtime.harness import Project

EXPECTED_KEYS = {"ingestion__orders__orders", "ingestion__crm__customers",
                 "ingestion__crm__invoices"}


def test_one_asset_per_dlt_resource_with_floe_keys(tmp_path: Path) -> None:
    defs = definitions(write_project(tmp_path))
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_KEYS
    spec = graph.get(dg.AssetKey("ingestion__orders__orders"))
    assert spec.group_name == "shop"
    assert spec.kinds == {"dlt", "iceberg"}
    assert spec.owners == ["data@shop.example"]
    assert spec.parent_keys == set(), "no placeholder upstream assets"
    assert spec.description is not None and "Orders dropped by the web shop" in spec.description
    assert spec.tags["floe/write_mode"] == "append"


def test_checks_jobs_retries_schedules_and_sensors(tmp_path: Path) -> None:
    defs = definitions(write_project(tmp_path, NOTIFY))
    graph = defs.resolve_asset_graph()
    check_names = {k.name for k in graph.asset_check_keys
                   if k.asset_key == dg.AssetKey("ingestion__orders__orders")}
    assert check_names == {"row_count", "not_null__id__status", "unique__id",
                           "accepted_values__status", "freshness__updated_at"}

    blocking = {spec.name: spec.blocking for checks in defs.asset_checks or []
                for spec in checks.check_specs}
    assert blocking["row_count"] is True  # error severity: a failure fails the run

    [orders] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
                and dg.AssetKey("ingestion__orders__orders") in a.keys]
    assert orders.node_def.pool == "floe_orders"  # runs of one source can queue on it

    job = defs.resolve_job_def("ingest__orders")
    assert job.tags["dagster/max_runtime"] == "600"
    retry = job.op_retry_policy
    assert retry is not None
    assert (retry.max_retries, retry.delay, retry.backoff) == (2, 0.5, dg.Backoff.EXPONENTIAL)

    schedule = defs.resolve_schedule_def("ingest__orders__schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 6 * * *",
                                                                      "Europe/Paris")
    assert schedule.job_name == "ingest__orders"
    sensors = {s.name for s in defs.sensors or []}
    # on: [failure, check_failure]: check failures are sent by the checks step, no sensor
    assert sensors == {"ingest__orders__new_files", "notify_0_on_failure"}


def test_loads_without_secrets_or_reachable_servers(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """CRM_DB_URL is unset and no database exists: loading must still work (runs would not)."""
    monkeypatch.delenv("CRM_DB_URL", raising=False)
    defs = definitions(write_project(tmp_path))
    assert len(defs.resolve_asset_graph().get_all_asset_keys()) == 3


def test_project_without_sources_gives_an_empty_location(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: empty, version: 0.1.0}
        sources: []
    """)
    project.compile()
    defs = definitions(project)
    assert not defs.resolve_asset_graph().get_all_asset_keys()


def test_missing_artifact_is_a_loud_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="floe compile"):
        build_definitions(tmp_path / "target" / "compiled_artifacts.json")


def test_dagster_definitions_validate_accepts_the_module(tmp_path: Path) -> None:
    project = write_project(tmp_path, NOTIFY)
    env = {**os.environ, "FLOE_ARTIFACTS": str(project.root / "target/compiled_artifacts.json")}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m",
         "floe.runtime.dagster.definitions"], env=env, capture_output=True, text=True,
        cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_platform_maintenance_is_a_scheduled_job_that_maintains(tmp_path: Path) -> None:
    import json

    (tmp_path / "platform.yaml").write_text(
        "apiVersion: floe.dev/v1\nkind: Platform\nenvironments:\n  dev:\n"
        "    catalog: {type: sql, uri: 'sqlite:///.floe/catalog.db', warehouse: .floe/wh}\n"
        "    maintenance: {schedule: '0 3 * * *', timezone: Europe/Paris, older_than: 0s,"
        " retain_last: 1}\n")
    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: shop, version: 1.0.0}
        platform: platform.yaml
        sources:
          - name: events
            source_type: filesystem
            destination_table: bronze.events
            source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
        """)
    project.compile()
    (tmp_path / "landing").mkdir()
    for index in range(5):
        (tmp_path / "landing" / f"{index}.jsonl").write_text(json.dumps({"id": index}) + "\n")
        assert project.run("events").success
    table = project.catalog().load_table(("bronze", "events"))
    assert sum(1 for _ in table.scan().plan_files()) == 5
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    schedule = defs.resolve_schedule_def("floe_maintenance__schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 3 * * *", "Europe/Paris", "floe_maintenance")
    assert defs.resolve_job_def("floe_maintenance").execute_in_process().success
    table = project.catalog().load_table(("bronze", "events"))
    assert sum(1 for _ in table.scan().plan_files()) == 1
    assert len(table.snapshots()) < 5
    assert sorted(r["id"] for r in project.read("bronze.events")) == list(range(5))
    assert project.run("events").rows_loaded == 0  # cursors survived
