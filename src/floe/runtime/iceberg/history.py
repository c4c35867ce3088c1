"""``merge_strategy: scd2``: every version of every row, each valid from one source time to
the next, kept in the same one-commit-per-load merge as any other.

Each row of a history table carries ``_floe_valid_from``, ``_floe_valid_to`` (null while it is
the current version) and ``_floe_is_current``.  A load rebuilds the timeline of each key it
touches: the key's versions already in Bronze and the load's rows (or delete markers), in
source-time order.  A row whose tracked values equal the version before it adds nothing; a
changed one closes that version (``valid_to`` = its own ``valid_from``) and opens a new one; a
delete closes the open version and opens none; a key that comes back opens a new version.
Rows arriving late (an older ``valid_from_column`` value than the current version's) fall into
their place in the timeline.  The versions a load rebuilds (a touched key's current one; its
whole history only when a row reaches back into it) are replaced in one overwrite (on a
merge-on-read table: position deletes), so a crash can never leave a version closed without
its successor, and the cost follows the keys touched, not the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from pyiceberg.types import TimestamptzType

from floe.artifacts import HistoryConfig
from floe.runtime.canonical import column_hashes, row_hashes
from floe.runtime.iceberg.merge_load import marked
from floe.runtime.ingestion.errors import PipelineConfigurationError

VALID_FROM = "_floe_valid_from"
VALID_TO = "_floe_valid_to"
IS_CURRENT = "_floe_is_current"
HISTORY_COLUMNS = (VALID_FROM, VALID_TO, IS_CURRENT)
STREAM_COMMIT_TIME = "_floe_committed_at"  # a CDC change's commit time, in stream order
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


_AT, _ORDER, _TOMB, _WAS_OPEN = "__floe_at", "__floe_order", "__floe_tomb", "__floe_was_open"


def rebuild_columnar(existing: pa.Table, incoming: pa.Table, incoming_from: pa.Array,
                     deleted: pa.Array, keys: Sequence[str], tracked: Sequence[str],
                     retired: Sequence[tuple[Key, dt.datetime]], target: pa.Schema
                     ) -> tuple[pa.Table, int, int]:
    """The touched keys' timelines, in Arrow (no Python row objects): every event (the
    versions taken out of Bronze, the deletes their ends imply, the load's rows and markers,
    retirements) sorted by key, time and arrival; a version equal to the event before it
    (same key, not a delete) dropped; each kept version valid until the key's next event.
    Returns the versions (typed as ``target``), and how many versions opened and closed."""
    time = _TIME
    # versions starting at one instant (a zero-length one, then its successor) keep that order
    existing = existing.sort_by([*((k, "ascending", "at_end") for k in keys),
                                 (VALID_FROM, "ascending", "at_end"),
                                 (VALID_TO, "ascending", "at_end")])
    base = existing.drop_columns([c for c in HISTORY_COLUMNS if c in existing.column_names])
    n_old = existing.num_rows
    parts = [base.append_column(_AT, existing[VALID_FROM].cast(time))
             .append_column(_TOMB, pa.array(np.zeros(n_old, bool)))
             .append_column(_WAS_OPEN, pc.is_null(existing[VALID_TO]))]
    if n_old:  # an end the key's next version does not start at: the key was deleted then
        following = _shifted(existing[VALID_FROM], time)
        has_next = pa.array(_same_as_next(existing, keys))
        successor = pc.and_(has_next, pc.equal(following, existing[VALID_TO].cast(time)))
        gap = pc.and_(pc.is_valid(existing[VALID_TO]), pc.invert(pc.fill_null(successor, False)))
        gaps = existing.filter(gap).select([*keys, VALID_TO]).rename_columns([*keys, _AT])
        parts.append(gaps.append_column(_TOMB, pa.array(np.ones(gaps.num_rows, bool))))
    rows = incoming.drop_columns([c for c in HISTORY_COLUMNS if c in incoming.column_names])
    parts.append(rows.append_column(_AT, incoming_from.cast(time))
                 .append_column(_TOMB, deleted))
    if retired:
        parts.append(_keys_table([k for k, _ in retired], keys, incoming.schema)
                     .append_column(_AT, pa.array([at for _, at in retired], time))
                     .append_column(_TOMB, pa.array(np.ones(len(retired), bool))))
    events = pa.concat_tables(parts, promote_options="permissive")
    del parts, base, rows, existing  # each copy of the rows is let go as soon as it is used
    events = events.append_column(_ORDER, pa.array(np.arange(events.num_rows), pa.int64()))
    events = events.sort_by([(k, "ascending") for k in (*keys, _AT, _ORDER)])
    count = events.num_rows
    same_key = np.zeros(count, bool)  # the row before has the same key
    same_key[1:] = _same_as_next(events, keys)[:-1]
    tomb = pc.fill_null(events[_TOMB], False).to_numpy(zero_copy_only=False)
    names = list(tracked) or [n for n in events.column_names
                              if not n.startswith(_FLOE_PREFIX) and not n.startswith("__floe")]
    hashed = row_hashes([column_hashes(events[n]) for n in names]) if names \
        else np.zeros(count, np.uint64)
    drop = np.zeros(count, bool)
    if count > 1:
        drop[1:] = same_key[1:] & ~tomb[1:] & ~tomb[:-1] & (hashed[1:] == hashed[:-1])
    kept = events.filter(pa.array(~drop))
    del events
    valid_to = pc.if_else(pa.array(_same_as_next(kept, keys)), _shifted(kept[_AT], time),
                          pa.scalar(None, time))
    live = pa.array(~pc.fill_null(kept[_TOMB], False).to_numpy(zero_copy_only=False))
    versions = kept.append_column(VALID_TO, valid_to).filter(live)
    del kept
    # a version closed at the instant it opened (two changes in one transaction, or at one
    # source time) was valid at no instant: no as-of read can see it, so it is not kept
    visible = pc.or_kleene(pc.is_null(versions[VALID_TO]),
                            pc.greater(versions[VALID_TO], versions[_AT].cast(time)))
    versions = versions.filter(visible)
    versions = versions.append_column(VALID_FROM, versions[_AT]).append_column(
        IS_CURRENT, pc.is_null(versions[VALID_TO]))
    new = pc.is_null(versions[_WAS_OPEN]).to_numpy(zero_copy_only=False)  # the load's rows
    was_open = pc.fill_null(versions[_WAS_OPEN], False).to_numpy(zero_copy_only=False)
    closed_now = pc.is_valid(versions[VALID_TO]).to_numpy(zero_copy_only=False)
    opened = int(new.sum())
    closed = int((closed_now & (new | was_open)).sum())
    out = [(versions[f.name] if f.name in versions.column_names
            else pa.nulls(versions.num_rows, f.type)).cast(f.type) for f in target]
    return pa.Table.from_arrays(out, schema=target), opened, closed


def _same_as_next(rows: pa.Table, keys: Sequence[str]) -> np.ndarray[Any, Any]:
    """For each row of ``rows`` (sorted by key): does the next row have the same key."""
    count = rows.num_rows
    same = np.zeros(count, bool)
    if count > 1:
        equal = np.ones(count - 1, bool)
        for k in keys:
            column = rows[k]
            equal &= pc.fill_null(pc.equal(column.slice(1), column.slice(0, count - 1)),
                                  False).to_numpy(zero_copy_only=False)
        same[:-1] = equal
    return same


def _shifted(column: pa.ChunkedArray | pa.Array, kind: pa.DataType) -> pa.Array:
    """Each value's successor (null for the last)."""
    values = column.cast(kind)
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pa.concat_arrays([values.slice(1), pa.nulls(min(1, len(values)), kind)])


