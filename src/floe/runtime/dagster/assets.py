"""One Dagster asset per dlt resource, materialized by floe's ingestion runtime.

``@dlt_assets`` builds the asset specs from the dlt source (via ``FloeTranslator``); the body
does not call ``dlt.run`` but the same plugin ``floe run`` uses, so a Dagster run gets the same
atomic Iceberg commits and the same cursor handling.

No ``from __future__ import annotations`` here: Dagster inspects the ``context`` annotation of
the decorated functions when they are defined.
"""

import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dagster import AssetCheckExecutionContext, AssetExecutionContext
from dagster_dlt import DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.extract.source import DltSource
from pyiceberg.exceptions import NoSuchTableError

from floe.artifacts import CompiledArtifacts, CompiledSource
from floe.logs import get_logger, mask
from floe.runtime.dagster.lineage import lineage_run
from floe.runtime.dagster.notifications import check_failure_alerts
from floe.runtime.iceberg.loads import total_rows
from floe.runtime.ingestion.errors import ErrorCategory
from floe.runtime.ingestion.landing import REJECTED_SUFFIX
from floe.runtime.ingestion.plugin import DltIngestionPlugin
from floe.runtime.ingestion.result import IngestionResult, TableResult
from floe.runtime.ingestion.runner import parquet_destination
from floe.runtime.ingestion.sources import build_source
from floe.runtime.observe.export import telemetry
from floe.runtime.observe.metrics import record_checks, record_load
from floe.runtime.plugins import IngestionConfig
from floe.runtime.quality import check_name, describe, evaluate

_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]")
log = get_logger("floe.dagster")
# dlt needs a working folder per pipeline even to describe one; nothing is written until a run
_PIPELINES_DIR = Path(tempfile.gettempdir()) / "floe-dagster-pipelines"


def asset_key(source: CompiledSource, resource: str) -> dg.AssetKey:
    """``ingestion__{source}__{resource}``: stable names other assets and alerts can refer to."""
    return dg.AssetKey(source.asset_name(resource))


def upstream_keys(artifacts: CompiledArtifacts, source: CompiledSource) -> list[dg.AssetKey]:
    """``depends_on`` as asset dependencies, so lineage shows them: a source means all of its
    assets, ``source.resource`` one of them."""
    keys: list[dg.AssetKey] = []
    for entry in source.depends_on:
        name, _, resource = entry.partition(".")
        other = artifacts.source(name)
        names = [resource] if resource else list(
            other.resources or ((other.schema_asset,) if other.schema_asset else ()))
        keys += [asset_key(other, r) for r in names]
    return keys


def _unloadable(artifacts: CompiledArtifacts, source: CompiledSource, error: BaseException,
                project_root: Path) -> dg.AssetsDefinition:
    from floe.runtime.ingestion.errors import IngestionError
    from floe.runtime.python_source.frames import user_error

    reason = (error if isinstance(error, IngestionError) else
              user_error(error, f"function {source.source_config.get('function')}", source,
                         project_root)).message
    message = (f"python source {source.name} could not be loaded: {mask(reason)} (list its "
               "resources in floe.yaml, source_config.resources, so the code location never "
               "calls it at load)")
    log.warning("dagster.source_not_loaded", source=source.name, error=message)

    @dg.asset(key=asset_key(source, source.name), group_name=_NOT_A_NAME.sub(
        "_", artifacts.product.name), description=message, kinds={"dlt", "iceberg"},
        metadata={"floe/source": source.name, "floe/unloadable": True},
        deps=upstream_keys(artifacts, source))
    def _broken() -> None:
        raise dg.Failure(description=message)

    return _broken


def _owners(owner: str | None) -> list[str]:
    if not owner:
        return []
    return [owner] if "@" in owner else [f"team:{_NOT_A_NAME.sub('_', owner)}"]


@dataclass
class FloeTranslator(DagsterDltTranslator):
    """Asset specs from the artifact: floe's keys, the product as group, no placeholder deps."""

    artifacts: CompiledArtifacts | None = None
    source: CompiledSource | None = None

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        assert self.artifacts is not None and self.source is not None
        source, resource = self.source, data.resource.name
        table = f"{source.namespace}.{source.table_for(resource)}"
        if resource == source.schema_asset:
            table = f"{source.namespace}.* (every table of schema {resource})"
        description = source.description or f"{source.source_type} source {source.name}"
        return dg.AssetSpec(
            key=asset_key(source, resource),
            group_name=_NOT_A_NAME.sub("_", self.artifacts.product.name),
            description=f"{description}: dlt resource {resource} -> Iceberg table {table} "
                        f"({source.write_mode})",
            kinds={"dlt", "iceberg"},
            owners=_owners(self.artifacts.product.owner),
            tags={"floe/source_type": source.source_type, "floe/write_mode": source.write_mode},
            metadata={"floe/destination_table": table, "floe/source": source.name,
                      "floe/resource": resource, **transform_metadata(source)},
            deps=upstream_keys(self.artifacts, source),
        )


