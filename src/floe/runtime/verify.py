"""``floe verify``: prove a Bronze table equals its source, or say exactly where it does not.

Both sides are reduced to the same canonical form (``canonical.py``: numbers by value,
timestamps as UTC microseconds, JSON by value, bytes as hex) and hashed column by column in
Arrow; a row's hash mixes its columns' hashes by position, and the table's checksum is the sum
of its rows' hashes modulo 2**64, so row order does not matter.  PostgreSQL is read with ADBC
(binary COPY straight into Arrow batches), Bronze with pyiceberg, both at once; other databases
go through SQLAlchemy and ``canonical`` value by value.  Memory stays bounded: the first pass
keeps only counts and checksums.  When they disagree, a second pass keeps each row's key and
hashes, and the rows are compared by primary key to name up to ``sample`` keys: missing in
Bronze, extra in Bronze, or different (with the differing columns).
Verify only reads: the source sees one SELECT per table and pass.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, EqualTo
from pyiceberg.table import Table
from rich.console import Console
from rich.table import Table as RichTable

from floe.artifacts import CDC_SOURCE_TYPES, CompiledSource
from floe.logs import mask
from floe.runtime.canonical import canonical, column_hashes, row_hashes
from floe.runtime.iceberg.history import IS_CURRENT
from floe.runtime.iceberg.merge_load import last_per_key, marked
from floe.runtime.iceberg.state import newest_load
from floe.runtime.ingestion.adbc_loader import as_text_where_needed
from floe.runtime.ingestion.errors import IngestionError
from floe.runtime.ingestion.landing import REJECTED_SUFFIX
from floe.runtime.ingestion.sources import (
    bronze_types,
    database_url,
    empty_landing,
    landing_files,
    landing_reader,
    read_file,
    resolved_config,
)
from floe.runtime.transforms import TableTransform

_MOD = 2**64
_FLOE_COLUMNS = ("_floe_", "_dlt_")
_BATCH = 50_000
_KEY = "__floe_key"
_ROW = "__floe_row"
_OTHER = "__bronze"


@dataclass
class Side:
    """One side of a table reduced to what verify compares."""

    rows: int = 0
    checksum: int = 0
    parts: list[pa.Table] = field(default_factory=list)  # second pass: key + hashes per row

    def table(self, columns: list[str]) -> pa.Table:
        if self.parts:
            return pa.concat_tables(self.parts)
        return pa.table({_KEY: pa.array([], pa.string()), _ROW: pa.array([], pa.uint64()),
                         **{c: pa.array([], pa.uint64()) for c in columns}})


def _digest(batches: Iterable[pa.RecordBatch], columns: list[str], key: list[str],
            marker: str | None, collect: bool) -> Side:
    """Count and checksum ``batches`` (rows ``marker`` marks left out); with ``collect``,
    also keep every row's key and hashes."""
    side = Side()
    for batch in batches:
        if marker is not None:
            batch = batch.filter(pc.invert(marked(batch.column(marker))))
        if not batch.num_rows:
            continue
        hashes = [column_hashes(batch.column(c)) for c in columns]
        rows = row_hashes(hashes)
        side.rows += batch.num_rows
        side.checksum = (side.checksum + int(rows.sum(dtype=np.uint64))) % _MOD
        if collect:
            names = ([", ".join(canonical(v) for v in values) for values in zip(
                *(batch.column(k).to_pylist() for k in key), strict=True)] if key
                else [f"row {h:016x}" for h in rows.tolist()])
            side.parts.append(pa.table({_KEY: pa.array(names, pa.string()), _ROW: rows,
                                        **dict(zip(columns, hashes, strict=True))}))
    return side


def _marked_value(value: Any) -> bool:
    """``marked`` for one Python value: the load's own rule, so both sides agree."""
    return value is not None and value is not False


