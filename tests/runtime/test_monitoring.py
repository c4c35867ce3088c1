"""floe's metrics in a real Prometheus fed by a real Pushgateway (both started here): after a
scripted sequence of loads, a failure, a stale source, checks, maintenance and CDC changes,
every panel of deploy/grafana/floe.json returns series, each shipped alert is pending or quiet
as it should be (promtool runs the timing cases), and the values equal what the run and
PostgreSQL report.  No secret reaches a label."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.project import load_project
from tests.servers import (
    Monitoring,
    Postgres,
    monitoring_servers,
    postgres_server,
    pushing_platform_yaml,
)

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "floe-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "floe.json"
FLOE = str(Path(sys.executable).with_name("floe"))

FLOE_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
platform: platform.yaml
defaults: {freshness_sla: 1h}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing/orders, file_glob: "*.jsonl", format: jsonl}
    checks:
      - row_count: {min: 100, severity: warn}
  - name: late
    source_type: filesystem
    destination_table: bronze.late
    freshness_sla: 1s
    source_config: {bucket_url: landing/late, file_glob: "*.jsonl", format: jsonl}
  - name: broken
    source_type: filesystem
    destination_table: bronze.broken
    source_config: {bucket_url: landing/nowhere, file_glob: "*.jsonl", format: jsonl}
  - name: crm
    source_type: postgres_cdc
    destination_table: bronze
    source_config:
      credentials: "{{ secret('CRM_PG_URL') }}"
      tables: [customers]
"""


@pytest.fixture(scope="module")
def monitoring() -> Iterator[Monitoring]:
    with monitoring_servers((RULES,)) as servers:
        yield servers


@pytest.fixture(scope="module")
def crm_postgres() -> Iterator[Postgres]:
    """A server of its own: its WAL moves only with this test, so the slot's figures can be
    compared with what PostgreSQL says."""
    with postgres_server() as server:
        server.execute("CREATE TABLE customers (id int PRIMARY KEY, name text);"
                       "INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');")
        yield server


