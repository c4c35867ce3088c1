"""OpenLineage run events for ingestion assets, sent only when ``OPENLINEAGE_URL`` is set.

Input dataset = the source (``{source_type}://{source}`` / resource), output = the Iceberg
table in the environment's catalog, so lineage tools connect the raw system to Bronze.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from floe.artifacts import CompiledArtifacts, CompiledSource
from floe.logs import get_logger, mask

PRODUCER = "https://github.com/floe-dev/floe"
log = get_logger("floe.lineage")


class LineageRun:
    """One OpenLineage run: START when opened, COMPLETE or FAIL when finished."""

    def __init__(self, client: Any, artifacts: CompiledArtifacts, source: CompiledSource,
                 resources: list[str]) -> None:
        self.client, self.run_id = client, str(uuid.uuid4())
        catalog = artifacts.environment.catalog
        self.job_namespace = artifacts.product.name
        self.job_name = f"ingestion__{source.name}"
        self.inputs = [(f"{source.source_type}://{source.name}", r) for r in resources]
        self.outputs = [(f"iceberg://{catalog.name}",
                         f"{source.namespace}.{source.table_for(r)}") for r in resources]
        self.source = source

    def emit(self, state: str, error: str | None = None) -> None:
        if self.client is None:
            return
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )
        from openlineage.client.facet_v2 import error_message_run
        from openlineage.client.generated.base import RunFacet

        facets: dict[str, RunFacet] = ({"errorMessage": error_message_run.ErrorMessageRunFacet(
            message=mask(error), programmingLanguage="python")} if error else {})
        event = RunEvent(
            eventType=RunState[state], eventTime=dt.datetime.now(dt.UTC).isoformat(),
            run=Run(runId=self.run_id, facets=facets),
            job=Job(namespace=self.job_namespace, name=self.job_name), producer=PRODUCER,
            inputs=[InputDataset(namespace=ns, name=name) for ns, name in self.inputs],
            outputs=[OutputDataset(namespace=ns, name=name, facets=self._columns(source))
                     for (ns, name), source in zip(self.outputs, self.inputs, strict=True)])
        try:
            self.client.emit(event)
        except Exception as exc:  # lineage is best effort: never fail a load for it
            log.warning("lineage.emit_failed", state=state, error=mask(str(exc)))

    def _columns(self, source: tuple[str, str]) -> dict[str, Any]:
        """Column lineage where floe.yaml knows it: each transform column from the source
        columns it reads, renames, and the filter's columns as indirect lineage."""
        transform = self.source.transform
        if transform is None:
            return {}
        from openlineage.client.facet_v2 import column_lineage_dataset as facet

        def inputs(columns: tuple[str, ...], kind: str, subtype: str, masking: bool = False
                   ) -> list[Any]:
            return [facet.InputField(namespace=source[0], name=source[1], field=column,
                                     transformations=[facet.Transformation(
                                         type=kind, subtype=subtype, masking=masking)])
                    for column in columns]

        fields = {old_new[1]: facet.Fields(inputFields=inputs((old_new[0],), "DIRECT",
                                                                "IDENTITY"))
                  for old_new in transform.rename.items()}
        for column in transform.columns:
            out = transform.output_name(column.name) if column.replace else column.name
            fields[out] = facet.Fields(
                inputFields=inputs(column.reads, "DIRECT", "TRANSFORMATION",
                                   masking=column.kind != "expression"),
                transformationDescription=column.expression or column.kind)
        dataset = inputs(transform.where_reads, "INDIRECT", "FILTER")
        return {"columnLineage": facet.ColumnLineageDatasetFacet(fields=fields,
                                                                 dataset=dataset)}

    def finish(self, success: bool, error: str) -> None:
        self.emit("COMPLETE" if success else "FAIL", None if success else error)


@contextmanager
def lineage_run(artifacts: CompiledArtifacts, source: CompiledSource, resources: list[str]
                ) -> Iterator[LineageRun]:
    client = None
    if os.environ.get("OPENLINEAGE_URL"):
        from openlineage.client import OpenLineageClient

        client = OpenLineageClient()  # transport from OPENLINEAGE_URL / OPENLINEAGE_API_KEY
    run = LineageRun(client, artifacts, source, resources)
    run.emit("START")
    try:
        yield run
    except BaseException as exc:
        run.emit("FAIL", f"{type(exc).__name__}: {exc}")
        raise
