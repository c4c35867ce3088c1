"""One ``floe run`` of a source inside the bench process, timed as a user's run is once the
artifact exists: compiling and opening the catalog come first, outside the timed part."""

from __future__ import annotations

import time
from pathlib import Path

from floe.compiler import CompileRequest, compile_project
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.ingestion.result import IngestionResult
from floe.runtime.ingestion.runner import run_source


def timed_run(root: Path, source: str, environ: dict[str, str]) -> tuple[IngestionResult, float]:
    """The run's result and its in-process seconds; raises if it failed."""
    artifacts = compile_project(CompileRequest(
        floe_file=root / "floe.yaml", output_dir=root / "target", environ=environ))
    catalog = open_catalog(artifacts.environment, root)
    started = time.perf_counter()
    result = run_source(artifacts.source(source), catalog, root, environ=environ)
    seconds = time.perf_counter() - started
    assert result.success, result.errors
    return result, seconds
