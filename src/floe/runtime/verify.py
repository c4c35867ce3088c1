"""``floe verify``: prove a Bronze table equals its source, or say exactly where it does not.

Both sides are reduced to the same canonical form, value by value, by the same code: numbers by
value (``1``, ``1.0`` and ``1.00`` agree), timestamps as UTC microseconds, JSON by value (keys
sorted), bytes as hex.  Each row's canonical form is hashed (64-bit BLAKE2b); the table's
checksum is the sum of its rows' hashes modulo 2**64, so row order does not matter.  When the
counts or checksums disagree, the rows are compared by primary key and up to ``sample`` keys are
named: missing in Bronze, extra in Bronze, or different (with the differing columns).
Verify only reads: the source sees one SELECT per table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from rich.console import Console
from rich.table import Table as RichTable

from floe.artifacts import CompiledSource
from floe.logs import mask
from floe.runtime.ingestion.sources import local_url, resolved_config

_SEP = "\x1f"
_NULL = "\\N"
_MOD = 2**64
_FLOE_COLUMNS = ("_floe_", "_dlt_")
_BATCH = 50_000


def canonical(value: Any) -> str:
    """One value's canonical text: equal values give equal text whatever their type."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        delta = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return str(delta // dt.timedelta(microseconds=1))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(value, UUID):
        return str(value)
    text = str(value)
    if text[:1] in "{[":  # JSON by value, whichever way a loader spaced it
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except ValueError:
            return text
    return text


@dataclass
class Side:
    """One side of a table reduced to what verify compares."""

    rows: int = 0
    checksum: int = 0
    hashes: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = field(default_factory=dict)

    def add(self, key: tuple[str, ...], values: tuple[str, ...]) -> None:
        digest = int.from_bytes(hashlib.blake2b(_SEP.join(values).encode(),
                                                digest_size=8).digest(), "big")
        self.rows += 1
        self.checksum = (self.checksum + digest) % _MOD
        # rows without a usable key (append) are compared as a multiset, by their hash
        slot = key if key else (str(digest), str(self.rows))
        self.hashes[slot] = (digest, values)


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


def _marked(value: Any) -> bool:
    """A delete marker is set: true, or any non-null value (a deletion time)."""
    return value not in (None, False, 0)


def _bronze_side(table: Table, columns: list[str], key: list[str], live: str | None) -> Side:
    side = Side()
    wanted = list(dict.fromkeys([*columns, *([live] if live else [])]))
    reader = table.scan(selected_fields=tuple(wanted)).to_arrow_batch_reader()
    at = [columns.index(k) for k in key]
    for batch in reader:
        rows = batch.to_pylist()
        for row in rows:
            if live and _marked(row.get(live)):
                continue  # soft-deleted: not in the source any more
            values = tuple(canonical(row[c]) for c in columns)
            side.add(tuple(values[i] for i in at), values)
    return side


def _source_side(engine: sqlalchemy.Engine, reflected: sqlalchemy.Table, columns: list[str],
                 key: list[str], marker: str | None) -> Side:
    """The source's rows; rows its delete_column marks are left out (Bronze drops them, or
    keeps them marked, which the Bronze side leaves out too)."""
    side = Side()
    marked_at = columns.index(marker) if marker in columns else None
    query = sqlalchemy.select(*(reflected.c[c] for c in columns))
    at = [columns.index(k) for k in key]
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(query)
        for rows in iter(lambda: result.fetchmany(_BATCH), []):
            for row in rows:
                if marked_at is not None and _marked(row[marked_at]):
                    continue
                values = tuple(canonical(v) for v in row)
                side.add(tuple(values[i] for i in at), values)
    return side


def _differences(source: Side, bronze: Side, columns: list[str], sample: int,
                 report: TableReport) -> None:
    def named(slot: tuple[str, ...]) -> str:
        return ", ".join(slot)

    for slot, (digest, values) in source.hashes.items():
        other = bronze.hashes.get(slot)
        if other is None:
            if len(report.missing_in_bronze) < sample:
                report.missing_in_bronze.append(named(slot))
        elif other[0] != digest and len(report.different) < sample:
            changed = [c for c, a, b in zip(columns, values, other[1], strict=True) if a != b]
            report.different.append(f"{named(slot)} ({', '.join(changed)})")
    for slot in bronze.hashes:
        if slot not in source.hashes and len(report.extra_in_bronze) < sample:
            report.extra_in_bronze.append(named(slot))


