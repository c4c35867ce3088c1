"""The artifact: fully resolved, deterministic, versioned, and refused when unreadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from floe.artifacts import (
    ARTIFACTS_VERSION,
    CompiledArtifacts,
    FreshnessCheck,
    NotNullCheck,
    RowCountCheck,
    load_artifacts,
    write_artifacts,
)
from floe.errors import ArtifactError
from tests.compiler.helpers import VALID, compile_text, write

FULL = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.2.3, owner: data@shop.example}
vars: {start: "2024-01-01"}
defaults:
  write_mode: append
  schema_contract: freeze
  retry: {max_retries: 5, initial_delay_seconds: 2.0}
  schedule: "0 * * * *"
sources:
  - name: shop_api
    source_type: rest_api
    destination_table: bronze.orders
    write_mode: merge
    merge_strategy: delete-insert
    primary_key: id
    cursor_field: updated_at
    cursor_initial_value: "{{ var('start') }}"
    retry: {max_retries: 1}
    source_config:
      client:
        base_url: "{{ env_var('SHOP_API_URL', 'http://localhost:8000') }}"
        auth: {type: bearer, token: "{{ secret('SHOP_API_TOKEN') }}"}
      resources:
        - name: orders
          endpoint: {path: /orders, data_selector: data}
    checks:
      - row_count: {min: 1}
      - not_null: [id]
      - unique: {columns: [id], severity: warn}
      - freshness: {column: updated_at, max_age: 2h}
  - name: crm
    source_type: sql_database
    destination_table: bronze
    schema_contract: evolve
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      tables: [customers, invoices]
      backend: pyarrow
notifications:
  - on: [failure]
    webhook: "{{ secret('ALERT_WEBHOOK') }}"
    template: "floe {{ product }}: {{ asset }} {{ status }}"
"""


def test_every_source_is_fully_resolved(tmp_path: Path) -> None:
    artifacts = compile_text(tmp_path, FULL)
    api, crm = artifacts.sources
    assert api.pipeline_name == "shop__shop_api"
    assert (api.namespace, api.table, api.resources) == ("bronze", "orders", ("orders",))
    assert (api.write_mode, api.merge_strategy, api.primary_key) == (
        "merge", "delete-insert", ("id",))
    assert api.schema_contract == "freeze"  # from defaults
    assert (api.retry.max_retries, api.retry.initial_delay_seconds) == (1, 2.0)  # merged
    assert api.schedule is not None and api.schedule.cron == "0 * * * *"
    assert api.cursor_initial_value == "2024-01-01"
    assert api.source_config["client"]["base_url"] == "http://localhost:8000"
    assert api.source_config["client"]["auth"]["token"] == "${secret:SHOP_API_TOKEN}"
    assert api.checks == (
        RowCountCheck(min=1), NotNullCheck(columns=("id",)),
        api.checks[2], FreshnessCheck(column="updated_at", max_age_seconds=7200))
    assert api.checks[2].severity == "warn"
    assert (crm.write_mode, crm.merge_strategy, crm.schema_contract) == ("append", None, "evolve")
    assert (crm.namespace, crm.table, crm.resources) == ("bronze", None, ("customers", "invoices"))
    assert crm.table_for("invoices") == "invoices"
    assert artifacts.notifications[0].template == "floe {{ product }}: {{ asset }} {{ status }}"
    assert artifacts.notifications[0].target == "${secret:ALERT_WEBHOOK}"
    assert artifacts.notifications[0].channel == "webhook"


def test_embedded_environment_without_platform_file(tmp_path: Path) -> None:
    env = compile_text(tmp_path, VALID).environment
    assert env.name == "dev"
    assert (env.catalog.type, env.catalog.name) == ("sql", "floe")
    assert (env.catalog.uri, env.catalog.warehouse) == (
        "sqlite:///.floe/catalog.db", ".floe/warehouse")


