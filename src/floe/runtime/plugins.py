"""The ingestion plugin interface and its discovery through ``importlib.metadata`` entry points.

A plugin registers under the group ``floe.ingestion`` (floe's own: ``dlt``).  The runtime asks
for one by name; nothing else in floe needs to know which implementation loads the data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from floe.artifacts import CompiledSource, EnvironmentConfig
from floe.errors import FloeError
from floe.runtime.ingestion.result import IngestionResult

ENTRY_POINT_GROUP = "floe.ingestion"
FLOE_API_VERSION = "1.0"


class HealthState(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class HealthStatus:
    state: HealthState
    message: str = ""


@dataclass(frozen=True)
class PluginMetadata:
    name: str
    version: str
    floe_api_version: str
    source_types: tuple[str, ...]
    write_modes: tuple[str, ...]
    schema_contracts: tuple[str, ...]


@dataclass(frozen=True)
class IngestionConfig:
    """What one pipeline needs: a compiled source and where it lands."""

    source: CompiledSource
    environment: EnvironmentConfig
    project_root: Path
    full_refresh: bool = False
    resources: tuple[str, ...] | None = None  # a subset of the source's dlt resources
    retry_here: bool = True  # False when the orchestrator retries the step (Dagster)


class IngestionPlugin(ABC):
    """Creates and runs ingestion pipelines for compiled sources."""

    @property
    @abstractmethod
    def metadata(self) -> PluginMetadata: ...

    @property
    @abstractmethod
    def is_external(self) -> bool:
        """True when the work runs in an external service rather than in this process."""

    @abstractmethod
    def create_pipeline(self, config: IngestionConfig) -> Any: ...

    @abstractmethod
    def run(self, pipeline: Any) -> IngestionResult: ...

    @abstractmethod
    def get_destination_config(self, environment: EnvironmentConfig) -> dict[str, Any]: ...

    def health_check(self) -> HealthStatus:
        return HealthStatus(HealthState.HEALTHY)

    def startup(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Called once before the first pipeline; raise ImportError for missing packages."""

    def shutdown(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Called once after the last pipeline."""


def discover_ingestion_plugins() -> dict[str, type[IngestionPlugin]]:
    """Every installed plugin class by name (importing only what is registered)."""
    found: dict[str, type[IngestionPlugin]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        plugin = entry.load()
        if isinstance(plugin, type) and issubclass(plugin, IngestionPlugin):
            found[entry.name] = plugin
    return found


def load_ingestion_plugin(name: str = "dlt", **options: Any) -> IngestionPlugin:
    plugins = discover_ingestion_plugins()
    if name not in plugins:
        known = ", ".join(sorted(plugins)) or "none (install floe[runtime])"
        raise FloeError(f"no ingestion plugin named '{name}' is installed; installed: {known}")
    return plugins[name](**options)