def _unchanged(source: CompiledSource, resource: str, plugin: DltIngestionPlugin
               ) -> TableResult | None:
    """Nothing new arrived for ``resource``: report the table as it stands, if it exists."""
    try:
        table = plugin.catalog().load_table((source.namespace, source.table_for(resource)))
    except NoSuchTableError:
        return None
    snapshot = table.current_snapshot()
    return TableResult(table=f"{source.namespace}.{source.table_for(resource)}",
                       resource=resource, rows_loaded=0,
                       bytes_written=0, snapshot_id=snapshot.snapshot_id if snapshot else None,
                       total_rows=total_rows(snapshot))


def _schema_materialization(source: CompiledSource, key: dg.AssetKey,
                            result: IngestionResult) -> dg.MaterializeResult[Any]:
    """The whole-schema asset: what every reflected table of the schema got."""
    return dg.MaterializeResult(asset_key=key, metadata={
        "rows_loaded": sum(t.rows_loaded for t in result.tables),
        "bytes_written": sum(t.bytes_written for t in result.tables),
        "duration_seconds": round(result.duration_seconds, 3),
        "source_type": source.source_type,
        "tables": dg.MetadataValue.json({t.table: t.rows_loaded for t in result.tables}),
        **_evolution_metadata(result.tables)})


def transform_metadata(source: CompiledSource) -> dict[str, Any]:
    """What the source's transform does to its rows, by kind (never a salt)."""
    transform = source.transform
    if transform is None:
        return {}
    found: dict[str, Any] = {}
    for kind, label in (("expression", "computed"), ("hash", "hashed"), ("mask", "masked")):
        names = [c.name for c in transform.columns if c.kind == kind]
        if names:
            found[f"floe/{label}_columns"] = dg.MetadataValue.json(names)
    if transform.drop:
        found["floe/dropped_columns"] = dg.MetadataValue.json(list(transform.drop))
    if transform.rename:
        found["floe/renamed_by_transform"] = dg.MetadataValue.json(dict(transform.rename))
    if transform.where:
        found["floe/row_filter"] = transform.where
    return found


def _evolution_metadata(tables: Iterable[TableResult]) -> dict[str, Any]:
    """New and retyped columns, so a schema change is visible on the asset's page."""
    new = [f"{t.table}.{c}" for t in tables for c in t.new_columns]
    changed = [f"{t.table}.{c}" for t in tables for c in t.type_changes]
    renamed = [f"{t.table}.{r}" for t in tables for r in t.renamed]
    metadata: dict[str, Any] = {}
    if renamed:
        metadata["renamed_columns"] = dg.MetadataValue.json(renamed)
    if new:
        metadata["new_columns"] = dg.MetadataValue.json(new)
    if changed:
        metadata["type_changes"] = dg.MetadataValue.json(changed)
    return metadata


def _materializations(source: CompiledSource, keys: dict[dg.AssetKey, str],
                      result: IngestionResult, plugin: DltIngestionPlugin
                      ) -> Iterator[dg.MaterializeResult[Any]]:
    if source.schema_asset is not None:
        for key in keys:
            yield _schema_materialization(source, key, result)
        return
    tables: dict[str | None, TableResult] = {t.resource: t for t in result.tables}
    for key, resource in keys.items():
        table = tables.get(resource) or _unchanged(source, resource, plugin)
        metadata: dict[str, Any] = {
            "rows_loaded": table.rows_loaded if table else 0,
            "bytes_written": table.bytes_written if table else 0,
            "duration_seconds": round(result.duration_seconds, 3),
            "source_type": source.source_type,
            "destination_table": f"{source.namespace}.{source.table_for(resource)}",
            **transform_metadata(source),
        }
        if table is not None and table.snapshot_id is not None:
            metadata["snapshot_id"] = str(table.snapshot_id)
        if table is not None and table.total_rows is not None:
            metadata["dagster/row_count"] = table.total_rows
        if table is not None:
            metadata.update(_evolution_metadata([table]))
        if table is not None and table.versions_opened is not None:  # a history (scd2) table
            metadata["versions_opened"] = table.versions_opened
            metadata["versions_closed"] = table.versions_closed or 0
        if result.warnings:  # skipped bad rows, variant columns, a glob that matched nothing
            metadata["warnings"] = "\n".join(result.warnings)
        quarantined = [t for t in result.tables if t.table.endswith(REJECTED_SUFFIX)]
        if quarantined:
            metadata["rows_quarantined"] = sum(t.rows_loaded for t in quarantined)
            metadata["quarantine_table"] = quarantined[0].table
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def described_source(source: CompiledSource, project_root: Path) -> DltSource:
    """A dlt source with the compiled resource names and no data.

    Asset specs only need names, and the artifact already has them; building the real source
    would parse credentials (which need secrets that a code location may not have at load
    time) and cost more per source.  A ``sql_database`` source that lists no tables has one
    asset for its whole schema (``schema_asset``): its tables are reflected at run time.
    """
    names = source.resources or ((source.schema_asset,) if source.schema_asset else ())
    if not names:
        return build_source(source, project_root)

    @dlt.source(name=source.name)
    def compiled() -> Any:
        return [dlt.resource([], name=name) for name in names]

    return compiled()


