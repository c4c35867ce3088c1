"""Run one compiled source: dlt extracts and normalizes to parquet, floe commits to Iceberg.

The order is what makes a load exactly-once:
1. restore each resource's incremental state from its Iceberg table (the only state store),
   remembering the state token each table had (writer fencing, see ``iceberg/commit.py``);
2. extract + normalize in a throw-away dlt working folder (retried with backoff on TRANSIENT
   errors such as HTTP 429/503 or timeouts), within the source's ``timeout_seconds``;
3. commit each table in one transaction that also carries the source's new state; child tables
   (dlt transformers) before their parents, and if a later table fails the earlier tables of
   the same load are rolled back, so a parent's cursor never runs ahead of its children.
A crash before 3 leaves table and cursor as they were; the next run re-reads the same rows.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
from dlt.common.pipeline import NormalizeInfo
from dlt.pipeline.pipeline import Pipeline
from opentelemetry import trace
from pyiceberg.catalog import Catalog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from floe.artifacts import CDC_SOURCE_TYPES, CompiledSource
from floe.logs import get_logger, mask
from floe.runtime.cdc.commit import Replicated
from floe.runtime.iceberg.commit import commit_table_load, undo_commit
from floe.runtime.iceberg.loads import UNFENCED, CommitResult, TableLoad
from floe.runtime.iceberg.state import SourceState, recorded_states, restore_states
from floe.runtime.ingestion.column_identity import ColumnIds, source_column_ids
from floe.runtime.ingestion.deadline import Deadline
from floe.runtime.ingestion.errors import (
    DestinationWriteError,
    ErrorCategory,
    IngestionError,
    SourceConnectionError,
    SourceTimeoutError,
    about,
    categorize_error,
)
from floe.runtime.ingestion.landing import REJECTED_SUFFIX, FileReader, rejected_rows
from floe.runtime.ingestion.result import IngestionResult, TableResult
from floe.runtime.ingestion.sources import (
    build_source,
    empty_landing,
    landing_reader,
    missing_driver,
    resolved_config,
    shaped_at_extract,
)
from floe.runtime.ingestion.sql_mistakes import explain_sql_mistake
from floe.runtime.observe.failures import record_failure
from floe.runtime.python_source import LoadHints, resource_hints
from floe.runtime.python_source.frames import user_error
from floe.runtime.transforms import TableTransform
from floe.runtime.transforms.files import Shaper

# dlt sets its logger level from its own config on every pipeline; keep its chatter out of the
# CLI unless the user asked for more (FLOE_LOG_LEVEL / --log-level still applies to floe's logs).
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
# dlt writes one Parquet file per table per load unless told to rotate, and floe registers those
# files as the table's data files (iceberg/register.py); a merge rewrites whole files, so one
# 10M-row load would become one file that every later merge touching it rewrites whole.  Files
# of ~48 MB (what pyiceberg writes for floe's 128 MB Arrow target) keep merges and scans fine.
os.environ.setdefault("DATA_WRITER__FILE_MAX_BYTES", str(48 * 1024 * 1024))
# Arrow pieces of one table that differ only in columns (a landing file with a variant column, or
# without one the others have) are concatenated losslessly; pieces that cannot be are written to
# a file of their own (dlt's default, "none", fails the load instead).  Types are never changed.
os.environ.setdefault("DATA_WRITER__ARROW_CONCAT_PROMOTE_OPTIONS", "default")
log = get_logger("floe.ingestion")
tracer = trace.get_tracer("floe.ingestion")


def parquet_destination() -> Any:
    """dlt needs a destination to normalize to parquet; floe commits the files itself.

    ``max_table_nesting=0`` keeps nested objects and lists in their row as JSON: a Bronze
    record stays whole, and a merge replaces it whole (no child tables to keep in step).
    """
    return dlt.destination(lambda items, table: None, name="floe_iceberg",
                           loader_file_format="parquet", batch_size=0,
                           max_table_nesting=0)()


def _identifier(source: CompiledSource, table: str) -> tuple[str, str]:
    return (source.namespace, table)


def _inject_states(pipeline: Pipeline, source: CompiledSource, resources: list[str],
                   restored: dict[str, SourceState]) -> None:
    with pipeline.managed_state() as state:
        sources = state.setdefault("sources", {})
        for resource in resources:
            record = restored.get(source.table_for(resource))
            if record is None or record.state is None:
                continue
            saved = record.state
            source_section = sources.setdefault(saved["section"], {})
            # source-level state (dlt.current.source_state(): a queue offset, a token) is the
            # same in every table of the load, which commit all or nothing
            source_section.update(saved.get("source", {}))
            section = source_section.setdefault("resources", {})
            if "resources" in saved:
                section.update(saved["resources"])
            else:
                section[resource] = saved["state"]


def _resource_state(pipeline: Pipeline, resource: str, only_resource: bool,
                    with_source_state: bool = False) -> dict[str, Any] | None:
    """The state to commit with ``resource``'s table.

    A source with one resource commits its whole section: dlt keeps some cursors under
    derived names (the filesystem file cursor lives under ``filesystem_<resource>``).  A python
    source's own source-level keys (``dlt.current.source_state()``) go with every table.
    """
    for section, section_state in pipeline.state.get("sources", {}).items():
        resources = section_state.get("resources", {})
        shared = {k: v for k, v in section_state.items() if k != "resources"} \
            if with_source_state else {}
        record: dict[str, Any] | None = None
        if only_resource and (resources or shared):
            record = {"section": section, "resources": resources}
        elif resources.get(resource) is not None or shared:
            record = {"section": section, "state": resources.get(resource, {})}
        if record is not None:
            return {**record, "source": shared} if shared else record
    return None


class _Extracted:
    def __init__(self, pipeline: Pipeline, info: NormalizeInfo, resources: list[str],
                 transformers: set[str], tokens: dict[str, str | None] | None,
                 column_ids: dict[str, ColumnIds], reader: FileReader | None = None,
                 first_load: bool = False, rejected_table: str = "",
                 hints: dict[str, LoadHints] | None = None) -> None:
        self.pipeline = pipeline
        self.reader = reader  # a filesystem source's: its bad rows, skipped or quarantined
        self.first_load = first_load  # no table held a state for this source yet
        self.rejected_table = rejected_table  # where quarantined rows land
        self.hints = hints or {}  # python sources: per resource, floe.yaml's or its own
        self.column_ids = column_ids  # source table -> {attnum: name} (PostgreSQL)
        self.info = info
        self.resources = resources
        self.transformers = transformers  # resources fed by another resource (children)
        self.tokens = tokens  # table -> state token at restore; None: not restored (refresh)
        self.landed: dict[str, int] = {}  # rows a transform let through, by table
        self.shaper: Shaper | None = None  # the source's transform, if it has one
        self.started_at: float | None = None  # the run's start (epoch seconds)

    @property
    def row_counts(self) -> dict[str, int]:
        counts = {table: self.landed.get(table, int(rows))
                  for table, rows in self.info.row_counts.items() if not table.startswith("_dlt")}
        if self.reader is not None and self.reader.rejected:
            counts[self.rejected_table] = len(self.reader.rejected)
        return counts

    def files_by_table(self, workdir: Path) -> dict[str, list[str]]:
        files: dict[str, list[str]] = defaultdict(list)
        if self.reader is not None and self.reader.rejected:  # committed first (see order)
            path = workdir / "rejected.parquet"
            pq.write_table(rejected_rows(self.reader.rejected), path)
            files[self.rejected_table].append(str(path))
        for load_id in self.pipeline.list_normalized_load_packages():
            package = self.pipeline.get_load_package_info(load_id)
            for job in package.jobs.get("new_jobs", []):
                table = job.job_file_info.table_name
                if not table.startswith("_dlt"):
                    files[table].append(job.file_path)
        return dict(files)

    def load_id(self) -> str:
        ids = self.info.loads_ids
        return ids[-1] if ids else "empty"


def _extract(source: CompiledSource, catalog: Catalog, project_root: Path, workdir: Path,
             full_refresh: bool, environ: Mapping[str, str] | None,
             selected: Sequence[str] | None) -> _Extracted:
    reader = (landing_reader(source.source_config, source.bad_rows)
              if source.source_type == "filesystem" else None)
    pipeline = dlt.pipeline(
        pipeline_name=source.pipeline_name, pipelines_dir=str(workdir),
        destination=parquet_destination(), dataset_name=source.namespace)
    restored: dict[str, SourceState] = {}
    python = source.source_type == "python"
    if python and not full_refresh:
        # a python source may read its state when it is called (dlt.current.source_state()):
        # restore it into the active pipeline first, from the tables it has loaded so far
        if source.resources:
            known = list(source.resources)
            restored = restore_states(catalog, source.namespace, source.pipeline_name,
                                      [source.table_for(r) for r in known])
        else:  # one table per resource, named after it: the tables holding its records
            restored = recorded_states(catalog, source.namespace, source.pipeline_name)
            known = list(restored)
        _inject_states(pipeline, source, known, restored)
    dlt_source = build_source(source, project_root, environ, reader)
    if selected is not None:
        dlt_source = dlt_source.with_resources(*selected)
    resources = list(dlt_source.selected_resources.keys())
    hints = resource_hints(dlt_source, source) if python else None
    transformers = {name for name, resource in dlt_source.selected_resources.items()
                    if resource.is_transformer}
    tokens: dict[str, str | None] | None = None
    if not full_refresh:
        tables = [source.table_for(r) for r in resources]
        restored.update(restore_states(catalog, source.namespace, source.pipeline_name,
                                       [t for t in tables if t not in restored]))
        if not python:
            _inject_states(pipeline, source, resources, restored)
        tokens = {table: restored[table].token for table in tables}
    first_load = tokens is None or all(
        record.state is None for record in restored.values())
    column_ids: dict[str, ColumnIds] = {}
    if source.source_type == "sql_database":
        config = resolved_config(source, environ)
        column_ids = source_column_ids(config.get("credentials"), config.get("schema"),
                                       config.get("tables"))
    shaper = _shape(source, dlt_source, hints, full_refresh, environ, project_root)
    pipeline.extract(dlt_source)
    info = pipeline.normalize()
    extracted = _Extracted(pipeline, info, resources, transformers, tokens, column_ids, reader,
                           first_load, source.table_for(resources[0]) + REJECTED_SUFFIX
                           if reader is not None else "", hints)
    extracted.shaper = shaper
    return extracted


def _shape(source: CompiledSource, dlt_source: Any, hints: dict[str, LoadHints] | None,
           full_refresh: bool, environ: Mapping[str, str] | None, project_root: Path
           ) -> Shaper | None:
    """The transform as a map step on every resource (after its incremental cursor, so the
    cursor sees every row the source sent)."""
    transform = _transformer(source, environ)
    if transform is None:
        return None
    shaper = Shaper(transform)
    at_extract = shaped_at_extract(source, resolved_config(source, environ), project_root)
    for name, resource in dlt_source.selected_resources.items():
        hint = (hints or {}).get(name)
        mode = "replace" if full_refresh else hint.write_mode if hint else source.write_mode
        key = hint.primary_key if hint else source.primary_key
        resource.add_map(shaper.step(f"{source.namespace}.{source.table_for(name)}", key,
                                     mode == "merge" and source.history is None, at_extract))
        hinted = resource.columns  # declared: dlt would add them back as nulls
        if at_extract and isinstance(hinted, dict):
            for column in transform.reshaped():
                hinted.pop(column, None)
    return shaper


def _is_transient(error: BaseException) -> bool:
    return categorize_error(error) is ErrorCategory.TRANSIENT


def _log_retry(source: CompiledSource, retried: list[int] | None = None) -> Any:
    def _before_sleep(state: RetryCallState) -> None:
        if retried is not None:
            retried[0] += 1
        error = state.outcome.exception() if state.outcome else None
        cause = _root_cause(error) if error is not None else None
        log.warning("ingestion.retry", pipeline_id=source.pipeline_name,
                    attempt=state.attempt_number,
                    error=mask(f"{type(cause).__name__}: {cause}") if cause else "",
                    sleep_seconds=round(state.upcoming_sleep, 2))
    return _before_sleep


def _retrying(source: CompiledSource, retry_here: bool, retried: list[int] | None = None
              ) -> Retrying:
    retry = source.retry
    return Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(retry.max_retries + 1 if retry_here else 1),
        wait=wait_exponential(multiplier=retry.initial_delay_seconds,
                              min=retry.initial_delay_seconds, max=retry.max_delay_seconds),
        before_sleep=_log_retry(source, retried), reraise=True)


def _replicate(source: CompiledSource, catalog: Catalog, workroot: Path, full_refresh: bool,
               environ: Mapping[str, str] | None, deadline: Deadline, retry_here: bool,
               retried: list[int], started_at: float) -> Replicated:
    """postgres_cdc and mysql_cdc: their own readers (logical replication, the binlog), the
    same commits and fencing."""
    if source.source_type == "mysql_cdc":
        from floe.runtime.cdc.mysql.load import load_changes
    else:
        from floe.runtime.cdc.postgres.load import load_changes

    config = resolved_config(source, environ)
    transform = _transformer(source, environ, dlt_names=False)
    for attempt in _retrying(source, retry_here, retried):
        with attempt:
            return load_changes(source, catalog, config, workroot, full_refresh, deadline,
                                f"{time.time():.6f}", transform, started_at)
    raise AssertionError("unreachable: tenacity reraises")


def extract_with_retry(source: CompiledSource, catalog: Catalog, project_root: Path,
                       workroot: Path, full_refresh: bool, environ: Mapping[str, str] | None,
                       selected: Sequence[str] | None = None, retry_here: bool = True,
                       retried: list[int] | None = None) -> _Extracted:
    """``retry_here=False`` when an orchestrator retries the whole step (Dagster's
    RetryPolicy): retries live in one layer, so attempts stay ``max_retries + 1``."""
    attempts = _retrying(source, retry_here, retried)
    for number, attempt in enumerate(attempts):
        with attempt:
            workdir = workroot / f"attempt-{number}"
            return _extract(source, catalog, project_root, workdir, full_refresh, environ,
                            selected)
    raise AssertionError("unreachable: tenacity reraises")


def _commit_order(source: CompiledSource, extracted: _Extracted,
                  tables: list[str]) -> list[str]:
    """Children (transformer resources) and the quarantine table first: a parent's cursor must
    not commit ahead of the rows fetched for it, nor a file cursor ahead of its bad rows."""
    resource_of = {source.table_for(r): r for r in extracted.resources}
    return sorted(tables, key=lambda t: t != extracted.rejected_table
                  and resource_of.get(t) not in extracted.transformers)


def _undo(catalog: Catalog, committed: list[tuple[str, str | None, CommitResult]]) -> bool:
    """Roll back this load's earlier commits; False if any table moved on meanwhile."""
    undone = True
    for _, _, result in reversed(committed):
        try:
            undo_commit(catalog, result)
        except Exception as exc:
            log.warning("ingestion.rollback_failed", table=".".join(result.identifier),
                        error=mask(str(exc)))
            undone = False
    return undone