@dataclass(frozen=True)
class HistoryLoad:
    """A load ready to be placed in history: its rows, their source times and delete marks,
    the keys whose versions it replaces, and the keys it closes without a row."""

    incoming: pa.Table
    starts: pa.Array
    deleted: pa.Array
    replaced: pa.Table
    retired: list[tuple[Key, dt.datetime]]


def prepare(table: Table, rows: pa.Table, keys: Sequence[str], config: HistoryConfig,
            marker: str | None, load_time: dt.datetime, fresh: bool = False,
            truncations: Sequence[dt.datetime] = ()) -> HistoryLoad:
    """The load ``rows`` for ``table`` (its state before this commit; ``fresh``: a full
    refresh, history starts again; ``truncations``: when the source emptied the table, which
    closes every version open then: Bronze's, and the load's own older rows, such as a first
    copy's)."""
    name = ".".join(table.name()[-2:])
    missing = [c for c in config.track_columns if c not in rows.column_names]
    if missing:
        raise HistoryInputError(
            f"history.track_columns: {name} has no column {', '.join(missing)}; its columns: "
            f"{', '.join(n for n in rows.column_names if not n.startswith(_FLOE_PREFIX))}")
    starts = valid_from_values(rows, config, name, load_time)
    deleted = (marked(rows[marker]) if marker and marker in rows.column_names
               else pa.array(np.zeros(rows.num_rows, bool)))
    incoming = rows.drop_columns([c for c in HISTORY_COLUMNS if c in rows.column_names])
    touched = _unique(incoming.select(list(keys)))
    in_bronze = table.current_snapshot() is not None and not fresh
    # only a source's own times can come late: a load's time, or a CDC stream's commit time,
    # is never older than the versions before it
    late = in_bronze and config.valid_from_column not in (None, STREAM_COMMIT_TIME)
    if late and rows.num_rows:  # no row older than the newest version anywhere: none is late
        newest = _newest_start(table)
        earliest = pc.min(starts).as_py()
        late = newest is None or earliest is None or earliest < newest
    now = table.scan(row_filter=EqualTo(term=IS_CURRENT, value=True),
                     selected_fields=(*keys, VALID_FROM)).to_arrow() \
        if in_bronze and (late or config.retire_absent or truncations) else None
    current = _key_list(now, keys) if now is not None else []
    retired: list[tuple[Key, dt.datetime]] = []
    if config.retire_absent and current:
        sent = set(_key_list(touched, keys))
        retired += [(k, load_time) for k in current if k not in sent]
    for moment in truncations:
        older = incoming.filter(pc.less(starts, pa.scalar(moment, _TIME))).select(list(keys))
        retired += [(k, moment) for k in (*current, *_key_list(_unique(older), keys))]
    replaced = touched
    if retired:
        replaced = _unique(pa.concat_tables([touched, _keys_table(  # a not-null key
            [k for k, _ in retired], keys, touched.schema)], promote_options="default"))
    return HistoryLoad(incoming, starts, pa.array(deleted, pa.bool_()),
                       _versions_to_replace(replaced, incoming, starts, now, keys), retired)


