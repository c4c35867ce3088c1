"""``merge_strategy: scd2``: every version of every row, each valid from one source time to
the next, kept in the same one-commit-per-load merge as any other.

Each row of a history table carries ``_floe_valid_from``, ``_floe_valid_to`` (null while it is
the current version) and ``_floe_is_current``.  A load rebuilds the timeline of each key it
touches: the key's versions already in Bronze and the load's rows (or delete markers), in
source-time order.  A row whose tracked values equal the version before it adds nothing; a
changed one closes that version (``valid_to`` = its own ``valid_from``) and opens a new one; a
delete closes the open version and opens none; a key that comes back opens a new version.
Rows arriving late (an older ``valid_from_column`` value than the current version's) fall into
their place in the timeline.  The touched keys' rows are then replaced in one overwrite (on a
merge-on-read table: position deletes), so a crash can never leave a version closed without
its successor, and the cost follows the keys touched, not the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from pyiceberg.table.upsert_util import create_match_filter

from floe.artifacts import HistoryConfig
from floe.runtime.canonical import canonical
from floe.runtime.iceberg.merge_load import marked
from floe.runtime.ingestion.errors import PipelineConfigurationError

VALID_FROM = "_floe_valid_from"
VALID_TO = "_floe_valid_to"
IS_CURRENT = "_floe_is_current"
HISTORY_COLUMNS = (VALID_FROM, VALID_TO, IS_CURRENT)
HISTORY_OPENED = "floe.history.versions-opened"  # snapshot summary: what a load did
HISTORY_CLOSED = "floe.history.versions-closed"
_TIME = pa.timestamp("us", tz="UTC")
_FLOE_PREFIX = ("_floe_", "_dlt_")

Key = tuple[Any, ...]


class HistoryInputError(PipelineConfigurationError):
    """The load cannot be placed in history as configured; the message names what (nothing
    is committed)."""


def history_fields() -> list[pa.Field]:
    return [pa.field(VALID_FROM, _TIME), pa.field(VALID_TO, _TIME),
            pa.field(IS_CURRENT, pa.bool_())]


def with_history_fields(schema: pa.Schema) -> pa.Schema:
    present = set(schema.names)
    return pa.schema([*schema, *(f for f in history_fields() if f.name not in present)])


def valid_from_values(rows: pa.Table, config: HistoryConfig, table: str, load_time: dt.datetime
                      ) -> pa.Array:
    """Each load row's source time: its ``valid_from_column`` (a timestamp or a date, UTC),
    else the load's time."""
    column = config.valid_from_column
    if column is None:
        return pa.array([load_time] * rows.num_rows, _TIME)
    if column not in rows.column_names:
        raise HistoryInputError(
            f"history.valid_from_column {column}: {table} has no column {column}; its "
            f"columns: {', '.join(n for n in rows.column_names if not n.startswith('_dlt'))}")
    values = rows[column]
    kind = values.type
    if pa.types.is_date(kind):
        values = values.cast(pa.timestamp("us")).cast(_TIME)
    elif pa.types.is_timestamp(kind):
        values = values.cast(pa.timestamp("us", kind.tz or "UTC"), safe=False).cast(_TIME)
    else:
        raise HistoryInputError(
            f"history.valid_from_column {column}: {table}.{column} is {kind}, not a timestamp "
            "or date")
    if values.null_count:
        raise HistoryInputError(
            f"history.valid_from_column {column}: {values.null_count} row(s) of {table} have no "
            f"{column}: a version needs the time it became valid")
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


@dataclass
class _Event:
    at: dt.datetime
    order: int
    row: dict[str, Any] | None  # None: a delete (closes the open version)


@dataclass
class Rebuilt:
    """The touched keys' whole timelines, and how many versions opened and closed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    opened: int = 0
    closed: int = 0


def rebuild(existing: pa.Table, incoming: pa.Table, incoming_from: pa.Array,
            deleted: Sequence[bool], keys: Sequence[str], tracked: Sequence[str],
            retired: Sequence[tuple[Key, dt.datetime]]) -> Rebuilt:
    """The timelines of every key in ``incoming`` (and ``retired``: closed at a time) from
    their versions in Bronze (``existing``) and the load's rows, in source-time order."""
    events: dict[Key, list[_Event]] = {}
    order = 0
    before: dict[Key, list[dict[str, Any]]] = {}
    for row in existing.to_pylist():
        before.setdefault(tuple(row[k] for k in keys), []).append(row)
    for key, versions in before.items():
        versions.sort(key=lambda r: r[VALID_FROM])
        timeline = events.setdefault(key, [])
        for number, version in enumerate(versions):
            timeline.append(_Event(version[VALID_FROM], order, version))
            order += 1
            ended = version[VALID_TO]
            following = versions[number + 1][VALID_FROM] if number + 1 < len(versions) else None
            if ended is not None and ended != following:  # closed with no successor: a delete
                timeline.append(_Event(ended, order, None))
                order += 1
    starts = incoming_from.to_pylist()
    for index, row in enumerate(incoming.to_pylist()):
        key = tuple(row[k] for k in keys)
        events.setdefault(key, []).append(
            _Event(starts[index], order, None if deleted[index] else row))
        order += 1
    for key, at in retired:
        events.setdefault(key, []).append(_Event(at, order, None))
        order += 1
    out = Rebuilt()
    for timeline in events.values():
        timeline.sort(key=lambda e: (e.at, e.order))
        out.rows.extend(_walk(timeline, tracked, out))
    return out


