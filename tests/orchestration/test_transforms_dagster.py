"""Under Dagster: a transform's asset and materializations list computed, hashed and dropped
columns (never the salt); OpenLineage carries column lineage for them; each step pushes the
same metrics as `floe run`."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from floe.runtime.dagster import build_definitions
from tests.orchestration.project import drop_orders, fresh_orders
from tests.runtime.harness import Project
from tests.servers import pushing_platform_yaml

SALT = "dagster-salt-value"

FLOE_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
    transform:
      columns:
        label: "upper(status) || '-' || id"
        status: {hash: sha256, salt: "{{ secret('PII_SALT') }}"}
      rename: {updated_at: changed_at}
      drop: [note]
      where: "id <> 2"
"""


def test_metadata_and_column_lineage(tmp_path: Path, httpserver: HTTPServer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    httpserver.expect_request("/api/v1/lineage", method="POST").respond_with_data("")
    monkeypatch.setenv("OPENLINEAGE_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("PII_SALT", SALT)
    project = Project(tmp_path)
    project.write(FLOE_YAML)
    project.compile()
    drop_orders(tmp_path, [{**o, "note": "x"} for o in fresh_orders(3)])
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    key = dg.AssetKey("ingestion__orders__orders")
    spec_metadata = defs.resolve_assets_def(key).specs_by_key[key].metadata
    assert spec_metadata["floe/computed_columns"].value == ["label"]
    assert spec_metadata["floe/hashed_columns"].value == ["status"]
    assert spec_metadata["floe/dropped_columns"].value == ["note"]
    assert spec_metadata["floe/row_filter"] == "id <> 2"

    result = dg.materialize([defs.resolve_assets_def(key)])
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_loaded"].value == 2
    assert metadata["floe/renamed_by_transform"].value == {"updated_at": "changed_at"}
    shown = json.dumps({k: str(v) for k, v in metadata.items()})
    assert SALT not in shown
    assert sorted(r["label"] for r in project.read("bronze.orders")) == ["NEW-1", "NEW-3"]

    complete = json.loads(httpserver.log[-1][0].data)
    assert complete["eventType"] == "COMPLETE"
    lineage = complete["outputs"][0]["facets"]["columnLineage"]
    label = lineage["fields"]["label"]
    assert [f["field"] for f in label["inputFields"]] == ["status", "id"]
    assert label["transformationDescription"] == "upper(status) || '-' || id"
    status = lineage["fields"]["status"]["inputFields"][0]
    assert status["transformations"][0]["masking"] is True
    assert lineage["fields"]["changed_at"]["inputFields"][0]["field"] == "updated_at"
    assert [(f["field"], f["transformations"][0]["subtype"]) for f in lineage["dataset"]] == [
        ("id", "FILTER")]
    assert SALT not in json.dumps(complete)


def test_a_dagster_step_pushes_the_same_metrics(tmp_path: Path, httpserver: HTTPServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step records and pushes what `floe run` does (platform.yaml metrics:)."""
    pushed: list[tuple[str, str]] = []

    def receive(request: Request) -> Response:
        pushed.append((request.path, request.get_data(as_text=True)))
        return Response("", status=200)

    httpserver.expect_request("/metrics/job/floe/product/shop/source/orders",
                              method="POST").respond_with_handler(receive)
    monkeypatch.setenv("PII_SALT", SALT)
    project = Project(tmp_path)
    (tmp_path / "platform.yaml").write_text(
        pushing_platform_yaml(httpserver.url_for("/").rstrip("/")))
    project.write(FLOE_YAML.replace("sources:", "platform: platform.yaml\nsources:", 1))
    project.compile()
    drop_orders(tmp_path, [{**o, "note": "x"} for o in fresh_orders(3)])
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    key = dg.AssetKey("ingestion__orders__orders")
    assert dg.materialize([defs.resolve_assets_def(key)]).success
    text = pushed[-1][1]
    assert 'floe_loads_total{status="ok"} 1' in text
    assert 'floe_load_rows_total{table="bronze.orders"} 2' in text
    assert SALT not in text