def _transformer(source: CompiledSource, environ: Mapping[str, str] | None,
                 dlt_names: bool = True) -> TableTransform | None:
    """The source's transform; a dlt load's columns carry dlt's snake_case names, so a name
    floe.yaml wrote as the source has it is found under that name too."""
    if source.transform is None:
        return None
    normalize = None
    if dlt_names:
        from dlt.common.normalizers.naming.snake_case import NamingConvention

        normalize = NamingConvention().normalize_identifier
    return TableTransform(source.transform, os.environ if environ is None else environ,
                          f"source {source.name}", normalize, about(source))


def _commit_all(source: CompiledSource, catalog: Catalog, extracted: _Extracted,
                full_refresh: bool, workdir: Path) -> list[tuple[str, str | None, CommitResult]]:
    results: list[tuple[str, str | None, CommitResult]] = []
    by_table = {source.table_for(r): r for r in extracted.resources}
    files_by_table = extracted.files_by_table(workdir)
    # tables fed by one another (a rest_api parent and its children, a table and its
    # quarantined rows) commit all or nothing
    python = source.source_type == "python"
    linked = (((bool(extracted.transformers) or python) and len(files_by_table) > 1)
              or extracted.rejected_table in files_by_table)
    for table in _commit_order(source, extracted, list(files_by_table)):
        resource = by_table.get(table)
        root = resource is not None
        # a table no resource is named after (a table_name override in the source config, the
        # quarantine table) is appended: the write mode and primary key are per resource
        hint = extracted.hints.get(resource) if resource else None
        declared_mode = hint.write_mode if hint else source.write_mode
        write_mode = "replace" if full_refresh else (declared_mode if root else "append")
        token = UNFENCED if extracted.tokens is None else extracted.tokens.get(table, UNFENCED)
        primary_key = (hint.primary_key if hint else source.primary_key) if root else ()
        files, left_out = files_by_table[table], list[str]()
        if extracted.shaper is not None:
            shaped = extracted.shaper.finish(f"{source.namespace}.{table}", files,
                                             workdir / "transformed" / table)
            files, left_out = shaped.files, shaped.filtered_keys
            if shaped.rows is not None:
                extracted.landed[table] = shaped.rows
        load = TableLoad(
            identifier=_identifier(source, table), files=files, delete_files=left_out,
            write_mode=write_mode,
            merge_strategy=(hint.merge_strategy if hint else source.merge_strategy)
            if root else None,
            primary_key=primary_key, schema_contract=source.schema_contract,
            state=_resource_state(extracted.pipeline, resource, len(extracted.resources) == 1,
                                  with_source_state=python) if resource else None,
            load_id=extracted.load_id(), source_key=source.pipeline_name,
            expected_token=token, recreate=full_refresh,
            # soft deletes keep the marked row as it came: only hard ones remove the key
            delete_column=source.delete_column if root and source.deletes == "hard" else None,
            partition_by=source.partition_by, sort_by=source.sort_by,
            history=source.history if root else None, started_at=extracted.started_at,
            source_columns=extracted.column_ids.get(resource) if resource else None)
        try:
            results.append((table, resource, commit_table_load(catalog, load)))
        except Exception as exc:
            undone = _undo(catalog, results) if linked and results else False
            kept = results if not undone else []
            if isinstance(exc, IngestionError):
                exc.destination_table = ".".join(load.identifier)
                exc.source_type, exc.pipeline_name = source.source_type, source.pipeline_name
                if kept:
                    exc.category, exc.explicit_category = ErrorCategory.PARTIAL, True
                raise
            committed = ", ".join(".".join(r.identifier) for _, _, r in kept)
            raise DestinationWriteError(
                f"committing {'.'.join(load.identifier)} failed: {type(exc).__name__}: "
                f"{mask(str(exc))}" + (f" ({committed} committed)" if kept else ""),
                source_type=source.source_type,
                destination_table=".".join(load.identifier),
                pipeline_name=source.pipeline_name,
                category=ErrorCategory.PARTIAL if kept else None) from exc
    return results