@dataclass
class TableReport:
    table: str
    status: str  # match | mismatch | not_comparable
    reason: str = ""
    source_rows: int | None = None
    bronze_rows: int | None = None
    source_checksum: str | None = None
    bronze_checksum: str | None = None
    lag: str | None = None
    lag_seconds: float | None = None  # when the cursor is a time
    missing_in_bronze: list[str] = field(default_factory=list)
    extra_in_bronze: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def details(self) -> str:
        """What differs, in one line a person can act on."""
        return "; ".join(filter(None, [
            self.reason,
            "missing in Bronze: " + ", ".join(self.missing_in_bronze)
            if self.missing_in_bronze else "",
            "extra in Bronze: " + ", ".join(self.extra_in_bronze)
            if self.extra_in_bronze else "",
            "different: " + ", ".join(self.different) if self.different else ""]))


def _shared_columns(bronze: Table, source_columns: Iterable[str]) -> list[str]:
    mine = {f.name for f in bronze.schema().fields}
    return sorted(c for c in source_columns
                  if c in mine and not c.startswith(_FLOE_COLUMNS) and "__v_" not in c)


def _bronze_batches(table: Table, columns: list[str], live: str | None
                   ) -> Iterator[pa.RecordBatch]:
    """Bronze's rows to compare (a history table: its current versions)."""
    wanted = list(dict.fromkeys([*columns, *([live] if live else [])]))
    current = EqualTo(term=IS_CURRENT, value=True) if IS_CURRENT in \
        table.schema().column_names else AlwaysTrue()
    yield from table.scan(row_filter=current,
                          selected_fields=tuple(wanted)).to_arrow_batch_reader()


def _source_batches(engine: sqlalchemy.Engine, reflected: sqlalchemy.Table, columns: list[str],
                    marker: str | None) -> Iterator[pa.RecordBatch]:
    """The source's rows, those its delete_column marks left out: PostgreSQL as Arrow batches
    over ADBC's binary COPY; any other database through SQLAlchemy, each value turned into its
    canonical text here."""
    wanted = list(dict.fromkeys([*columns, *([marker] if marker else [])]))
    query = sqlalchemy.select(*(reflected.c[c] for c in wanted))
    if engine.dialect.name == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc

        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with adbc.connect(url) as connection, connection.cursor() as cursor:
            # the same text casts the load used for types Arrow has no place for
            cursor.execute(str(as_text_where_needed(query).compile(dialect=engine.dialect)))
            for batch in cursor.fetch_record_batch():
                yield batch if marker is None else batch.filter(
                    pc.invert(marked(batch.column(marker))))
        return
    if engine.dialect.name in ("mysql", "mariadb"):
        yield from _mysql_batches(engine, reflected, wanted, marker)
        return
    marked_at = wanted.index(marker) if marker else None
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(query)
        for rows in iter(lambda: result.fetchmany(_BATCH), []):
            live = [row for row in rows
                    if marked_at is None or not _marked_value(row[marked_at])]
            values = list(zip(*live, strict=True)) if live else [() for _ in wanted]
            yield pa.RecordBatch.from_arrays(
                [pa.array([None if v is None else canonical(v) for v in column], pa.string())
                 for column in values[:len(columns)]], names=columns)


def _mysql_batches(engine: sqlalchemy.Engine, reflected: sqlalchemy.Table, wanted: list[str],
                   marker: str | None) -> Iterator[pa.RecordBatch]:
    """MySQL/MariaDB with connectorx, typed as Bronze keeps them (the reader mysql_cdc's copy
    uses): 20x faster than the row-by-row path."""
    from floe.runtime.mysql.connect import connection_settings
    from floe.runtime.mysql.read import describe, read_batches

    settings = connection_settings(engine.url.render_as_string(hide_password=False))
    database = str(reflected.schema or settings["database"])
    described, _ = describe(settings, database, reflected.name)
    types = dict(described)
    for batch in read_batches(settings, database, reflected.name,
                              [(c, types[c]) for c in wanted]):
        yield batch if marker is None else batch.filter(pc.invert(marked(batch.column(marker))))


