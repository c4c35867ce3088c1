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


@dataclass
class Project:
    root: Path

    def write(self, text: str) -> None:
        (self.root / "floe.yaml").write_text(textwrap.dedent(text))

    def compile(self, environ: dict[str, str] | None = None) -> CompiledArtifacts:
        artifacts = compile_project(CompileRequest(
            floe_file=self.root / "floe.yaml", output_dir=self.root / "target",
            environ=environ or {}))
        write_artifacts(artifacts, self.root / "target" / "compiled_artifacts.json")
        return artifacts

    def catalog(self) -> Catalog:
        return open_catalog(self.compile().environment, self.root)

    def run(self, source: str, *, full_refresh: bool = False,
            environ: dict[str, str] | None = None) -> IngestionResult:
        artifacts = self.compile(environ)
        catalog = open_catalog(artifacts.environment, self.root, environ)
        return run_source(artifacts.source(source), catalog, self.root,
                          full_refresh=full_refresh, environ=environ)

    def read(self, table: str, sort_by: str = "id") -> list[dict[str, Any]]:
        loaded = self.catalog().load_table(tuple(table.split(".")))
        arrow: pa.Table = loaded.scan().to_arrow()
        return sorted(arrow.to_pylist(), key=lambda row: row[sort_by])

    def snapshots(self, table: str) -> int:
        return len(self.catalog().load_table(tuple(table.split("."))).snapshots())

    def columns(self, table: str) -> list[str]:
        return [f.name for f in self.catalog().load_table(tuple(table.split("."))).schema().fields]