def _lag(source: CompiledSource, engine: sqlalchemy.Engine, reflected: sqlalchemy.Table,
         bronze: Table) -> tuple[str | None, float | None]:
    """Newest cursor value at the source minus in Bronze (postgres_cdc: the last change
    applied), as text and, for a time cursor, in seconds."""
    column = source.cursor_field
    if source.source_type == "postgres_cdc":
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
    import pyarrow.compute as pc

    if column not in {f.name for f in table.schema().fields}:
        return None
    values = table.scan(selected_fields=(column,)).to_arrow()[column]
    return pc.max(values).as_py() if len(values) else None


def verify_source(source: CompiledSource, catalog: Catalog, project_root: Path,
                  sample: int = 10, environ: Mapping[str, str] | None = None
                  ) -> list[TableReport]:
    """One report per table of ``source``."""
    if source.source_type not in ("sql_database", "postgres_cdc"):
        return [TableReport(source.destination_table, "not_comparable",
                            f"{source.source_type} sources cannot be re-read for comparison "
                            "(an API or a landing folder shows only what it has now)")]
    config = resolved_config(source, environ)
    url = local_url(str(config["credentials"]), project_root)
    engine = sqlalchemy.create_engine(url)
    try:
        names = list(source.resources) or sorted(
            sqlalchemy.inspect(engine).get_table_names(schema=config.get("schema")))
        return [_verify_table(source, catalog, engine, config.get("schema"), name, sample)
                for name in names]
    finally:
        engine.dispose()


def _verify_table(source: CompiledSource, catalog: Catalog, engine: sqlalchemy.Engine,
                  schema: str | None, name: str, sample: int) -> TableReport:
    identifier = (source.namespace, source.table_for(name))
    try:
        bronze = catalog.load_table(identifier)
    except NoSuchTableError:
        return TableReport(".".join(identifier), "mismatch", "not in Bronze yet: run floe run")
    return _compare(source, bronze, engine, schema, name, sample)


def _compare(source: CompiledSource, bronze: Table, engine: sqlalchemy.Engine,
             schema: str | None, name: str, sample: int) -> TableReport:
    report = TableReport(".".join(bronze.name()[-2:]), "match")
    try:  # reflected once: columns, primary key, and the table to query
        reflected = sqlalchemy.Table(name, sqlalchemy.MetaData(), autoload_with=engine,
                                     schema=schema)
    except sqlalchemy.exc.NoSuchTableError:
        return TableReport(report.table, "not_comparable", f"source table {name} not found")
    columns = _shared_columns(bronze, reflected.columns.keys())
    source_key = [c.name for c in reflected.primary_key.columns]
    key = [k for k in source.primary_key or source_key if k in columns]
    if source.write_mode == "append" and not source.primary_key:
        key = []  # append keeps every row it got: compare as a multiset
    source_side = _source_side(engine, reflected, columns, key, source.delete_column)
    bronze_side = _bronze_side(bronze, columns, key, _deleted_marker(source))
    report.source_rows, report.bronze_rows = source_side.rows, bronze_side.rows
    report.source_checksum = f"{source_side.checksum:016x}"
    report.bronze_checksum = f"{bronze_side.checksum:016x}"
    report.lag, report.lag_seconds = _lag(source, engine, reflected, bronze)
    if (source_side.rows, source_side.checksum) != (bronze_side.rows, bronze_side.checksum):
        report.status = "mismatch"
        _differences(source_side, bronze_side, columns, sample, report)
    return report


def reconcile(source: CompiledSource, bronze: Table, resource: str, project_root: Path,
              max_lag_seconds: int | None, environ: Mapping[str, str] | None = None
              ) -> tuple[bool, str, dict[str, Any]]:
    """The ``reconcile`` check: floe verify of one table, as (passed, message, metadata)."""
    config = resolved_config(source, environ)
    engine = sqlalchemy.create_engine(local_url(str(config["credentials"]), project_root))
    try:
        report = _compare(source, bronze, engine, config.get("schema"), resource, sample=5)
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
    if source.source_type == "postgres_cdc":
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
    from floe.runtime.console import connect, select_sources
    from floe.runtime.project import load_project, require_environment

    project = load_project(artifacts_path)
    require_environment(project.artifacts, env)
    sources = select_sources(project.artifacts, select)
    results = list(verify(sources, connect(project), project.root, sample))
    failed = sum(1 for _, report in results if report.status != "match")
    if as_json:
        print(json.dumps([{"source": s.name, **r.as_dict()} for s, r in results], indent=2))
        return failed
    table = RichTable("source", "table", "status", "source rows", "bronze rows", "lag",
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