def _differences(source: Side, bronze: Side, columns: list[str], keyed: bool, sample: int,
                 report: TableReport) -> None:
    mine, theirs = source.table(columns), bronze.table(columns)
    if not keyed:  # a multiset of rows: compare how often each row hash occurs
        counts = [t.group_by(_ROW).aggregate([([], "count_all")]) for t in (mine, theirs)]
        joined = counts[0].join(counts[1], _ROW, join_type="full outer", right_suffix=_OTHER)
        at_source = pc.fill_null(joined["count_all"], 0)
        in_bronze = pc.fill_null(joined[f"count_all{_OTHER}"], 0)
        rows = [f"row {h:016x}" for h in joined[_ROW].to_pylist()]
        for name, more in zip(rows, pc.subtract(at_source, in_bronze).to_pylist(), strict=True):
            target = report.missing_in_bronze if more > 0 else report.extra_in_bronze
            if more and len(target) < sample:
                target.append(name)
        return
    report.missing_in_bronze = _keys(mine.join(theirs.select([_KEY]), _KEY,
                                               join_type="left anti"), sample)
    report.extra_in_bronze = _keys(theirs.join(mine.select([_KEY]), _KEY,
                                               join_type="left anti"), sample)
    both = mine.join(theirs, _KEY, join_type="inner", right_suffix=_OTHER)
    differ = both.filter(pc.not_equal(both[_ROW], both[_ROW + _OTHER])).sort_by(_KEY)
    for row in differ.slice(0, sample).to_pylist():
        changed = [c for c in columns if row[c] != row[c + _OTHER]]
        report.different.append(f"{row[_KEY]} ({', '.join(changed)})")


def _keys(rows: pa.Table, sample: int) -> list[str]:
    return [str(k) for k in rows.sort_by(_KEY)[_KEY].slice(0, sample).to_pylist()]


def _lag(source: CompiledSource, engine: sqlalchemy.Engine, reflected: sqlalchemy.Table,
         bronze: Table) -> tuple[str | None, float | None]:
    """Newest cursor value at the source minus in Bronze (CDC sources: the last change
    applied), as text and, for a time cursor, in seconds."""
    column = source.cursor_field
    if source.source_type in CDC_SOURCE_TYPES:
        newest = _bronze_max(bronze, "_floe_committed_at")
        return (f"last change applied at {newest}" if newest else None), None
    if not column:
        return None, None
    with engine.connect() as connection:
        at_source = connection.execute(sqlalchemy.select(
            sqlalchemy.func.max(reflected.c[column]))).scalar()
    in_bronze = _bronze_max(bronze, column)
    if at_source is None or in_bronze is None:
        return None, None
    try:
        lag = at_source - in_bronze
    except TypeError:
        return f"source at {at_source}, Bronze at {in_bronze}", None
    seconds = lag.total_seconds() if isinstance(lag, dt.timedelta) else None
    return str(lag), seconds


def _bronze_max(table: Table, column: str) -> Any:
    if column not in {f.name for f in table.schema().fields}:
        return None
    values = table.scan(selected_fields=(column,)).to_arrow()[column]
    return pc.max(values).as_py() if len(values) else None


def verify_source(source: CompiledSource, catalog: Catalog, project_root: Path,
                  sample: int = 10, environ: Mapping[str, str] | None = None
                  ) -> list[TableReport]:
    """One report per table of ``source``."""
    if source.source_type == "filesystem":
        return [_verify_files(source, catalog, project_root, sample, environ)]
    if source.source_type not in ("sql_database", *CDC_SOURCE_TYPES):
        why = ("its function gives what it has now, like an API, not what was loaded"
               if source.source_type == "python" else
               "an API shows only what it has now, not what was loaded")
        return [TableReport(source.destination_table, "not_comparable",
                            f"{source.source_type} sources cannot be re-read for comparison "
                            f"({why})")]
    config = resolved_config(source, environ)
    url = database_url(str(config["credentials"]), project_root)
    engine = sqlalchemy.create_engine(url)
    try:
        names = list(source.resources) or sorted(
            sqlalchemy.inspect(engine).get_table_names(schema=config.get("schema")))
        return [_verify_table(source, catalog, engine, config.get("schema"), name, sample,
                              environ) for name in names]
    finally:
        engine.dispose()


