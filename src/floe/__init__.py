"""floe: declarative YAML to Bronze Apache Iceberg tables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__version__ = "0.1.0"  # the one place it is written (pyproject reads it)


def changes(table: str, since: str | int | dt.datetime | None = None,
            until: str | int | dt.datetime | None = None, consumer: str | None = None,
            artifacts: Path | None = None, env: str | None = None) -> pa.Table:
    """Rows of Bronze ``table`` ("namespace.table") that changed after ``since`` up to
    ``until`` (a snapshot id or a time; default: the current snapshot), as a pyarrow.Table.

    Each row has every column plus ``_change_type`` (``insert`` or ``delete``; an update is a
    delete of the old row and an insert of the new one), ``_change_snapshot_id`` and
    ``_change_committed_at``.  Rows a copy-on-write merge rewrote unchanged are not reported.
    With ``consumer``, reading starts where that consumer last stopped (a new consumer starts
    from an empty table: every current row is an insert) and, after the read, its position
    moves on, so each change is read once.  ``artifacts`` is the compiled artifact (default
    ``$FLOE_ARTIFACTS`` or ``target/compiled_artifacts.json``): its environment names the
    catalog.  Raises ``floe.errors.FloeError`` with a readable message.
    """
    from floe.runtime.changes import changes as read_changes

    return read_changes(table, since, until, consumer, artifacts, env)


def as_of(table: str, at: str | dt.datetime, artifacts: Path | None = None) -> pa.Table:
    """The rows of history table ``table`` ("namespace.table", loaded with
    ``merge_strategy: scd2``) valid at source time ``at`` (an aware datetime or an ISO time;
    without a zone: UTC), as a ``pyarrow.Table``: each key's version with
    ``_floe_valid_from <= at < _floe_valid_to`` (or still open).  Raises
    ``floe.errors.FloeError`` with a readable message."""
    from floe.runtime.as_of import as_of as read_as_of

    return read_as_of(table, at, artifacts)


__all__ = ["__version__", "as_of", "changes"]
