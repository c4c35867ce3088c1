"""What `floe run`, `floe tables` and `floe show` print: progress, summaries, details."""

from __future__ import annotations

import datetime as dt
import difflib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from floe.artifacts import CompiledArtifacts, CompiledSource
from floe.errors import FloeError
from floe.logs import mask
from floe.runtime.cells import ID_COLUMN, name_column
from floe.runtime.iceberg.catalog import connect
from floe.runtime.iceberg.loads import total_rows
from floe.runtime.iceberg.position_deletes import MERGE_MODE
from floe.runtime.ingestion.result import IngestionResult
from floe.runtime.notify import Undelivered, notify
from floe.runtime.observe.export import telemetry
from floe.runtime.observe.metrics import record_checks, record_load
from floe.runtime.order import run_in_order
from floe.runtime.plugins import HealthState, IngestionConfig, load_ingestion_plugin
from floe.runtime.project import (
    load_project,
    require_environment,
    select_sources,
)
from floe.runtime.quality import CheckOutcome, check_source


def _size(num: int) -> str:
    value = float(num)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def run_with_progress(console: Console, artifacts_path: Path | None, select: Sequence[str],
                      full_refresh: bool, env: str | None, threads: int = 1) -> int:
    """Run the selected sources in dependency order, ``threads`` at a time; returns how many
    did not load (failed, timed out or skipped) plus the failing error checks."""
    project = load_project(artifacts_path)
    artifacts = project.artifacts
    require_environment(artifacts, env)
    sources = select_sources(artifacts, select)
    metrics = telemetry(artifacts.environment)  # before the loads: their spans get ids
    plugin = load_ingestion_plugin("dlt", environment=artifacts.environment,
                                   project_root=project.root)
    plugin.startup()
    health = plugin.health_check()
    if health.state is HealthState.UNHEALTHY:
        raise FloeError(f"environment '{artifacts.environment.name}': {health.message}")
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:

            def load(source: CompiledSource) -> IngestionResult:
                task = progress.add_task(f"loading {source.name} -> {source.destination_table}")
                try:
                    return plugin.run(plugin.create_pipeline(IngestionConfig(
                        source, artifacts.environment, project.root, full_refresh)))
                finally:
                    progress.remove_task(task)

            by_name = run_in_order(sources, load, threads)
    finally:
        plugin.shutdown()
    results = [by_name[s.name] for s in sources]
    checked = [(s, r) for s, r in zip(sources, results, strict=True) if r.success and s.checks]
    catalog = connect(project) if checked else None
    product = artifacts.product.name
    checks = []
    for source, result in checked:
        found = check_source(catalog, source, _resources(source, result), project.root) \
            if catalog is not None else []
        record_checks(metrics.instruments, product, source.name, [o for _, o in found])
        checks += found
    for source, result in zip(sources, results, strict=True):
        record_load(metrics.instruments, product, source, result)
    unsent = metrics.flush()
    _print_summary(console, sources, results)
    failing = _print_checks(console, checks)
    for undelivered in _notify(artifacts, sources, results, checks):
        console.print(str(undelivered), markup=False, style="yellow")
    if unsent:  # the load stands; the metrics of this run are lost, said once
        console.print(unsent, markup=False, style="yellow")
    return sum(1 for r in results if not r.success) + failing


def _resources(source: CompiledSource, result: IngestionResult) -> list[str]:
    landed = [t.resource for t in result.tables if t.resource]
    return list(dict.fromkeys([*source.resources, *landed]))


def _print_checks(console: Console, checks: Sequence[tuple[str, CheckOutcome]]) -> int:
    """The checks table; returns how many error-severity checks failed."""
    if not checks:
        return 0
    table = Table(name_column("asset"), "check", "result", "details",
                  title=f"checks: {len(checks)}")
    for asset, outcome in checks:
        result = ("[green]pass[/green]" if outcome.passed else
                  "[yellow]warn[/yellow]" if outcome.severity == "warn" else "[red]FAIL[/red]")
        table.add_row(asset, outcome.name, result, outcome.message)
    console.print(table)
    failing = sum(1 for _, o in checks if not o.passed and o.severity == "error")
    if failing:
        console.print(f"{failing} check(s) failed (severity error): the data is loaded; "
                      "fix the source or set the check's severity to warn", style="red")
    return failing


