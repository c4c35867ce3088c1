"""floe's dlt ingestion plugin: the ``IngestionPlugin`` interface over ``runner.run_source``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from pyiceberg.catalog import Catalog

from floe import __version__
from floe.artifacts import EnvironmentConfig
from floe.logs import mask
from floe.runtime.iceberg.catalog import connect_catalog
from floe.runtime.ingestion.errors import SourceConnectionError
from floe.runtime.ingestion.result import IngestionResult
from floe.runtime.ingestion.runner import run_source
from floe.runtime.plugins import (
    FLOE_API_VERSION,
    HealthState,
    HealthStatus,
    IngestionConfig,
    IngestionPlugin,
    PluginMetadata,
)

tracer = trace.get_tracer("floe.ingestion")


@dataclass(frozen=True)
class DltPipeline:
    """A source ready to run: its catalog is open and reachable."""

    config: IngestionConfig
    catalog: Catalog


class DltIngestionPlugin(IngestionPlugin):
    def __init__(self, environment: EnvironmentConfig | None = None,
                 project_root: Path | None = None) -> None:
        self.environment = environment
        self.project_root = project_root or Path.cwd()
        self._catalogs: dict[tuple[str, Path], Catalog] = {}

    def _catalog(self, environment: EnvironmentConfig, project_root: Path) -> Catalog:
        """One connection per environment: the health check and every pipeline share it."""
        key = (environment.model_dump_json(), project_root)
        if key not in self._catalogs:
            self._catalogs[key] = connect_catalog(environment, project_root)
        return self._catalogs[key]

    def catalog(self) -> Catalog:
        """The configured environment's catalog (what quality checks read)."""
        if self.environment is None:
            raise SourceConnectionError("no environment configured")
        return self._catalog(self.environment, self.project_root)

    @property
    def metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="dlt", version=__version__, floe_api_version=FLOE_API_VERSION,
            source_types=("rest_api", "sql_database", "filesystem", "postgres_cdc", "mysql_cdc",
                          "python"),
            write_modes=("append", "replace", "merge"),
            schema_contracts=("evolve", "freeze", "discard_value"))

    @property
    def is_external(self) -> bool:
        return False

    def startup(self) -> None:
        for module, extra in (("dlt", "floe[runtime]"), ("pyiceberg", "floe[runtime]")):
            try:
                __import__(module)
            except ImportError as exc:
                raise ImportError(f"the dlt ingestion plugin needs {module}: "
                                  f"pip install '{extra}'") from exc

    def health_check(self) -> HealthStatus:
        """About now: the shared connection is reused, but asked again every time."""
        if self.environment is None:
            return HealthStatus(HealthState.DEGRADED, "no environment configured")
        catalog_config = self.environment.catalog
        try:
            self._catalog(self.environment, self.project_root).list_namespaces()
        except SourceConnectionError as exc:
            return HealthStatus(HealthState.UNHEALTHY, exc.message)
        except Exception as exc:
            return HealthStatus(HealthState.UNHEALTHY,
                                f"Iceberg catalog {catalog_config.uri or catalog_config.type} "
                                f"is not reachable: {type(exc).__name__}: {mask(str(exc))}")
        return HealthStatus(HealthState.HEALTHY,
                            f"catalog {self.environment.catalog.name} reachable")

    def get_destination_config(self, environment: EnvironmentConfig) -> dict[str, Any]:
        """Where data lands, with secrets left as references (safe to log or show)."""
        catalog = environment.catalog
        attributes = {"ingestion.catalog_type": catalog.type,
                      "ingestion.catalog_name": catalog.name}
        with tracer.start_as_current_span("floe.ingestion.get_destination_config",
                                          attributes=attributes):
            config: dict[str, Any] = {"destination": "iceberg", "catalog_type": catalog.type,
                                      "catalog_name": catalog.name, "uri": catalog.uri,
                                      "warehouse": catalog.warehouse}
            if environment.storage is not None:
                config["storage"] = environment.storage.model_dump(exclude_none=True)
            return config

    def create_pipeline(self, config: IngestionConfig) -> DltPipeline:
        source = config.source
        attributes = {"ingestion.source_type": source.source_type,
                      "ingestion.destination_table": source.destination_table,
                      "ingestion.write_mode": source.write_mode}
        with tracer.start_as_current_span("floe.ingestion.create_pipeline",
                                          attributes=attributes):
            try:
                catalog = self._catalog(config.environment, config.project_root)
            except SourceConnectionError as exc:
                exc.source_type, exc.pipeline_name = source.source_type, source.pipeline_name
                exc.destination_table = source.destination_table
                raise
            return DltPipeline(config, catalog)

    def shutdown(self) -> None:
        self._catalogs.clear()

    def run(self, pipeline: Any) -> IngestionResult:
        if not isinstance(pipeline, DltPipeline):
            raise TypeError("run() takes the pipeline returned by create_pipeline()")
        config = pipeline.config
        return run_source(config.source, pipeline.catalog, config.project_root,
                          full_refresh=config.full_refresh, resources=config.resources,
                          retry_here=config.retry_here)