def _root_cause(error: BaseException) -> BaseException:
    """The error that started it: dlt wraps it in PipelineStepFailed and
    ResourceExtractionError, whose messages only say where it happened."""
    for _ in range(10):
        wrapped = getattr(error, "exception", None)
        inner = wrapped if isinstance(wrapped, BaseException) else error.__cause__
        if inner is None or inner is error:
            break
        error = inner
    return error


def _as_ingestion_error(source: CompiledSource, error: BaseException, project_root: Path,
                        environ: Mapping[str, str] | None) -> IngestionError:
    if isinstance(error, IngestionError):
        if error.wraps_cause and not error.explicit_category:  # a wrapper: its cause decides
            error.category = categorize_error(error)
        return error
    root = _root_cause(error)
    if isinstance(root, IngestionError):  # dlt wrapped one of ours (e.g. a timeout)
        root.source_type = root.source_type or source.source_type
        root.pipeline_name = root.pipeline_name or source.pipeline_name
        root.destination_table = root.destination_table or source.destination_table
        return root
    explained = (missing_driver(root, source)
                 or explain_sql_mistake(root, source, project_root, environ))
    if explained is not None:
        return explained
    if source.source_type == "python":  # the user's code failed: their error, their frame
        return user_error(root, f"python source {source.name}", source, project_root)
    category = categorize_error(error)
    message = f"{type(root).__name__}: {mask(str(root))}"
    kind = SourceConnectionError if category is ErrorCategory.TRANSIENT else IngestionError
    return kind(message, source_type=source.source_type,
                destination_table=source.destination_table,
                pipeline_name=source.pipeline_name, category=category)


