"""A replicated table's rows through its source's ``transform:`` before the commit.

The fold holds rows as the source sent them; the transform shapes them as for any other load.
Three things are special to a change stream:
- ``where``: a row updated out of the filter is deleted from Bronze (its key joins the
  deletes; with history, its version is closed at that change);
- values that come from Bronze rather than the source (a soft-deleted row kept as Bronze has
  it, PostgreSQL's unchanged TOASTed values) are already transformed: they are never
  transformed again.  A column that passes through lands Bronze's value; a computed, hashed or
  masked column that reads an unchanged value keeps Bronze's value of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from floe.runtime.cdc.copy_parts import write_plain
from floe.runtime.cdc.fold import COMMITTED_COLUMN, DELETED_COLUMN, Key, Row, TableFold
from floe.runtime.transforms import TableTransform


def as_source(transform: TableTransform, fold: TableFold, rows: dict[Key, Row]
              ) -> dict[Key, Row]:
    """Bronze's rows under the fold's source names, for the columns Bronze keeps as sent."""
    through = transform.passed_through(list(fold.types))
    return {key: {source: row[out] for out, source in through.items() if out in row}
            for key, row in rows.items()}


def shape_copy(transform: TableTransform, fold: TableFold, files: list[str], workdir: Path,
               table_name: str) -> list[str]:
    """The first copy's files, transformed (rows out of ``where`` simply never land)."""
    shaped = []
    for number, path in enumerate(files):
        applied = transform.apply(pq.read_table(path), table_name, fold.key)
        shaped.append(write_plain(applied.rows, workdir / f"{Path(path).stem}.t{number}.parquet"))
    return shaped


def _patch(rows: pa.Table, key: Sequence[str], patches: dict[Key, Row]) -> pa.Table:
    """``rows`` with the cells in ``patches`` (by key, then column) replaced."""
    if not patches or not rows.num_rows:
        return rows
    keys = list(zip(*(rows[k].to_pylist() for k in key), strict=True))
    at = {k: i for i, k in enumerate(keys) if k in patches}
    columns = {name for patch in patches.values() for name in patch}
    for name in columns:
        if name not in rows.column_names:
            continue
        values = rows[name].to_pylist()
        for found, index in at.items():
            if name in patches[found]:
                values[index] = patches[found][name]
        position = rows.column_names.index(name)
        rows = rows.set_column(position, name, pa.array(values, rows[name].type))
    return rows


def latest_rows(transform: TableTransform, fold: TableFold, table_name: str,
                fresh: pa.Table, from_bronze: dict[Key, Row], unchanged: dict[Key, set[str]],
                soft: dict[Key, Row] | None) -> tuple[pa.Table, pa.Table]:
    """(the rows to upsert, the keys ``where`` removes).  ``fresh``: the fold's rows as the
    source sent them (TOAST gaps filled); ``from_bronze``: Bronze's rows of the keys whose
    gaps it filled; ``soft``: Bronze's rows of soft-deleted keys."""
    applied = transform.apply(fresh, table_name, fold.key)
    patches = {}
    for key, columns in unchanged.items():
        if key in from_bronze:
            keep = transform.depending_on(columns)
            patches[key] = {c: v for c, v in from_bronze[key].items() if c in keep}
    rows = _patch(applied.rows, fold.key, patches)
    if soft:
        marked = [{**soft[key], COMMITTED_COLUMN: fold.versions[key].committed_at,
                   fold.position_column: fold.versions[key].lsn,
                   DELETED_COLUMN: fold.versions[key].committed_at} for key in soft]
        rows = pa.concat_tables([rows, pa.Table.from_pylist(marked, schema=rows.schema)])
    return rows, applied.filtered


def history_rows(transform: TableTransform, fold: TableFold, table_name: str,
                 versions: pa.Table) -> pa.Table:
    """Every version, transformed; one out of ``where`` closes its key at that change."""
    applied = transform.apply(versions, table_name, fold.key, filter_rows=False)
    rows = applied.rows
    if applied.kept is None:
        return rows
    marker = pc.if_else(applied.kept, rows[DELETED_COLUMN], rows[COMMITTED_COLUMN])
    return rows.set_column(rows.column_names.index(DELETED_COLUMN), DELETED_COLUMN, marker)
