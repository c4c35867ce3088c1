"""A history table (``merge_strategy: scd2``) as it was at a source time: the versions valid
then.  Iceberg prunes data files by the validity columns' bounds before any is read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
from pyiceberg.expressions import And, GreaterThan, IsNull, LessThanOrEqual, Or
from pyiceberg.table import Table

from floe.errors import FloeError
from floe.runtime.iceberg.history import VALID_FROM, VALID_TO
from floe.runtime.project import load_project


def parse_instant(value: str | dt.datetime) -> dt.datetime:
    """An ISO time (``2024-03-31T23:59:59Z``; without a zone: UTC) as an aware datetime."""
    if isinstance(value, dt.datetime):
        instant = value
    else:
        try:
            instant = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise FloeError(f"--as-of {value!r} is not an ISO time, e.g. "
                            "2024-03-31T23:59:59Z") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def versions_at(table: Table, at: str | dt.datetime, limit: int | None = None) -> pa.Table:
    """The rows of ``table`` valid at ``at``: valid_from <= at < valid_to (or still open)."""
    names = {f.name for f in table.schema().fields}
    label = ".".join(table.name()[-2:])
    if VALID_FROM not in names:
        raise FloeError(f"{label} keeps no history: --as-of reads tables loaded with "
                        "merge_strategy: scd2")
    instant = parse_instant(at)
    stamp = instant.astimezone(dt.UTC).isoformat()
    valid = And(LessThanOrEqual(term=VALID_FROM, value=stamp),
                Or(IsNull(term=VALID_TO), GreaterThan(term=VALID_TO, value=stamp)))
    return table.scan(row_filter=valid, limit=limit).to_arrow()


def as_of(table: str, at: str | dt.datetime, artifacts: Path | None = None) -> pa.Table:
    """``floe.as_of``: open the project's catalog and read ``table`` as of ``at``."""
    from pyiceberg.exceptions import NoSuchTableError

    from floe.runtime.iceberg.catalog import connect

    catalog = connect(load_project(artifacts))
    try:
        loaded = catalog.load_table(tuple(table.split(".")))
    except NoSuchTableError:
        raise FloeError(f"table {table} does not exist: `floe tables` lists them") from None
    return versions_at(loaded, at)
