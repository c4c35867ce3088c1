"""``floe status``: is every source fresh, and if not, why — from the catalog alone.

A source's last successful load is the snapshot that carries its own state record (the load
id floe commits with its cursor); its rows are that load's added records, its duration the
time from the load's start (a snapshot property) to the commit.  A failure newer than that
load comes from the namespace's failure record (``failures.py``).  CDC sources also say how
far behind the source they are (the replication slot's WAL, the binlog).  A source is:

- ``fresh``: loaded, no newer failure, within its ``freshness_sla`` (if it has one);
- ``stale``: its newest load is older than its ``freshness_sla``;
- ``failing``: its last run failed after its last successful load;
- ``never loaded``: no load of it in the catalog yet.

Exit status 1 when any selected source is not fresh, so cron, probes and CI can act on it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from floe.artifacts import CompiledSource
from floe.logs import mask
from floe.runtime.iceberg.state import STARTED_PROPERTY, newest_load, read_source_state
from floe.runtime.observe.failures import Failure, failures

HEALTHY = "fresh"


@dataclass
class SourceStatus:
    source: str
    source_type: str
    state: str  # fresh | stale | failing | never loaded
    tables: list[str] = field(default_factory=list)
    last_success: str | None = None  # ISO 8601, UTC
    age_seconds: float | None = None
    rows: int | None = None  # rows the last successful load added
    duration_seconds: float | None = None
    freshness_sla_seconds: int | None = None
    last_failure: str | None = None  # ISO 8601, when newer than the last success
    failure_category: str | None = None
    failure: str | None = None
    cdc: str | None = None  # "lag 1,234 bytes of WAL, 5,678 retained" / "binlog ..."

    @property
    def healthy(self) -> bool:
        return self.state == HEALTHY

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Load:
    at: float  # commit time, epoch seconds
    rows: int
    started: float | None


def _last_load(catalog: Catalog, source: CompiledSource, table_name: str) -> _Load | None:
    try:
        table = catalog.load_table((source.namespace, table_name))
    except NoSuchTableError:
        return None
    record = read_source_state(table, source.pipeline_name)
    if record.load_id is None:
        return None
    snapshot = newest_load(table, record.load_id)
    if snapshot is None:
        return None
    summary = snapshot.summary
    started = summary.get(STARTED_PROPERTY) if summary is not None else None
    return _Load(snapshot.timestamp_ms / 1000,
                 int(summary["added-records"] or 0) if summary is not None else 0,
                 int(started) / 1000 if started is not None else None)


def _tables(catalog: Catalog, source: CompiledSource) -> list[str]:
    if source.resources:
        return [source.table_for(r) for r in source.resources]
    try:  # a whole schema: the namespace's tables
        return [identifier[-1] for identifier in catalog.list_tables((source.namespace,))]
    except NoSuchNamespaceError:
        return []


def source_status(catalog: Catalog, source: CompiledSource, recorded: dict[str, Failure],
                  now: float, lag: bool = True) -> SourceStatus:
    names = _tables(catalog, source)
    loads = [found for name in names if (found := _last_load(catalog, source, name))]
    status = SourceStatus(source.name, source.source_type, "never loaded",
                          [f"{source.namespace}.{n}" for n in names],
                          freshness_sla_seconds=source.freshness_sla_seconds)
    newest = max((load.at for load in loads), default=None)
    if newest is not None:
        last = [load for load in loads if newest - load.at < 60]  # one run's tables
        status.last_success = _iso(newest)
        status.age_seconds = round(now - newest, 1)
        status.rows = sum(load.rows for load in last)
        starts = [load.started for load in last if load.started is not None]
        status.duration_seconds = round(newest - min(starts), 3) if starts else None
        sla = source.freshness_sla_seconds
        status.state = "stale" if sla is not None and now - newest > sla else HEALTHY
    failure = recorded.get(source.name)
    if failure is not None and (newest is None or failure.at > newest):
        status.state = "failing"
        status.last_failure = _iso(failure.at)
        status.failure_category = failure.category
        status.failure = failure.error
    if lag and source.source_type in ("postgres_cdc", "mysql_cdc"):
        status.cdc = _cdc(source, catalog)
    return status


def _cdc(source: CompiledSource, catalog: Catalog) -> str:
    """How far behind the source a CDC source is (a database round trip; never raises)."""
    from floe.runtime.ingestion.sources import resolved_config

    try:
        config = resolved_config(source)
        if source.source_type == "mysql_cdc":
            from floe.runtime.cdc.mysql.lag import binlog_lag

            return f"binlog {binlog_lag(source, config, catalog)}"
        from floe.runtime.cdc.postgres.server import slot_wal

        behind, retained = slot_wal(str(config["credentials"]), str(config["slot_name"]))
        return f"lag {behind:,} bytes of WAL, {retained:,} retained by the slot"
    except Exception as exc:
        return f"lag unknown ({mask(str(exc))})"


def statuses(catalog: Catalog, sources: Sequence[CompiledSource], now: float | None = None,
             lag: bool = True) -> list[SourceStatus]:
    """Every source's status, read a few at a time (a remote catalog answers each table
    in a round trip)."""
    now = time.time() if now is None else now
    recorded: dict[str, Failure] = {}
    for namespace in dict.fromkeys(s.namespace for s in sources):
        try:
            recorded.update(failures(catalog.load_namespace_properties((namespace,))))
        except NoSuchNamespaceError:
            continue
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="floe-status") as pool:
        return list(pool.map(lambda s: source_status(catalog, s, recorded, now, lag),
                             sources))


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def print_status(console: Any, artifacts_path: Any, select: Sequence[str], env: str | None,
                 as_json: bool, lag: bool = True) -> int:
    """The CLI: a table (or JSON) of every selected source; returns how many are not fresh."""
    import json

    from rich.table import Table as RichTable

    from floe.runtime.iceberg.catalog import connect
    from floe.runtime.project import load_project, require_environment, select_sources

    project = load_project(artifacts_path)
    require_environment(project.artifacts, env)
    sources = select_sources(project.artifacts, select)
    found = statuses(connect(project), sources, lag=lag)
    unhealthy = sum(1 for s in found if not s.healthy)
    if as_json:
        print(json.dumps([s.as_dict() for s in found], indent=2))
        return unhealthy
    colors = {"fresh": "green", "stale": "yellow", "failing": "red", "never loaded": "red"}
    table = RichTable("source", "status", "last success (UTC)", "age", "SLA", "rows",
                      "seconds", "details",
                      title=f"floe status: {len(found)} source(s), {unhealthy} not fresh")
    for status in found:
        color = colors.get(status.state, "white")
        details = [f"failed {status.last_failure}: {status.failure}"
                   if status.failure else "", status.cdc or ""]
        table.add_row(status.source, f"[{color}]{status.state}[/{color}]",
                      (status.last_success or "-").replace("T", " ").rstrip("Z"),
                      age_text(status.age_seconds), age_text(status.freshness_sla_seconds),
                      f"{status.rows:,}" if status.rows is not None else "-",
                      f"{status.duration_seconds:.1f}"
                      if status.duration_seconds is not None else "-",
                      mask("; ".join(d for d in details if d)))
    console.print(table)
    return unhealthy
