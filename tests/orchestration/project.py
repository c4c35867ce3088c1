"""A project with every Dagster-facing feature: two sources, checks, schedule, alerts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from floe.runtime.dagster import build_definitions
from tests.runtime.harness import Project

FLOE_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0, owner: data@shop.example}}
sources:
  - name: orders
    source_type: filesystem
    description: Orders dropped by the web shop
    destination_table: bronze.orders
    write_mode: append
    schedule: "15 6 * * *"
    timezone: Europe/Paris
    retry: {{max_retries: 2, initial_delay_seconds: 0.5}}
    timeout_seconds: 600
    source_config: {{bucket_url: landing, file_glob: "*.jsonl", format: jsonl}}
    checks:
      - row_count: {{min: 1, max: 100}}
      - not_null: [id, status]
      - unique: [id]
      - accepted_values: {{column: status, values: [new, paid, shipped]}}
      - freshness: {{column: updated_at, max_age: 2h}}
  - name: crm
    source_type: sql_database
    destination_table: bronze
    source_config:
      credentials: "{{{{ secret('CRM_DB_URL') }}}}"
      tables: [customers, invoices]
{notifications}
"""

NOTIFY = """\
notifications:
  - on: [failure, check_failure]
    webhook: "{{ secret('ALERT_WEBHOOK') }}"
    template: "floe {{ product }}: {{ asset }} {{ status }} - {{ error }} ({{ run_id }})"
"""


def write_project(root: Path, notifications: str = "") -> Project:
    project = Project(root)
    project.write(FLOE_YAML.format(notifications=notifications))
    project.compile()
    return project


def drop_orders(root: Path, rows: list[dict[str, object]], name: str = "a.jsonl") -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def fresh_orders(count: int = 3) -> list[dict[str, object]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return [{"id": i, "status": "new", "updated_at": now} for i in range(1, count + 1)]


def definitions(project: Project) -> dg.Definitions:
    return build_definitions(project.root / "target" / "compiled_artifacts.json")


def orders_assets(defs: dg.Definitions) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The orders asset with its checks (the crm source needs a database)."""
    key = dg.AssetKey("ingestion__orders__orders")
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
              and key in a.keys]
    checks = [c for c in defs.asset_checks or [] if key in {k.asset_key for k in c.check_keys}]
    return [*assets, *checks]