def ingestion_assets(artifacts: CompiledArtifacts, source: CompiledSource,
                     plugin: DltIngestionPlugin, project_root: Path) -> dg.AssetsDefinition:
    try:
        dlt_source = described_source(source, project_root)
    except Exception as exc:
        if source.source_type != "python":
            raise
        # a python source without `resources:` is called at load to learn its resources: a
        # broken one takes only itself down, as an asset that says why when it runs
        return _unloadable(artifacts, source, exc, project_root)
    pipeline = dlt.pipeline(pipeline_name=source.pipeline_name, dataset_name=source.namespace,
                            destination=parquet_destination(),
                            pipelines_dir=str(_PIPELINES_DIR))
    resources = {asset_key(source, name): name for name in dlt_source.resources}

    @dlt_assets(dlt_source=dlt_source, dlt_pipeline=pipeline,
                name=_NOT_A_NAME.sub("_", f"ingestion__{source.name}"),
                # runs of one source queue when the instance limits pools (writer fencing keeps
                # them safe when it does not)
                pool=_NOT_A_NAME.sub("_", f"floe_{source.name}"),
                dagster_dlt_translator=FloeTranslator(artifacts=artifacts, source=source))
    def _ingest(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult[Any]]:
        selected = {k: r for k, r in resources.items() if k in context.selected_asset_keys}
        subset = tuple(selected.values()) if len(selected) < len(resources) else None
        if source.schema_asset is not None:
            subset = None
        # Dagster's RetryPolicy retries the step: floe does not retry inside it as well
        config = IngestionConfig(source, artifacts.environment, project_root, resources=subset,
                                 retry_here=False)
        with lineage_run(artifacts, source, list(selected.values())) as lineage:
            result = plugin.run(plugin.create_pipeline(config))
            lineage.finish(result.success, "; ".join(result.errors))
        metrics = telemetry(artifacts.environment)  # the same metrics as floe run, per step
        record_load(metrics.instruments, artifacts.product.name, source, result)
        metrics.flush()
        if not result.success:
            transient = result.error_category == ErrorCategory.TRANSIENT.value
            raise dg.Failure(description="; ".join(result.errors), allow_retries=transient,
                             metadata={"error_category": result.error_category or "unknown"})
        yield from _materializations(source, selected, result, plugin)

    return _ingest


def quality_checks(artifacts: CompiledArtifacts, source: CompiledSource, resource: str,
                   plugin: DltIngestionPlugin) -> dg.AssetChecksDefinition | None:
    """The source's ``checks:`` on one resource's table, read after each materialization."""
    if not source.checks or source.schema_asset is not None:
        return None  # a whole-schema asset has no one table to check (floe run checks each)
    key = asset_key(source, resource)
    # error-severity checks block: a failing one fails the run, as it fails `floe run`
    specs = [dg.AssetCheckSpec(check_name(c), asset=key, description=describe(c),
                               blocking=c.severity == "error")
             for c in source.checks]
    identifier = (source.namespace, source.table_for(resource))

    @dg.multi_asset_check(specs=specs, name=f"checks__{key.path[-1]}", can_subset=True)
    def _checks(context: AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        table = plugin.catalog().load_table(identifier)
        wanted = {k.name for k in context.selected_asset_check_keys}
        failed: list[str] = []
        outcomes: list[Any] = []
        for check in source.checks:
            if check_name(check) not in wanted:
                continue
            outcome = evaluate(table, check, source, resource, plugin.project_root)
            outcomes.append(outcome)
            if not outcome.passed:
                failed.append(f"{key.to_user_string()}:{outcome.name}")
            yield dg.AssetCheckResult(
                asset_key=key, check_name=outcome.name, passed=outcome.passed,
                severity=dg.AssetCheckSeverity.WARN if outcome.severity == "warn"
                else dg.AssetCheckSeverity.ERROR,
                description=outcome.message,
                metadata={"message": outcome.message, **outcome.metadata})
        metrics = telemetry(artifacts.environment)
        record_checks(metrics.instruments, artifacts.product.name, source.name, outcomes)
        metrics.flush()
        check_failure_alerts(artifacts, key.to_user_string(), failed, context)

    return _checks
