"""MySQL/MariaDB tables for ``sql_database`` read with connectorx into Bronze-typed Arrow.

dlt builds the query (columns, the incremental cursor's WHERE, limits); floe selects each
column through the expression ``runtime/mysql/read.py`` gives its type and runs the query with
connectorx: 1M rows in about half a second instead of 8-10 s through PyMySQL's tuples, with
the same Bronze types the ``mysql_cdc`` copy and its binlog give (zero dates null, unsigned
BIGINT exact, TIMESTAMP in UTC).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy
from dlt.sources.sql_database.helpers import BaseTableLoader

from floe.runtime.mysql.connect import connection_settings
from floe.runtime.mysql.read import describe, expression, read_query


class MySQLTableLoader(BaseTableLoader):
    """dlt's query with each column read as Bronze keeps it, over connectorx."""

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
        settings = connection_settings(
            self.engine.url.render_as_string(hide_password=False))
        database = str(self.table.schema or settings["database"])
        described, _ = describe(settings, database, self.table.name)
        types = dict(described)
        query = self.make_query()
        if not isinstance(query, sqlalchemy.Select):
            raise NotImplementedError("a text query: floe maps only dlt's own SELECT")
        names = [c.name for c in query.selected_columns]
        wrapped: Any = query.with_only_columns(
            *(sqlalchemy.literal_column(expression(n, types[n])).label(n) for n in names),
            maintain_column_froms=True)
        for batch in read_query(settings, self.compile_query(wrapped),
                                [(n, types[n]) for n in names], self.chunk_size):
            if batch.num_rows:
                yield pa.Table.from_batches([batch])
