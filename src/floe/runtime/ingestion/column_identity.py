"""Which source column is which, across renames: PostgreSQL's ``attnum``.

A column renamed at the source looks, by name alone, like one column dropped and another added;
Bronze would then keep the old name forever and start a new, empty one.  PostgreSQL numbers
each column of a table (``pg_attribute.attnum``) and a rename keeps the number, so floe records
``{attnum: name}`` with every load and renames the Bronze column (same Iceberg field id, so
older snapshots read under the new name) when the number comes back with another name.
Nothing is guessed from names; other databases and source types keep the documented
behaviour (the new name lands as a new column, the old one stays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_QUERY = """
SELECT c.relname, a.attnum, a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

ColumnIds = dict[str, str]  # attnum (as text, JSON keys are text) -> column name


def source_column_ids(credentials: Any, schema: str | None, tables: Sequence[str] | None
                      ) -> dict[str, ColumnIds]:
    """table -> its columns by attnum; empty for a database that is not PostgreSQL."""
    import sqlalchemy

    if not isinstance(credentials, str) or not credentials.startswith("postgres"):
        return {}
    engine = sqlalchemy.create_engine(credentials)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(_QUERY),
                                      {"schema": schema or "public"}).fetchall()
    finally:
        engine.dispose()
    found: dict[str, ColumnIds] = {}
    for table, attnum, name in rows:
        if tables is None or table in tables:
            found.setdefault(str(table), {})[str(attnum)] = str(name)
    return found


def renames(before: Mapping[str, str] | None, now: Mapping[str, str] | None,
            bronze_columns: Sequence[str]) -> list[tuple[str, str]]:
    """(old, new) for each column whose number now has another name, where Bronze still has
    the old name and not yet the new one."""
    if not before or not now:
        return []
    existing = set(bronze_columns)
    return [(before[n], now[n]) for n in sorted(now, key=int)
            if n in before and before[n] != now[n]
            and before[n] in existing and now[n] not in existing]


def stream_renames(bronze_columns: Sequence[str], seen: Sequence[tuple[str, str]]
                   ) -> list[tuple[str, str]]:
    """(old, new) for Bronze from the renames a CDC stream saw in order (``a -> b``, then
    ``b -> c`` is one rename ``a -> c``), where Bronze has the old name and not the new."""
    final: dict[str, str] = {}
    for old, new in seen:
        origin = next((o for o, n in final.items() if n == old), old)
        final[origin] = new
    existing = set(bronze_columns)
    return [(o, n) for o, n in final.items() if o != n and o in existing and n not in existing]