def _notify(artifacts: CompiledArtifacts, sources: Sequence[CompiledSource],
            results: Sequence[IngestionResult], checks: Sequence[tuple[str, CheckOutcome]]
            ) -> list[Undelivered]:
    """``notifications:`` fire for `floe run` too, so cron-driven runs alert like Dagster's;
    returns the alerts that could not be delivered."""
    if not artifacts.notifications:
        return []
    undelivered: list[Undelivered] = []
    run_id = uuid.uuid4().hex
    product, notifications = artifacts.product.name, artifacts.notifications
    for source, result in zip(sources, results, strict=True):
        if not result.success:
            assets = ", ".join(source.asset_name(r) for r in source.resources) or source.name
            undelivered += notify(product, notifications, "failure", asset=assets,
                                  error="; ".join(result.errors), run_id=run_id)
    failed = [f"{asset}:{outcome.name}" for asset, outcome in checks if not outcome.passed]
    if failed:
        assets = ", ".join(dict.fromkeys(name.split(":")[0] for name in failed))
        undelivered += notify(product, notifications, "check_failure", asset=assets,
                              error=f"failed checks: {', '.join(failed)}", run_id=run_id)
    elif all(r.success for r in results):
        assets = ", ".join(source.asset_name(r) for source in sources
                           for r in source.resources)
        undelivered += notify(product, notifications, "success", asset=assets, error="",
                              run_id=run_id)
    return undelivered


def _print_summary(console: Console, sources: Sequence[CompiledSource],
                   results: Sequence[IngestionResult]) -> None:
    table = Table("source", name_column(), "rows", "bytes", "seconds", "status", "schema changes",
                  title=f"floe run: {len(results)} source(s)")
    statuses = {"success": "[green]ok[/green]", "timeout": "[red]timeout[/red]",
                "skipped": "[yellow]skipped[/yellow]"}
    for source, result in zip(sources, results, strict=True):
        status = statuses.get(result.status, "[red]failed[/red]")
        if result.success and result.warnings:
            status = "[yellow]ok, warning[/yellow]"
        if result.success and not result.tables:
            table.add_row(source.name, source.destination_table, "0", _size(0),
                          f"{result.duration_seconds:.1f}", status, "")
        for item in result.tables:
            changes = ([f"+{c}" for c in item.new_columns] + list(item.type_changes)
                       + [f"renamed {r}" for r in item.renamed])
            table.add_row(source.name, item.table, f"{item.rows_loaded:,}",
                          _size(item.bytes_written), f"{result.duration_seconds:.1f}", status,
                          ", ".join(changes))
        if not result.success:
            table.add_row(source.name, source.destination_table, "-", "-",
                          f"{result.duration_seconds:.1f}", status, "")
    console.print(table)
    for result in results:
        for warning in result.warnings:
            console.print(f"{result.source}: warning: {mask(warning)}", markup=False,
                          style="yellow")
        for error in result.errors:
            console.print(f"{result.source}: {mask(error)}", markup=False, style="red")


def _all_tables(catalog: Catalog) -> list[tuple[str, ...]]:
    found = []
    for namespace in catalog.list_namespaces():
        try:
            found += catalog.list_tables(namespace)
        except NoSuchNamespaceError:
            continue
    return sorted(found)


def print_tables(console: Console, artifacts_path: Path | None) -> None:
    project = load_project(artifacts_path)
    catalog = connect(project)
    identifiers = _all_tables(catalog)
    if not identifiers:
        catalog_config = project.artifacts.environment.catalog
        console.print(f"no tables yet in catalog {catalog_config.name} "
                      f"({catalog_config.uri or catalog_config.type}): run `floe run` first")
        return
    table = Table(name_column(), "rows", "committed at (UTC)", "operation")
    table.add_column("last snapshot", **ID_COLUMN)
    for identifier in identifiers:
        loaded = catalog.load_table(identifier)
        snapshot = loaded.current_snapshot()
        rows = total_rows(snapshot) or 0
        when = (dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC)
                .strftime("%Y-%m-%d %H:%M:%S") if snapshot else "")
        operation = snapshot.summary.operation.value if snapshot and snapshot.summary else ""
        table.add_row(".".join(identifier), f"{rows:,}", when, operation,
                      str(snapshot.snapshot_id) if snapshot else "-")
    console.print(table)
    _print_slot_lag(console, project.artifacts)
    _print_binlog_lag(console, project.artifacts, catalog)


