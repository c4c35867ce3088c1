"""Compile a floe.yaml written by a test, run it, and read the tables back with pyiceberg."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog

from floe.artifacts import CompiledArtifacts, write_artifacts
from floe.compiler import CompileRequest, compile_project
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.ingestion.result import IngestionResult
from floe.runtime.ingestion.runner import run_source
from tests.servers import GlueCatalog, RestCatalog


@dataclass
class Project:
    """A test project on the embedded catalog, or on a remote one (REST, Glue) when given."""

    root: Path
    rest: RestCatalog | GlueCatalog | None = None

    def write(self, text: str) -> None:
        text = textwrap.dedent(text)
        if self.rest is not None:
            (self.root / "platform.yaml").write_text(self.rest.platform_yaml())
            text = text.replace("\nsources:", "\nplatform: platform.yaml\nsources:", 1)
        (self.root / "floe.yaml").write_text(text)

    def _environ(self, environ: dict[str, str] | None) -> dict[str, str]:
        return {**(self.rest.secrets if self.rest else {}), **(environ or {})}

    def compile(self, environ: dict[str, str] | None = None) -> CompiledArtifacts:
        artifacts = compile_project(CompileRequest(
            floe_file=self.root / "floe.yaml", output_dir=self.root / "target",
            environment=self.rest.environment if self.rest else None,
            environ=self._environ(environ)))
        write_artifacts(artifacts, self.root / "target" / "compiled_artifacts.json")
        return artifacts

    def catalog(self) -> Catalog:
        return open_catalog(self.compile().environment, self.root, self._environ(None))

    def run(self, source: str, *, full_refresh: bool = False,
            environ: dict[str, str] | None = None) -> IngestionResult:
        artifacts = self.compile(environ)
        env = self._environ(environ)
        catalog = open_catalog(artifacts.environment, self.root, env)
        return run_source(artifacts.source(source), catalog, self.root,
                          full_refresh=full_refresh, environ=env)

    def drop_all_tables(self) -> None:
        catalog = self.catalog()
        for namespace in catalog.list_namespaces():
            for identifier in catalog.list_tables(namespace):
                catalog.drop_table(identifier)

    def read(self, table: str, sort_by: str = "id") -> list[dict[str, Any]]:
        loaded = self.catalog().load_table(tuple(table.split(".")))
        arrow: pa.Table = loaded.scan().to_arrow()
        return sorted(arrow.to_pylist(), key=lambda row: row[sort_by])

    def snapshots(self, table: str) -> int:
        return len(self.catalog().load_table(tuple(table.split("."))).snapshots())

    def columns(self, table: str) -> list[str]:
        return [f.name for f in self.catalog().load_table(tuple(table.split("."))).schema().fields]