def _landing_warnings(source: CompiledSource, project_root: Path, extracted: _Extracted,
                      environ: Mapping[str, str] | None) -> list[str]:
    """What a filesystem load should tell its user although it did not fail: bad rows it
    skipped, and a first load that found no file (a later run finding no *new* file is the
    normal, quiet case).  A landing folder that does not exist fails the load."""
    if extracted.reader is None:
        return []
    warnings = list(extracted.reader.variants)
    if extracted.reader.skipped:
        warnings.append(f"skipped {extracted.reader.skipped} bad row(s) (bad_rows: skip)")
    if not any(extracted.row_counts.values()):
        why = empty_landing(source, project_root, environ)  # raises for a missing folder
        if extracted.first_load:
            warnings.append(why)
    return warnings


def _log_evolution(bound: Any, tables: Sequence[TableResult]) -> None:
    """FR-035: every schema change a load made is an INFO event, by table."""
    for table in tables:
        if table.new_columns or table.type_changes or table.renamed:
            bound.info("schema.evolved", table=table.table, new_columns=list(table.new_columns),
                       renamed=list(table.renamed), type_changes=list(table.type_changes))


def run_source(source: CompiledSource, catalog: Catalog, project_root: Path, *,
               full_refresh: bool = False, environ: Mapping[str, str] | None = None,
               resources: Sequence[str] | None = None, retry_here: bool = True
               ) -> IngestionResult:
    """Load one source (or only its ``resources``); never raises for a failed load, the
    result says what went wrong.  ``retry_here=False`` leaves retries to the caller."""
    started, started_at, retried = time.perf_counter(), time.time(), [0]
    bound = log.bind(pipeline_id=source.pipeline_name, source=source.name,
                     source_type=source.source_type, table=source.destination_table,
                     destination_table=source.destination_table)
    attributes = {"ingestion.source_type": source.source_type,
                  "ingestion.destination_table": source.destination_table,
                  "ingestion.write_mode": source.write_mode}
    deadline = Deadline(source.timeout_seconds, SourceTimeoutError, {
        "source_type": source.source_type, "destination_table": source.destination_table,
        "pipeline_name": source.pipeline_name})
    with tracer.start_as_current_span("floe.ingestion.run", attributes=attributes) as span:
        bound.info("ingestion.start", status="running", full_refresh=full_refresh)
        try:
            with tempfile.TemporaryDirectory(prefix="floe-dlt-") as workroot:
                warnings: list[str] = []
                replicated: Replicated | None = None
                if source.source_type in CDC_SOURCE_TYPES:
                    replicated = _replicate(source, catalog, Path(workroot), full_refresh,
                                            environ, deadline, retry_here, retried,
                                            started_at)
                    committed, row_counts = replicated.committed, replicated.counts
                else:
                    with deadline.interrupting("extracting"):
                        extracted = extract_with_retry(source, catalog, project_root,
                                                       Path(workroot), full_refresh, environ,
                                                       resources, retry_here, retried)
                    deadline.check("extracting")
                    warnings = _landing_warnings(source, project_root, extracted, environ)
                    extracted.started_at = started_at
                    committed = _commit_all(source, catalog, extracted, full_refresh,
                                            Path(workroot))
                    row_counts = extracted.row_counts
        except Exception as exc:  # every failure becomes a result, with its category
            error = _as_ingestion_error(source, exc, project_root, environ)
            status = "timeout" if isinstance(error, SourceTimeoutError) else "failed"
            duration = time.perf_counter() - started
            span.set_status(trace.Status(trace.StatusCode.ERROR, error.message))
            span.set_attributes({"error.type": type(error).__name__,
                                 "error.message": error.message,
                                 "error.category": error.category.value})
            bound.warning("ingestion.failed", status=status, error=str(error),
                          category=error.category.value, duration_seconds=round(duration, 3))
            record_failure(catalog, source, str(error), error.category.value)
            return IngestionResult(source=source.name, success=False,
                                   duration_seconds=duration, errors=(str(error),),
                                   error_category=error.category.value, status=status,
                                   retries=retried[0])
        tables = tuple(
            TableResult(table=f"{source.namespace}.{table}", resource=resource,
                        rows_loaded=int(row_counts.get(table, 0)),
                        bytes_written=result.bytes_written, snapshot_id=result.snapshot_id,
                        total_rows=result.total_rows, new_columns=result.new_columns,
                        type_changes=tuple(str(c) for c in result.type_changes),
                        renamed=tuple(f"{old} -> {new}" for old, new in result.renamed),
                        versions_opened=result.versions_opened,
                        versions_closed=result.versions_closed,
                        delete_files_added=result.delete_files_added,
                        events=tuple(sorted((replicated.events.get(table) or {}).items()))
                        if replicated is not None else ())
            for table, resource, result in committed)
        bound = bound.bind(load_id=replicated.load_id if replicated is not None
                           else extracted.load_id())
        _log_evolution(bound, tables)
        rows = sum(t.rows_loaded for t in tables)
        size = sum(t.bytes_written for t in tables)
        duration = time.perf_counter() - started
        span.set_attributes({"ingestion.rows_loaded": rows, "ingestion.bytes_written": size,
                             "ingestion.duration_seconds": duration})
        bound.info("ingestion.done", status="success", rows_loaded=rows, bytes_written=size,
                   duration_seconds=round(duration, 3))
        for warning in warnings:
            bound.warning("ingestion.warning", warning=warning)
        return IngestionResult(source=source.name, success=True, rows_loaded=rows,
                               bytes_written=size, duration_seconds=duration, tables=tables,
                               warnings=tuple(warnings), retries=retried[0],
                               lag=replicated.lag if replicated is not None else None)