def _print_slot_lag(console: Console, artifacts: CompiledArtifacts) -> None:
    """A forgotten replication slot makes PostgreSQL keep WAL forever: show what each holds."""
    from floe.runtime.cdc.postgres.server import slot_lag_bytes
    from floe.runtime.ingestion.sources import resolved_config

    for source in artifacts.sources:
        if source.source_type != "postgres_cdc":
            continue
        slot = source.source_config["slot_name"]
        try:
            config = resolved_config(source)
            lag = slot_lag_bytes(str(config["credentials"]), slot)
        except Exception as exc:
            console.print(f"{source.name}: slot {slot} lag unknown ({mask(str(exc))})",
                          markup=False)
            continue
        what = "not created yet" if lag is None else f"lag {lag:,} bytes of WAL"
        console.print(f"{source.name}: replication slot {slot}: {what}", markup=False)


def _print_binlog_lag(console: Console, artifacts: CompiledArtifacts, catalog: Catalog) -> None:
    """mysql_cdc: how much binlog each source has still to read (from its oldest table)."""
    from floe.runtime.cdc.mysql.lag import binlog_lag
    from floe.runtime.ingestion.sources import resolved_config

    for source in artifacts.sources:
        if source.source_type != "mysql_cdc":
            continue
        try:
            what = binlog_lag(source, resolved_config(source), catalog)
        except Exception as exc:
            what = f"lag unknown ({mask(str(exc))})"
        console.print(f"{source.name}: binlog {what}", markup=False)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def print_table_details(console: Console, artifacts_path: Path | None, name: str,
                        limit: int, as_of: str | None = None) -> None:
    catalog = connect(load_project(artifacts_path))
    parts = tuple(name.split("."))
    if len(parts) != 2:
        raise FloeError(f"'{name}': give the table as NAMESPACE.TABLE, e.g. bronze.orders")
    try:
        loaded = catalog.load_table(parts)
    except NoSuchTableError:
        known = [".".join(t) for t in _all_tables(catalog)]
        close = difflib.get_close_matches(name, known, n=1)
        raise FloeError(f"no table {name}" + (f"; did you mean {close[0]}?" if close else
                        f"; tables: {', '.join(known) or 'none yet (run floe run)'}")) from None
    schema = Table("column", "type", "required", title=f"{name} schema")
    for field in loaded.schema().fields:
        schema.add_row(field.name, str(field.field_type), "yes" if field.required else "")
    console.print(schema)
    columns = loaded.schema()
    partitions = [f"{f.transform}({columns.find_column_name(f.source_id)})"
                  for f in loaded.spec().fields]
    order = [f"{columns.find_column_name(f.source_id)} {f.direction.name.lower()}"
             for f in loaded.sort_order().fields]
    console.print(f"partitioned by: {', '.join(partitions) or 'nothing'}; sorted by: "
                  f"{', '.join(order) or 'nothing'}", markup=False)
    current = loaded.current_snapshot()
    totals: Mapping[str, str | None] = (current.summary if current is not None else None) or {}
    console.print(f"merges: {loaded.metadata.properties.get(MERGE_MODE, 'copy-on-write')}; "
                  f"position-delete files: {totals.get('total-delete-files') or 0} "
                  f"({totals.get('total-position-deletes') or 0} rows; floe maintain "
                  "compacts them away)", markup=False)
    snapshots = Table(title="snapshots (newest last)")
    snapshots.add_column("snapshot", **ID_COLUMN)
    for heading in ("committed at (UTC)", "operation", "added rows", "total rows"):
        snapshots.add_column(heading)
    for snapshot in loaded.snapshots()[-10:]:
        summary = snapshot.summary
        snapshots.add_row(
            str(snapshot.snapshot_id),
            dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC).strftime(
                "%Y-%m-%d %H:%M:%S"),
            summary.operation.value if summary else "",
            (summary["added-records"] or "0") if summary else "",
            f"{total_rows(snapshot) or 0}")
    console.print(snapshots)
    if as_of is not None:
        from floe.runtime.as_of import versions_at

        rows = versions_at(loaded, as_of, limit)
        title = f"rows valid at {as_of} (first {limit})"
    else:
        rows = loaded.scan(limit=limit).to_arrow()
        title = f"first {limit} rows"
    sample = Table(*rows.column_names, title=title)
    for record in rows.to_pylist():
        sample.add_row(*(_cell(v) for v in record.values()))
    console.print(sample)