def _unique(keys: pa.Table) -> pa.Table:
    return keys.group_by(keys.column_names, use_threads=False).aggregate([])


def _key_list(rows: pa.Table, keys: Sequence[str]) -> list[Key]:
    return [tuple(r[k] for k in keys) for r in rows.select(list(keys)).to_pylist()]


def _keys_table(found: Sequence[Key], keys: Sequence[str], like: pa.Schema) -> pa.Table:
    """Keys as a table of the key columns, typed like ``like``."""
    return pa.table({k: pa.array([key[i] for key in found], like.field(k).type)
                     for i, k in enumerate(keys)})


def _newest_start(table: Table) -> dt.datetime | None:
    """The newest ``valid_from`` in ``table``, from its data files' column bounds (no data
    read; deleted rows may raise it, which only makes a load look late, never the reverse)."""
    field_id = table.schema().find_field(VALID_FROM).field_id
    newest: dt.datetime | None = None
    for task in table.scan(selected_fields=(VALID_FROM,)).plan_files():
        bound = (task.file.upper_bounds or {}).get(field_id)
        if bound is None:
            return None  # a file without bounds: cannot tell
        micros = from_bytes(TimestamptzType(), bound)
        value = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=int(micros))
        newest = value if newest is None else max(newest, value)
    return newest


def _versions_to_replace(replaced: pa.Table, incoming: pa.Table, starts: pa.Array,
                         now: pa.Table | None, keys: Sequence[str]) -> pa.Table:
    """Which versions the load takes out and rebuilds, as (keys..., is_current) pairs: only
    a touched key's current version, so closed history is never rewritten, except for keys
    whose history the load reaches into (a row older than the key's current version, or a key
    with no current version): all their versions.  (``now``: the current versions' keys and
    valid_from; None: no row can come late.)"""
    current = replaced.append_column(IS_CURRENT, pa.array(np.ones(replaced.num_rows, bool)))
    if now is None or not replaced.num_rows:
        return current
    earliest = incoming.select(list(keys)).append_column(_AT, starts).group_by(
        list(keys), use_threads=False).aggregate([(_AT, "min")])  # each key's oldest row
    joined = earliest.join(now.rename_columns([*keys, "__floe_current_from"]), list(keys),
                           join_type="left outer")
    reaches_back = pc.or_kleene(pc.is_null(joined["__floe_current_from"]),
                                pc.less(joined[f"{_AT}_min"], joined["__floe_current_from"]))
    whole = joined.filter(pc.fill_null(reaches_back, True)).select(list(keys))
    if not whole.num_rows:
        return current
    closed = whole.append_column(IS_CURRENT, pa.array(np.zeros(whole.num_rows, bool)))
    return pa.concat_tables([current, closed], promote_options="permissive")


def label_changes(changes: pa.Table, change_type: str) -> pa.Table:
    """``floe changes`` on a history table, in its terms: a version closed by a load shows as
    its old (open) row deleted and the same row written back with its ``valid_to``; that pair
    becomes one ``closed`` row (the closed version), and a new version ``opened``.  Other
    deletes (a full refresh) stay ``delete``."""
    if VALID_FROM not in changes.column_names or not changes.num_rows:
        return changes
    same = [n for n in changes.column_names
            if n not in (VALID_TO, IS_CURRENT) and not n.startswith("_change")]
    hashed = row_hashes([column_hashes(changes[n]) for n in same])
    kinds = changes[change_type].to_pylist()
    inserted = {h for h, k in zip(hashed.tolist(), kinds, strict=True) if k == "insert"}
    deleted = {h for h, k in zip(hashed.tolist(), kinds, strict=True) if k == "delete"}
    labels: list[str] = []
    keep: list[bool] = []
    for h, kind in zip(hashed.tolist(), kinds, strict=True):
        if kind == "delete":
            keep.append(h not in inserted)  # re-written closed: the insert tells it
            labels.append("delete")
        else:
            keep.append(True)
            labels.append("closed" if h in deleted else "opened")
    position = changes.column_names.index(change_type)
    labelled = changes.set_column(position, change_type, pa.array(labels, pa.string()))
    return labelled.filter(pa.array(keep))
