"""floe's metrics, through the OpenTelemetry metrics API (floe already traces with its API).

Names follow OpenTelemetry's conventions: base units in ``unit``, never in the name; an
exporter to Prometheus adds the unit and ``_total`` (``floe.load.rows`` ->
``floe_load_rows_total``, ``floe.load.duration`` -> ``floe_load_duration_seconds``).  Every
data point is labelled with ``product`` and ``source`` (plus ``table``, ``status``, ``kind``
where they apply): names from floe.yaml, never a value from a row or a secret.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.metrics import Meter

from floe.artifacts import CompiledSource
from floe.runtime.ingestion.result import IngestionResult

_STATUS = {"success": "ok", "failed": "failed", "timeout": "timeout", "skipped": "skipped"}


class Instruments:
    """Every instrument floe records, made once per meter."""

    def __init__(self, meter: Meter) -> None:
        counter, gauge = meter.create_counter, meter.create_gauge
        self.loads = counter("floe.loads", "{load}", "loads by status: ok, failed, "
                             "timeout, skipped, fenced")
        self.rows = counter("floe.load.rows", "{row}", "rows a load landed")
        self.written = counter("floe.load.written", "By", "bytes of data files a load wrote")
        self.duration = meter.create_histogram("floe.load.duration", "s",
                                               "how long a source's load took")
        self.retries = counter("floe.load.retries", "{retry}", "attempts retried after a "
                               "transient error")
        self.schema_changes = counter("floe.load.schema_changes", "{change}",
                                      "columns added, retyped or renamed by a load")
        self.delete_files = counter("floe.load.delete_files", "{file}",
                                    "merge-on-read delete files a load added")
        self.last_success = gauge("floe.source.last_success", "s",
                                  "when the source last loaded successfully (Unix time)")
        self.freshness = gauge("floe.source.freshness", "s",
                               "seconds since the source's newest committed load")
        self.freshness_sla = gauge("floe.source.freshness_sla", "s",
                                   "the source's freshness_sla")
        self.failing = gauge("floe.source.failing", "", "1 when the source's last load failed")
        self.checks = counter("floe.check.results", "{check}",
                              "check results by severity and result")
        self.cdc_lag = gauge("floe.cdc.lag", "s", "seconds behind the source's newest commit")
        self.cdc_behind = gauge("floe.cdc.behind", "By", "bytes of the source's log not yet "
                                "applied")
        self.cdc_retained = gauge("floe.cdc.retained", "By", "bytes of WAL/binlog the source "
                                  "keeps for floe (a replication slot)")
        self.cdc_events = counter("floe.cdc.events", "{event}", "changes applied by kind: "
                                  "insert, update, delete, truncate")
        self.data_files = gauge("floe.table.data_files", "{file}", "a table's data files")
        self.table_delete_files = gauge("floe.table.delete_files", "{file}",
                                        "a table's delete files")
        self.snapshots = gauge("floe.table.snapshots", "{snapshot}", "a table's snapshots")


def _status(result: IngestionResult) -> str:
    if any("another run of this source committed" in e for e in result.errors):  # fenced
        return "fenced"
    return _STATUS.get(result.status, result.status)


def record_load(instruments: Instruments, product: str, source: CompiledSource,
                result: IngestionResult, now: float | None = None) -> None:
    """What one source's load did."""
    now = time.time() if now is None else now
    labels = {"product": product, "source": source.name}
    instruments.loads.add(1, {**labels, "status": _status(result)})
    instruments.failing.set(0 if result.success else 1, labels)
    if source.freshness_sla_seconds is not None:
        instruments.freshness_sla.set(source.freshness_sla_seconds, labels)
    if result.retries:
        instruments.retries.add(result.retries, labels)
    if result.status == "skipped":
        return
    instruments.duration.record(result.duration_seconds, labels)
    if not result.success:
        return
    instruments.last_success.set(now, labels)
    if any(t.snapshot_id is not None and (t.rows_loaded or t.bytes_written)
           for t in result.tables):
        instruments.freshness.set(0, labels)
    for table in result.tables:
        at = {**labels, "table": table.table}
        instruments.rows.add(table.rows_loaded, at)
        instruments.written.add(table.bytes_written, at)
        changes = len(table.new_columns) + len(table.type_changes) + len(table.renamed)
        if changes:
            instruments.schema_changes.add(changes, at)
        if table.delete_files_added:
            instruments.delete_files.add(table.delete_files_added, at)
        for kind, count in table.events:
            instruments.cdc_events.add(count, {**at, "kind": kind})
    lag = result.lag
    if lag is not None:
        for gauge, value in ((instruments.cdc_lag, lag.seconds),
                             (instruments.cdc_behind, lag.behind_bytes),
                             (instruments.cdc_retained, lag.retained_bytes)):
            if value is not None:
                gauge.set(value, labels)


def record_checks(instruments: Instruments, product: str, source: str,
                  outcomes: Iterable[Any]) -> None:
    """Check results (each with ``passed`` and ``severity``)."""
    for outcome in outcomes:
        instruments.checks.add(1, {"product": product, "source": source,
                                   "severity": outcome.severity,
                                   "result": "pass" if outcome.passed else "fail"})


def record_table(instruments: Instruments, product: str, source: str, table: str,
                 counts: Mapping[str, int]) -> None:
    """A table's files and snapshots, after maintenance."""
    labels = {"product": product, "source": source, "table": table}
    instruments.data_files.set(counts.get("data_files", 0), labels)
    instruments.table_delete_files.set(counts.get("delete_files", 0), labels)
    instruments.snapshots.set(counts.get("snapshots", 0), labels)