def floe(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOE, *args], cwd=root, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def wait_for(monitoring: Monitoring, expr: str, predicate: Any = bool,
             seconds: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = monitoring.query(expr)
        if predicate(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def values(found: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in found}


def slot_figures(pg: Postgres) -> tuple[int, int]:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
            "WHERE slot_name = 'floe_shop_crm'").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, monitoring: Monitoring,
             crm_postgres: Postgres) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("monitored")
    for folder, count in (("orders", 3), ("late", 1)):
        (root / "landing" / folder).mkdir(parents=True)
        (root / "landing" / folder / "a.jsonl").write_text(
            "".join(json.dumps({"id": i, "status": "new"}) + "\n" for i in range(count)))
    (root / "floe.yaml").write_text(FLOE_YAML)
    (root / "platform.yaml").write_text(pushing_platform_yaml(monitoring.pushgateway))
    env = {"CRM_PG_URL": crm_postgres.url}
    assert floe(root, "compile", env=env).returncode == 0
    first = floe(root, "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr  # broken fails, the rest loads
    crm_postgres.execute("INSERT INTO customers VALUES (3, 'Cy'), (4, 'Dee');"
                         "UPDATE customers SET name = 'Ada L.' WHERE id = 1;"
                         "DELETE FROM customers WHERE id = 2;")
    second = floe(root, "run", "--select", "crm", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    maintained = floe(root, "maintain", "--select", "orders", env=env)
    assert maintained.returncode == 0, maintained.stdout + maintained.stderr
    yield root, env
    crm_postgres.drop_slot("floe_shop_crm")


def test_values_equal_what_the_run_and_postgresql_report(
        scenario: tuple[Path, dict[str, str]], monitoring: Monitoring,
        crm_postgres: Postgres) -> None:
    root, env = scenario
    wait_for(monitoring, "floe_table_data_files")  # every push of the scenario was scraped
    rows = wait_for(monitoring, 'floe_load_rows_total{source="orders"}')
    project = load_project(root / "target" / "compiled_artifacts.json")
    catalog = open_catalog(project.artifacts.environment, root, env)
    snapshot = catalog.load_table(("bronze", "orders")).snapshots()[0]
    assert snapshot.summary is not None
    assert values(rows, "table") == {"bronze.orders": float(snapshot.summary["added-records"])}
    written = monitoring.query('floe_load_written_bytes_total{source="orders"}')
    assert values(written, "table") == {
        "bronze.orders": float(snapshot.summary["added-files-size"])}
    assert values(monitoring.query('floe_loads_total{product="shop"}'), "source") == {
        "orders": 1.0, "late": 1.0, "broken": 1.0, "crm": 1.0}
    failed = monitoring.query('floe_loads_total{status="failed"}')
    assert values(failed, "source") == {"broken": 1.0}
    events = monitoring.query('floe_cdc_events_total{source="crm"}')
    assert values(events, "kind") == {"insert": 2.0, "update": 1.0, "delete": 1.0}
    behind, retained = slot_figures(crm_postgres)
    pushed = values(monitoring.query('floe_cdc_retained_bytes{source="crm"}'), "source")
    # what the run read from the slot; the server writes a little WAL of its own afterwards
    assert 0 <= retained - pushed["crm"] <= 16_384, (retained, pushed)
    pushed_behind = values(monitoring.query('floe_cdc_behind_bytes{source="crm"}'), "source")
    assert 0 <= behind - pushed_behind["crm"] <= 16_384, (behind, pushed_behind)
    files = wait_for(monitoring, 'floe_table_data_files{source="orders"}')
    assert values(files, "table") == {"bronze.orders": 1.0}


def test_every_dashboard_panel_returns_series(scenario: tuple[Path, dict[str, str]],
                                              monitoring: Monitoring) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "floe-overview" and dashboard["panels"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "product", "source"} <= variables
    wait_for(monitoring, "floe_table_data_files")
    empty = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["gridPos"]["w"] > 0
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"].replace("$product", ".*").replace("$source", ".*")
            if not monitoring.query(expr):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == []


def test_alerts_fire_or_stay_quiet(scenario: tuple[Path, dict[str, str]],
                                   monitoring: Monitoring) -> None:
    """The shipped rules, evaluated every second on the pushed values: each alert whose
    condition holds is at least pending (its `for:` is minutes; promtool checks the timing)."""
    def alerting(found: list[dict[str, Any]]) -> bool:
        names = {(r["metric"]["alertname"], r["metric"].get("source")) for r in found}
        return {("FloeSourceFailing", "broken"), ("FloeSourceStale", "late")} <= names

    found = wait_for(monitoring, "ALERTS", alerting, seconds=30)
    assert sorted((r["metric"]["alertname"], r["metric"]["source"]) for r in found) == [
        ("FloeSourceFailing", "broken"), ("FloeSourceStale", "late")]


def test_promtool_timing_cases() -> None:
    result = subprocess.run(["promtool", "test", "rules", "floe-rules.test.yml"],
                            cwd=RULES.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_no_secret_in_any_pushed_series(scenario: tuple[Path, dict[str, str]],
                                        monitoring: Monitoring, crm_postgres: Postgres) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{monitoring.pushgateway}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "floe_loads_total" in text
    assert crm_postgres.password not in text and crm_postgres.url not in text


def test_cdc_lag_seconds_from_the_oldest_unapplied_commit(
        scenario: tuple[Path, dict[str, str]], crm_postgres: Postgres) -> None:
    """Behind the source: the seconds since the oldest transaction the slot still holds
    committed (its BEGIN carries the time), peeked without consuming it."""
    from floe.runtime.cdc.postgres.server import oldest_unapplied_commit

    url, slot, publication = crm_postgres.url, "floe_shop_crm", "floe_shop_crm"
    assert oldest_unapplied_commit(url, slot, publication) is None  # all applied
    before = time.time()
    crm_postgres.execute("INSERT INTO customers VALUES (9, 'Zed')")
    crm_postgres.execute("INSERT INTO customers VALUES (10, 'Yo')")
    committed = oldest_unapplied_commit(url, slot, publication)
    assert committed is not None and before - 1 <= committed <= time.time() + 1
    assert oldest_unapplied_commit(url, slot, publication) == committed  # nothing consumed