def test_platform_environment_is_resolved_with_secret_references(tmp_path: Path) -> None:
    write(tmp_path, """\
        apiVersion: floe.dev/v1
        kind: Platform
        environments:
          dev:
            catalog: {type: sql, uri: "sqlite:///.floe/catalog.db", warehouse: .floe/warehouse}
          prod:
            catalog:
              type: rest
              uri: https://polaris.example/api/catalog
              warehouse: floe_warehouse
              credential: "{{ secret('POLARIS_CREDENTIAL') }}"
              scope: PRINCIPAL_ROLE:ALL
            storage:
              type: s3
              endpoint: https://minio.example
              region: us-east-1
              access_key_id: "{{ secret('S3_ACCESS_KEY_ID') }}"
              secret_access_key: "{{ secret('S3_SECRET_ACCESS_KEY') }}"
              path_style: true
        """, "platform.yaml")
    text = VALID.replace("sources:", "platform: platform.yaml\nsources:")
    env = compile_text(tmp_path, text, env="prod").environment
    assert env.name == "prod"
    assert (env.catalog.type, env.catalog.uri) == ("rest", "https://polaris.example/api/catalog")
    assert env.catalog.credential == "${secret:POLARIS_CREDENTIAL}"
    assert env.storage is not None and env.storage.path_style is True
    assert env.storage.secret_access_key == "${secret:S3_SECRET_ACCESS_KEY}"
    assert compile_text(tmp_path, text).environment.catalog.type == "sql"


def test_same_inputs_give_byte_identical_files(tmp_path: Path) -> None:
    first = compile_text(tmp_path, FULL).to_json()
    second = compile_text(tmp_path, FULL).to_json()
    assert first == second
    changed = compile_text(tmp_path, FULL.replace("1.2.3", "1.2.4"))
    assert changed.inputs_sha256 != json.loads(first)["inputs_sha256"]


def test_env_var_values_change_the_inputs_hash(tmp_path: Path) -> None:
    a = compile_text(tmp_path, FULL, environ={"SHOP_API_URL": "http://a"})
    b = compile_text(tmp_path, FULL, environ={"SHOP_API_URL": "http://b"})
    assert a.inputs_sha256 != b.inputs_sha256


def test_artifact_json_shape(tmp_path: Path) -> None:
    data = json.loads(compile_text(tmp_path, FULL).to_json())
    assert data["$schema"] == "https://floe.dev/schemas/compiled_artifacts/v1.json"
    assert data["artifacts_version"] == ARTIFACTS_VERSION
    assert len(data["inputs_sha256"]) == 64
    assert data["project_root"] == ".."
    assert data["product"] == {"name": "shop", "version": "1.2.3", "owner": "data@shop.example",
                               "description": None}


def test_round_trip_through_file(tmp_path: Path) -> None:
    artifacts = compile_text(tmp_path, FULL)
    path = tmp_path / "target" / "compiled_artifacts.json"
    write_artifacts(artifacts, path)
    assert load_artifacts(path) == artifacts


def test_models_are_frozen(tmp_path: Path) -> None:
    artifacts = compile_text(tmp_path, FULL)
    with pytest.raises(ValueError, match="frozen"):
        artifacts.sources[0].write_mode = "replace"  # type: ignore[misc]


def test_newer_artifact_version_is_refused_with_the_version(tmp_path: Path) -> None:
    data = json.loads(compile_text(tmp_path, FULL).to_json())
    data["artifacts_version"] = "2.0"
    data["floe_version"] = "9.0.0"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as info:
        load_artifacts(path)
    assert "has artifacts_version 2.0, but this floe reads 1.x (written by floe 9.0.0)" in (
        info.value.message)


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    data = json.loads(compile_text(tmp_path, FULL).to_json())
    data["sources"][0]["surprise"] = 1
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    expected = r"Extra inputs are not permitted at sources\.0\.surprise"
    with pytest.raises(ArtifactError, match=expected):
        load_artifacts(path)


def test_missing_artifact_says_run_compile(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found: run `floe compile` first"):
        load_artifacts(tmp_path / "nope.json")


def test_artifacts_validate_against_their_json_schema(tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    from floe.compiler.validate import schema

    data = json.loads(compile_text(tmp_path, FULL).to_json())
    Draft202012Validator(schema("compiled_artifacts.schema.json")).validate(data)
    assert CompiledArtifacts.model_validate(data).product.name == "shop"