def _verify_table(source: CompiledSource, catalog: Catalog, engine: sqlalchemy.Engine,
                  schema: str | None, name: str, sample: int,
                  environ: Mapping[str, str] | None) -> TableReport:
    bronze = _bronze(catalog, (source.namespace, source.table_for(name)))
    if isinstance(bronze, TableReport):
        try:
            reflected = sqlalchemy.Table(name, sqlalchemy.MetaData(), autoload_with=engine,
                                         schema=schema)
            with engine.connect() as connection:
                empty = connection.execute(
                    sqlalchemy.select(reflected).limit(1)).first() is None
        except sqlalchemy.exc.SQLAlchemyError:
            return bronze
        return _empty_source(bronze, f"source table {name} has no rows") if empty else bronze
    return _compare(source, bronze, engine, schema, name, sample, environ)


def _empty_source(report: TableReport, why: str) -> TableReport:
    """Not in Bronze because there was nothing to load: the source is empty, not forgotten."""
    return TableReport(report.table, "match", f"{why}: nothing to load (Bronze creates the "
                       "table with the first rows)", source_rows=0, bronze_rows=0)


def _bronze(catalog: Catalog, identifier: tuple[str, str]) -> Table | TableReport:
    """The Bronze table, or the report that it is not there yet."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return TableReport(".".join(identifier), "mismatch", "not in Bronze yet: run floe run")


def _compare(source: CompiledSource, bronze: Table, engine: sqlalchemy.Engine,
             schema: str | None, name: str, sample: int,
             environ: Mapping[str, str] | None = None) -> TableReport:
    report = TableReport(".".join(bronze.name()[-2:]), "match")
    try:  # reflected once: columns, primary key, and the table to query
        reflected = bronze_types(sqlalchemy.Table(name, sqlalchemy.MetaData(),
                                                  autoload_with=engine, schema=schema))
    except sqlalchemy.exc.NoSuchTableError:
        return TableReport(report.table, "not_comparable", f"source table {name} not found")
    source_key = [c.name for c in reflected.primary_key.columns]
    names = list(reflected.columns.keys())
    typed = engine.dialect.name in ("postgresql", "mysql", "mariadb")
    shaped = Shaped.of(source, environ, names, report, typed)
    if isinstance(shaped, TableReport):
        return shaped
    columns = _shared_columns(bronze, shaped.landed)
    key = [k for k in source.primary_key or source_key if k in columns]
    if source.write_mode == "append" and not source.primary_key:
        key = []  # append keeps every row it got: compare as a multiset
    report.lag, report.lag_seconds = _lag(source, engine, reflected, bronze)
    read = shaped.read(columns)
    return _reconcile(report, lambda: shaped.batches(
        _source_batches(engine, reflected, read, source.delete_column), report.table, key),
        None, bronze, _deleted_marker(source), columns, key, sample)


@dataclass
class Shaped:
    """The source side through the source's transform, as the load shaped it (hashes with the
    same salt), so Bronze compares with what it should hold.  A database read as text cannot
    run expressions: its computed columns are skipped, and said so."""

    transform: TableTransform | None
    landed: list[str]  # the columns Bronze should have
    sources: dict[str, str]  # landed column -> the source column it passes on (renames)
    names: list[str]  # the source's columns

    @classmethod
    def of(cls, source: CompiledSource, environ: Mapping[str, str] | None, names: list[str],
           report: TableReport, typed: bool) -> Shaped | TableReport:
        if source.transform is None:
            return cls(None, names, {n: n for n in names}, names)
        transform = TableTransform(source.transform, os.environ if environ is None
                                   else environ, f"source {source.name}")
        through = transform.passed_through(names)
        if typed:
            return cls(transform, transform.output_names(names), through, names)
        if source.transform.where:
            return TableReport(report.table, "not_comparable", "its transform filters rows "
                               "(where), which needs the source's typed values: floe verify "
                               "reads this database as text")
        skipped = [n for n in transform.output_names(names) if n not in through]
        report.reason = (f"computed columns skipped ({', '.join(skipped)}): floe verify "
                         "reads this database as text") if skipped else ""
        return cls(None, list(through), through, names)

    def read(self, columns: list[str]) -> list[str]:
        """The source columns to read for ``columns``."""
        if self.transform is not None:  # expressions may read any of them
            return self.names
        return [self.sources[c] for c in columns]

    def batches(self, batches: Iterable[pa.RecordBatch], table: str, key: list[str]
                ) -> Iterator[pa.RecordBatch]:
        landed_as = {source: out for out, source in self.sources.items()}
        for batch in batches:
            if self.transform is None:
                yield batch.rename_columns([landed_as.get(n, n) for n in batch.schema.names])
                continue
            rows = self.transform.apply(pa.Table.from_batches([batch]), table, key).rows
            yield from rows.to_batches()


def _reconcile(report: TableReport, source_batches: Callable[[], Iterable[pa.RecordBatch]],
               source_marker: str | None, bronze: Table, live: str | None, columns: list[str],
               key: list[str], sample: int) -> TableReport:
    """Both sides' counts and checksums (read at once); on a mismatch, a second pass that
    names the keys."""

    def sides(collect: bool) -> tuple[Side, Side]:
        with ThreadPoolExecutor(1) as pool:
            at_source = pool.submit(lambda: _digest(source_batches(), columns, key,
                                                    source_marker, collect))
            in_bronze = _digest(_bronze_batches(bronze, columns, live), columns, key, live,
                                collect)
            return at_source.result(), in_bronze

    source_side, bronze_side = sides(collect=False)
    report.source_rows, report.bronze_rows = source_side.rows, bronze_side.rows
    report.source_checksum = f"{source_side.checksum:016x}"
    report.bronze_checksum = f"{bronze_side.checksum:016x}"
    if (source_side.rows, source_side.checksum) != (bronze_side.rows, bronze_side.checksum):
        report.status = "mismatch"
        source_side, bronze_side = sides(collect=True)
        _differences(source_side, bronze_side, columns, bool(key), sample, report)
    return report


def _verify_files(source: CompiledSource, catalog: Catalog, project_root: Path,
                  sample: int, environ: Mapping[str, str] | None) -> TableReport:
    """A landing folder against Bronze: the files the last load could have read (modified
    before it committed), parsed as the load parses them (Arrow, column names as written);
    files newer than that are the lag.  A merge keeps the last row per key across the
    files, oldest first, as the loads did."""
    bronze = _bronze(catalog, (source.namespace, source.table_for(source.resources[0])))
    if isinstance(bronze, TableReport):
        try:
            why = empty_landing(source, project_root, environ)
        except IngestionError as exc:
            return TableReport(bronze.table, "not_comparable", exc.message)
        files = landing_files(resolved_config(source, environ), project_root)
        return _empty_source(bronze, why) if not files else bronze
    return _compare_files(source, bronze, project_root, sample, environ)


def _compare_files(source: CompiledSource, bronze: Table, project_root: Path, sample: int,
                   environ: Mapping[str, str] | None) -> TableReport:
    report = TableReport(".".join(bronze.name()[-2:]), "match")
    loaded = newest_load(bronze)
    if loaded is None:
        return TableReport(report.table, "mismatch", "no floe load in this table yet")
    config = resolved_config(source, environ)
    files = landing_files(config, project_root)
    read = [f for f in files if f["modification_date"].timestamp() * 1000 <= loaded.timestamp_ms]
    newer = len(files) - len(read)
    report.lag = f"{newer} file(s) newer than the last load" if newer else None
    # parsed as the load parses them: rows it skipped or quarantined are accounted for
    reader = landing_reader(config, "fail" if source.bad_rows == "fail" else "skip")
    parts = [pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
             for item in read for b in read_file(item, reader)]
    rows = pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})
    if reader.skipped:
        kept_aside = f"quarantined in {report.table}{REJECTED_SUFFIX}" \
            if source.bad_rows == "quarantine" else "skipped by the load"
        report.reason = f"{reader.skipped} bad row(s) {kept_aside}, accounted for"
    key = [k for k in source.primary_key if k in rows.column_names] \
        if source.write_mode == "merge" else []
    if key and rows.num_rows:
        rows = rows.filter(last_per_key(rows, key))
    if source.transform is not None:  # after last-per-key: a key whose last row fails
        transform = TableTransform(  # `where` was deleted by the load
            source.transform, os.environ if environ is None else environ,
            f"source {source.name}")
        rows = transform.apply(rows, report.table, key).rows
    columns = _shared_columns(bronze, rows.column_names)
    marker = source.delete_column if source.delete_column in rows.column_names else None
    return _reconcile(report, lambda: rows.to_batches(), marker, bronze,
                      _deleted_marker(source), columns, key, sample)


def reconcile(source: CompiledSource, bronze: Table, resource: str, project_root: Path,
              max_lag_seconds: int | None, environ: Mapping[str, str] | None = None
              ) -> tuple[bool, str, dict[str, Any]]:
    """The ``reconcile`` check: floe verify of one table, as (passed, message, metadata)."""
    if source.source_type == "filesystem":
        report = _compare_files(source, bronze, project_root, 5, environ)
    else:
        config = resolved_config(source, environ)
        engine = sqlalchemy.create_engine(database_url(str(config["credentials"]), project_root))
        try:
            report = _compare(source, bronze, engine, config.get("schema"), resource, sample=5,
                              environ=environ)
        finally:
            engine.dispose()
    metadata = {k: v for k, v in report.as_dict().items() if v not in (None, [], "")}
    if report.status != "match":
        return False, f"Bronze differs from the source ({report.source_rows} source rows, " \
                      f"{report.bronze_rows} in Bronze): {mask(report.details())}", metadata
    lag = report.lag_seconds
    if max_lag_seconds is not None and lag is not None and lag > max_lag_seconds:
        return False, f"{report.bronze_rows} rows match, but Bronze lags the source by " \
                      f"{report.lag} (max {max_lag_seconds} s)", metadata
    return True, f"{report.bronze_rows} rows match the source (checksum " \
                 f"{report.bronze_checksum})", metadata


def _deleted_marker(source: CompiledSource) -> str | None:
    """The Bronze column marking rows deleted at the source, which verify leaves out."""
    if source.source_type in CDC_SOURCE_TYPES:
        return "_floe_deleted_at" if source.deletes == "soft" else None
    return source.delete_column


def verify(sources: Iterable[CompiledSource], catalog: Catalog, project_root: Path,
           sample: int = 10) -> Iterator[tuple[CompiledSource, TableReport]]:
    for source in sources:
        try:
            reports = verify_source(source, catalog, project_root, sample)
        except Exception as exc:  # the source is down, a secret is missing...
            reports = [TableReport(source.destination_table, "not_comparable",
                                   f"{type(exc).__name__}: {mask(str(exc))}")]
        for report in reports:
            yield source, report


def print_verification(console: Console, artifacts_path: Path | None,
                       select: Sequence[str], env: str | None, as_json: bool,
                       sample: int) -> int:
    """The CLI: a table (or JSON) of every compared table; returns how many do not match."""
    from floe.runtime.cells import name_column
    from floe.runtime.iceberg.catalog import connect
    from floe.runtime.project import load_project, require_environment, select_sources

    project = load_project(artifacts_path)
    require_environment(project.artifacts, env)
    sources = select_sources(project.artifacts, select)
    results = list(verify(sources, connect(project), project.root, sample))
    failed = sum(1 for _, report in results if report.status != "match")
    if as_json:
        print(json.dumps([{"source": s.name, **r.as_dict()} for s, r in results], indent=2))
        return failed
    table = RichTable("source", name_column(), "status", "source rows", "bronze rows", "lag",
                      "details", title=f"floe verify: {len(results)} table(s)")
    colors = {"match": "green", "mismatch": "red", "not_comparable": "yellow"}
    for source, report in results:
        table.add_row(source.name, report.table,
                      f"[{colors[report.status]}]{report.status}[/{colors[report.status]}]",
                      _count(report.source_rows), _count(report.bronze_rows),
                      report.lag or "", mask(report.details()))
    console.print(table)
    return failed


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
