"""``floe changes`` / ``floe.changes()``: the rows of a Bronze table that changed between two
snapshots, with exactly-once reading for named consumers.

A consumer's position is a table property (``floe.consumer.<name>`` = the last snapshot it
read), written only after the read succeeded, so a downstream job that fails re-reads the same
changes, and one that succeeds never sees them again.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from rich.console import Console
from rich.table import Table as RichTable

from floe.errors import FloeError
from floe.runtime.iceberg.diff import CHANGE_TYPE, SnapshotGoneError, diff, no_changes
from floe.runtime.iceberg.history import label_changes
from floe.runtime.project import load_project, require_environment

CONSUMER_PREFIX = "floe.consumer."


def _snapshot_at(table: Table, point: str | int | dt.datetime, what: str) -> int | None:
    """A snapshot id, or the newest snapshot committed at or before an ISO time (None: a time
    before the table's first snapshot, when it was empty)."""
    if isinstance(point, int) or (isinstance(point, str) and point.lstrip("-").isdigit()):
        snapshot_id = int(point)
        if table.snapshot_by_id(snapshot_id) is None:
            raise FloeError(f"{what} snapshot {snapshot_id} is not in the table (expired or "
                            "never existed): `floe show` lists its snapshots")
        return snapshot_id
    when = point if isinstance(point, dt.datetime) else _parse_time(point, what)
    millis = int(when.timestamp() * 1000)
    before = [s for s in table.snapshots() if s.timestamp_ms <= millis]
    if not before:
        return None
    return max(before, key=lambda s: (s.timestamp_ms, s.sequence_number or 0)).snapshot_id


def _parse_time(text: str, what: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FloeError(f"{what} '{text}' is neither a snapshot id nor an ISO time such as "
                        "2024-05-01T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def table_changes(table: Table, since: str | int | dt.datetime | None = None,
                  until: str | int | dt.datetime | None = None,
                  consumer: str | None = None) -> pa.Table:
    """The changes of an already loaded pyiceberg ``table`` (see ``changes``)."""
    if consumer is not None and since is not None:
        raise FloeError("--since and --consumer exclude each other: a consumer reads from "
                        "where it stopped")
    start: int | None = None
    if consumer is not None:
        saved = table.metadata.properties.get(CONSUMER_PREFIX + consumer)
        start = int(saved) if saved else None
    elif since is not None:
        start = _snapshot_at(table, since, "--since")
    end = _snapshot_at(table, until, "--until") if until is not None else None
    if until is not None and end is None:  # up to a time before the first snapshot: nothing
        return no_changes(table)
    try:
        result = diff(table, start, end)
    except SnapshotGoneError as exc:
        hint = (f"consumer {consumer} stopped at an expired snapshot: read again under a new "
                "consumer name (it starts with every current row as an insert)" if consumer
                else "read from a snapshot that `floe show` still lists")
        raise FloeError(f"{exc}; {hint}") from None
    result = label_changes(result, CHANGE_TYPE)
    if consumer is not None:
        current = table.current_snapshot()
        position = end if end is not None else (current.snapshot_id if current else None)
        if position is not None:
            with table.transaction() as tx:
                tx.set_properties({CONSUMER_PREFIX + consumer: str(position)})
    return result


def changes(table: str, since: str | int | dt.datetime | None = None,
            until: str | int | dt.datetime | None = None, consumer: str | None = None,
            artifacts: Path | None = None, env: str | None = None) -> pa.Table:
    """Rows of Bronze ``table`` ("namespace.table") that changed after ``since`` up to
    ``until`` (a snapshot id or a time; default: now), as a ``pyarrow.Table``.

    Each row has every column plus ``_change_type`` (``insert`` or ``delete``; an update is
    both), ``_change_snapshot_id`` and ``_change_committed_at``.  With ``consumer``, reading
    starts where that consumer last stopped (a new one: from an empty table) and its position
    moves on after the read.  ``artifacts`` is the compiled artifact (default
    ``target/compiled_artifacts.json``), whose environment names the catalog.
    """
    from floe.runtime.iceberg.catalog import connect

    project = load_project(artifacts)
    require_environment(project.artifacts, env)
    catalog = connect(project)
    try:
        loaded = catalog.load_table(tuple(table.split(".")))
    except NoSuchTableError:
        raise FloeError(f"table {table} does not exist: `floe tables` lists them") from None
    return table_changes(loaded, since, until, consumer)


def write_changes(console: Console, found: pa.Table, output_format: str,
                  output: Path | None) -> None:
    """Print or write what ``changes`` found: a table for people, JSON lines or Parquet for
    programs."""
    if output_format == "parquet":
        assert output is not None
        pq.write_table(found, output)
        console.print(f"{found.num_rows:,} change(s) written to {output}", markup=False)
        return
    if output_format == "jsonl":
        lines = "".join(json.dumps(row, default=_json_value, ensure_ascii=False) + "\n"
                        for row in found.to_pylist())
        if output is not None:
            output.write_text(lines, encoding="utf-8")
            console.print(f"{found.num_rows:,} change(s) written to {output}", markup=False)
        else:
            sys.stdout.write(lines)
        return
    table = RichTable(*found.column_names, title=f"{found.num_rows:,} change(s)")
    for row in found.to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    (Console(file=output.open("w", encoding="utf-8")) if output else console).print(table)


def _json_value(value: object) -> str:
    """Timestamps as ISO text, decimals by value, bytes as hex: JSON has none of them."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