def _walk(timeline: list[_Event], tracked: Sequence[str], out: Rebuilt
          ) -> list[dict[str, Any]]:
    """One key's versions from its events in time order (counting what opens and closes)."""
    versions: list[dict[str, Any]] = []
    open_version: dict[str, Any] | None = None
    was_open: set[int] = set()  # versions open before this load (closing one counts)
    born: set[int] = set()  # versions this load opened

    def close(at: dt.datetime) -> None:
        assert open_version is not None
        if open_version.get(VALID_TO) != at and (id(open_version) in was_open
                                                 or id(open_version) in born):
            out.closed += 1
        open_version[VALID_TO] = at

    for event in timeline:
        if event.row is None:
            if open_version is not None:
                close(event.at)
            open_version = None
            continue
        if open_version is not None and _same(open_version, event.row, tracked):
            continue  # the same values again: no new version
        if open_version is not None:
            close(event.at)
        existing = VALID_FROM in event.row and event.row.get(VALID_FROM) == event.at
        open_version = {**event.row, VALID_FROM: event.at,
                        VALID_TO: event.row.get(VALID_TO) if existing else None}
        if existing and event.row.get(VALID_TO) is None:
            was_open.add(id(open_version))
        if not existing:
            born.add(id(open_version))
            out.opened += 1
        # an existing version keeps its end only until the walk decides it again
        open_version[VALID_TO] = None
        versions.append(open_version)
    for version in versions:
        version[IS_CURRENT] = version[VALID_TO] is None
    return versions


def _same(current: dict[str, Any], row: dict[str, Any], tracked: Sequence[str]) -> bool:
    names = tracked or [n for n in {*current, *row} if not n.startswith(_FLOE_PREFIX)]
    return all(canonical(current.get(n)) == canonical(row.get(n)) for n in names)


def current_keys(rows: pa.Table, keys: Sequence[str]) -> list[Key]:
    """The keys of ``rows`` that are current versions."""
    live = rows.filter(pc.fill_null(rows[IS_CURRENT], False)) if IS_CURRENT in \
        rows.column_names else rows
    return [tuple(r[k] for k in keys) for r in live.select(list(keys)).to_pylist()]


@dataclass(frozen=True)
class HistoryWrite:
    """What a history load writes: the touched keys' rebuilt timelines, the keys whose rows
    they replace, and the versions opened and closed (for the snapshot and Dagster)."""

    rows: pa.Table
    replaced: pa.Table
    opened: int
    closed: int


def history_write(table: Table, target: pa.Schema, rows: pa.Table, keys: Sequence[str],
                  config: HistoryConfig, marker: str | None, load_time: dt.datetime,
                  fresh: bool = False, truncated_at: dt.datetime | None = None
                  ) -> HistoryWrite:
    """The load ``rows`` placed in the history of ``table`` (its state before this commit;
    ``fresh``: a full refresh, history starts again; ``truncated_at``: the source emptied the
    table then, closing every version current at that time); ``target`` is the table's Arrow
    schema after this load's schema changes."""
    name = ".".join(table.name()[-2:])
    starts = valid_from_values(rows, config, name, load_time)
    deleted = (marked(rows[marker]).to_pylist() if marker and marker in rows.column_names
               else [False] * rows.num_rows)
    incoming = rows.drop_columns([c for c in HISTORY_COLUMNS if c in rows.column_names])
    touched = incoming.select(list(keys)).group_by(list(keys), use_threads=False).aggregate([])
    existing = target.empty_table()
    retired: list[tuple[Key, dt.datetime]] = []
    replaced = touched
    if table.current_snapshot() is not None and not fresh:
        if config.retire_absent or truncated_at is not None:
            now = table.scan(row_filter=EqualTo(term=IS_CURRENT, value=True),
                             selected_fields=tuple(keys)).to_arrow()
            sent = {tuple(r[k] for k in keys) for r in touched.to_pylist()}
            retired = [(k, truncated_at) for k in current_keys(now, keys)] \
                if truncated_at is not None else \
                [(k, load_time) for k in current_keys(now, keys) if k not in sent]
        if retired:
            replaced = pa.concat_tables([touched, pa.table(
                {k: pa.array([r[0][i] for r in retired], touched.schema.field(k).type)
                 for i, k in enumerate(keys)})])
            replaced = replaced.group_by(list(keys), use_threads=False).aggregate([])
        if replaced.num_rows:
            existing = table.scan(
                row_filter=create_match_filter(replaced, list(keys))).to_arrow()
    rebuilt = rebuild(existing, incoming, starts, deleted, keys, config.track_columns, retired)
    out = pa.Table.from_pylist(rebuilt.rows, schema=target) if rebuilt.rows \
        else target.empty_table()
    return HistoryWrite(out, replaced, rebuilt.opened, rebuilt.closed)
