"""The dlt ingestion plugin: discovery, metadata, health, and running through the interface."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from floe.artifacts import CatalogConfig, EnvironmentConfig
from floe.runtime.ingestion.errors import MissingSourceDependencyError, SourceConnectionError
from floe.runtime.ingestion.plugin import DltIngestionPlugin
from floe.runtime.ingestion.sources import build_source
from floe.runtime.plugins import (
    HealthState,
    IngestionConfig,
    IngestionPlugin,
    discover_ingestion_plugins,
    load_ingestion_plugin,
)
from tests.otel import last_span
from tests.runtime.harness import Project
from tests.runtime.test_write_modes import FILES_PROJECT, drop
from tests.servers import free_port

CLOSED = EnvironmentConfig(name="prod", catalog=CatalogConfig(
    type="rest", uri=f"http://127.0.0.1:{free_port()}/api/catalog", warehouse="wh",
    credential="${secret:POLARIS_CREDENTIAL}"))


def test_discovered_through_the_entry_point() -> None:
    plugins = discover_ingestion_plugins()
    assert plugins["dlt"] is DltIngestionPlugin
    assert issubclass(DltIngestionPlugin, IngestionPlugin)
    plugin = load_ingestion_plugin("dlt")
    assert (plugin.metadata.name, plugin.metadata.floe_api_version) == ("dlt", "1.0")
    assert plugin.metadata.write_modes == ("append", "replace", "merge")
    assert plugin.is_external is False


def test_unreachable_catalog_is_unhealthy_and_refuses_pipelines(tmp_path: Path) -> None:
    plugin = DltIngestionPlugin(CLOSED, tmp_path)
    health = plugin.health_check()
    assert health.state is HealthState.UNHEALTHY
    assert CLOSED.catalog.uri is not None and CLOSED.catalog.uri in health.message
    project = Project(tmp_path)
    project.write(FILES_PROJECT.format(mode="append", extra=""))
    source = project.compile().sources[0]
    try:
        plugin.create_pipeline(IngestionConfig(source, CLOSED, tmp_path))
    except SourceConnectionError as exc:
        assert CLOSED.catalog.uri in exc.message
        assert exc.destination_table == "bronze.orders"
    else:
        raise AssertionError("create_pipeline must refuse an unreachable catalog")


def test_destination_config_keeps_secrets_as_references() -> None:
    config = DltIngestionPlugin().get_destination_config(CLOSED)
    assert config["destination"] == "iceberg"
    assert (config["uri"], config["warehouse"]) == (CLOSED.catalog.uri, "wh")
    assert "credential" not in json.dumps(config)  # where data lands, never how to log in
    span = last_span("floe.ingestion.get_destination_config")
    assert span.attributes is not None
    assert dict(span.attributes) == {"ingestion.catalog_type": "rest",
                                     "ingestion.catalog_name": CLOSED.catalog.name}


def test_runs_a_pipeline_through_the_interface(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(FILES_PROJECT.format(mode="append", extra=""))
    drop(tmp_path, "a.jsonl", [{"id": 1}, {"id": 2}])
    artifacts = project.compile()
    plugin = DltIngestionPlugin(artifacts.environment, tmp_path)
    plugin.startup()
    assert plugin.health_check().state is HealthState.HEALTHY
    pipeline = plugin.create_pipeline(IngestionConfig(artifacts.sources[0],
                                                      artifacts.environment, tmp_path))
    result = plugin.run(pipeline)
    plugin.shutdown()
    assert result.success and result.rows_loaded == 2
    span = last_span("floe.ingestion.create_pipeline")
    assert span.attributes is not None
    assert dict(span.attributes) == {"ingestion.source_type": "filesystem",
                                     "ingestion.destination_table": "bronze.orders",
                                     "ingestion.write_mode": "append"}
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 2]


def test_missing_source_package_names_the_pip_extra(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path)
    project.write(FILES_PROJECT.format(mode="append", extra=""))
    source = project.compile().sources[0]
    monkeypatch.setitem(sys.modules, "dlt.sources.filesystem", None)  # as if not installed
    with pytest.raises(ImportError) as raised:
        build_source(source, tmp_path)
    assert isinstance(raised.value, MissingSourceDependencyError)
    assert "pip install 'dlt[filesystem]'" in str(raised.value)
