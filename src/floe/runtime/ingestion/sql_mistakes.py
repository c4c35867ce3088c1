"""A ``sql_database`` load that failed on a name floe.yaml got wrong, said in the user's terms.

dlt reports a cursor column the table lacks as ``KeyError: 'modified_at'`` (it builds the query
before any row arrives, so the Arrow column guard never sees it), and SQLAlchemy a table that
does not exist as ``NoSuchTableError: custmers``.  Only on that failure path, floe asks the
database what it does have and names the closest.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from floe.artifacts import CompiledSource
from floe.runtime.ingestion.columns import missing_column, named_columns
from floe.runtime.ingestion.errors import ErrorCategory, IngestionError, about


def explain_sql_mistake(error: BaseException, source: CompiledSource, project_root: Path,
                        environ: Mapping[str, str] | None) -> IngestionError | None:
    """The user's mistake behind ``error``, or None when it is not one of these."""
    if source.source_type != "sql_database":
        return None
    import sqlalchemy.exc

    is_table = isinstance(error, sqlalchemy.exc.NoSuchTableError)
    named = {column: key for key, column in named_columns(source)}
    is_column = isinstance(error, KeyError) and error.args and error.args[0] in named
    if not (is_table or is_column):
        return None
    from floe.runtime.ingestion.sources import database_url, resolved_config

    config = resolved_config(source, environ)
    schema = config.get("schema")
    try:
        engine = sqlalchemy.create_engine(database_url(str(config["credentials"]), project_root))
        try:
            inspector: Any = sqlalchemy.inspect(engine)
            tables = sorted(inspector.get_table_names(schema=schema))
            if is_table:
                return _no_table(source, str(error.args[0] if error.args else error), tables,
                                 schema or inspector.default_schema_name)
            column = str(error.args[0])
            for table in config.get("tables") or tables:
                have = [c["name"] for c in inspector.get_columns(table, schema=schema)]
                if column not in have:
                    return missing_column(source, source.table_for(table), named[column],
                                          column, have)
        finally:
            engine.dispose()
    except Exception:  # the database cannot tell us more: keep the original error
        return None
    return None


def _no_table(source: CompiledSource, name: str, tables: list[str], schema: str
              ) -> IngestionError:
    close = difflib.get_close_matches(name, tables, n=1)
    return IngestionError(
        f"source_config.tables: no table {name} in schema {schema}"
        + (f" — did you mean {close[0]}?" if close else "")
        + f"; its tables: {', '.join(tables) or 'none'}; nothing was committed",
        category=ErrorCategory.CONFIGURATION, **about(source))
