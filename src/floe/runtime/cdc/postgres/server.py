"""The PostgreSQL side of ``postgres_cdc``: checks, publication, slot, snapshot copy, changes.

Everything goes through SQL functions on an ordinary connection (psycopg 3), no walsender
session: a run peeks the slot's changes up to the WAL position it saw at its start
(``pg_logical_slot_peek_binary_changes``, which consumes nothing), and only after every table
committed moves the slot on (``pg_replication_slot_advance``).  A crash in between is harmless:
the next run peeks the same changes again and skips what a table already holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.types.string import TextLoader

from floe.runtime.cdc.postgres.pgoutput import int_to_lsn, lsn_to_int

# values that stay text in Bronze: json/jsonb by their PostgreSQL text, uuids, arrays and the rest
_AS_TEXT = ("json", "jsonb", "uuid")


def arrow_type(type_oid: int, typmod: int) -> pa.DataType:
    """The Arrow (and so Iceberg) type of a PostgreSQL column; anything else stays text."""
    simple = {16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(),
              700: pa.float64(), 701: pa.float64(), 1082: pa.date32(), 1083: pa.time64("us"),
              1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 17: pa.binary()}
    if type_oid in simple:
        return simple[type_oid]
    if type_oid == 1700:  # numeric(p, s); unconstrained numeric as dlt does: (38, 9)
        if typmod < 4:
            return pa.decimal128(38, 9)
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return pa.decimal128(precision, scale) if precision <= 38 else pa.string()
    return pa.string()


class ReplicationSetupError(Exception):
    """The database is not ready for logical replication; the message says how to fix it."""


@dataclass(frozen=True)
class TableInfo:
    name: str
    oid: int
    columns: tuple[tuple[str, int, int], ...]  # (name, type oid, typmod)
    primary_key: tuple[str, ...]
    replica_identity: str
    column_ids: dict[str, str]  # {attnum: name}: a rename keeps the attnum


def connection_url(url: str) -> str:
    """psycopg wants plain ``postgresql://``; users may write SQLAlchemy's ``+driver`` form."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


class PostgresSource:
    def __init__(self, url: str, schema: str, tables: Sequence[str], slot: str,
                 publication: str) -> None:
        self.conn = psycopg.connect(connection_url(url), autocommit=True)
        self.conn.execute("SET TimeZone = 'UTC'")
        self.conn.execute("SET DateStyle = 'ISO'")
        self.conn.execute("SET extra_float_digits = 3")
        for name in _AS_TEXT:
            self.conn.adapters.register_loader(name, TextLoader)
        self.schema, self.tables = schema, list(tables)
        self.slot, self.publication = slot, publication

    def close(self) -> None:
        self.conn.close()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def check(self) -> dict[str, TableInfo]:
        """Every precondition, each failure one message that names the fix."""
        level = self._one("SHOW wal_level")
        if level != "logical":
            raise ReplicationSetupError(
                f"PostgreSQL wal_level is {level}, logical replication needs logical: run "
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
        user, allowed = self.conn.execute(
            "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
            "WHERE rolname = current_user").fetchone() or ("?", False)
        if not allowed:
            raise ReplicationSetupError(
                f"role {user} lacks the REPLICATION attribute: run ALTER ROLE {user} "
                "REPLICATION; (as a superuser)")
        infos = {name: self._table(name) for name in self.tables}
        active = self._one("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                           (self.slot,))
        if active is not None:
            raise ReplicationSetupError(
                f"replication slot {self.slot} is active in another process (pid {active}): "
                "another run or replication client is reading it; wait for it, or stop it")
        return infos

    def _table(self, name: str) -> TableInfo:
        row = self.conn.execute(
            "SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
            "AND c.relkind IN ('r', 'p')", (self.schema, name)).fetchone()
        if row is None:
            raise ReplicationSetupError(
                f"table {self.schema}.{name} does not exist: create it, or remove it from "
                "source_config.tables")
        oid, identity = int(row[0]), str(row[1])
        found = self.conn.execute(
            "SELECT attname, atttypid, atttypmod, attnum FROM pg_attribute WHERE attrelid = %s "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (oid,)).fetchall()
        columns = tuple((str(n), int(t), int(m)) for n, t, m, _ in found)
        ids = {str(number): str(n) for n, _, _, number in found}
        key = tuple(str(k) for (k,) in self.conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)", (oid,)).fetchall())
        return TableInfo(name, oid, columns, key, identity, ids)

    def ensure_publication(self) -> None:
        """Create the publication, or make it publish exactly the listed tables."""
        qualified = sql.SQL(", ").join(sql.Identifier(self.schema, t) for t in self.tables)
        name = sql.Identifier(self.publication)
        exists = self._one("SELECT 1 FROM pg_publication WHERE pubname = %s",
                           (self.publication,))
        if not exists:
            self.conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                name, qualified))
            return
        published = {(str(s), str(t)) for s, t in self.conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
            (self.publication,)).fetchall()}
        if published != {(self.schema, t) for t in self.tables}:
            self.conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(
                name, qualified))

    def ensure_slot(self, recreate: bool) -> bool:
        """True when the slot is new: it holds no change from before now."""
        exists = self._one("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                           (self.slot,))
        if exists and recreate:
            self.conn.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
            exists = None
        if not exists:
            self.conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                              (self.slot,))
        return not exists

    def current_lsn(self) -> int:
        return lsn_to_int(str(self._one("SELECT pg_current_wal_lsn()")))

    def changes(self, upto: int) -> Iterator[bytes]:
        """The slot's messages for transactions committed up to ``upto`` (nothing consumed)."""
        with self.conn.transaction(), self.conn.cursor(name="floe_cdc_changes") as cursor:
            cursor.itersize = 10_000
            cursor.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
                "'proto_version', '1', 'publication_names', %s)",
                (self.slot, int_to_lsn(upto), self.publication))
            for (data,) in cursor:
                yield bytes(data)

    def copy(self, table: TableInfo, batch_rows: int = 100_000
             ) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows as they are now, in batches (values loaded as Bronze keeps them)."""
        query = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in table.columns),
            sql.Identifier(self.schema), sql.Identifier(table.name))
        with self.conn.transaction(), self.conn.cursor(name=f"floe_copy_{table.oid}") as cursor:
            cursor.itersize = batch_rows
            cursor.execute(query)
            while rows := cursor.fetchmany(batch_rows):
                yield rows

    def advance(self, lsn: int) -> None:
        """Confirm everything up to ``lsn``: PostgreSQL may now recycle that WAL."""
        confirmed = self._one("SELECT confirmed_flush_lsn FROM pg_replication_slots "
                              "WHERE slot_name = %s", (self.slot,))
        if confirmed is not None and lsn_to_int(str(confirmed)) >= lsn:
            return
        self.conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                          (self.slot, int_to_lsn(lsn)))

    def text_loader(self, type_oid: int) -> Callable[[bytes], Any]:
        """How a value of this type, as text in a pgoutput message, becomes what the copy
        gives for it (the same psycopg loaders)."""
        loader = self._loaders.get(type_oid)
        if loader is None:
            loader_class = self.conn.adapters.get_loader(type_oid, psycopg.pq.Format.TEXT)
            loader = (loader_class(type_oid, self.conn).load if loader_class
                      else lambda value: bytes(value).decode())
            self._loaders[type_oid] = loader
        return loader

    _loaders: dict[int, Any]

    def __enter__(self) -> PostgresSource:
        self._loaders = {}
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def slot_lag_bytes(url: str, slot: str) -> int | None:
    """How much WAL the slot holds back (None: no such slot)."""
    try:
        return slot_wal(url, slot)[0]
    except LookupError:
        return None


def slot_wal(url: str, slot: str) -> tuple[int, int]:
    """(WAL bytes not yet confirmed by floe, WAL bytes the slot makes PostgreSQL keep)."""
    with psycopg.connect(connection_url(url), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) "
            "FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    if row is None or row[0] is None:
        raise LookupError(f"no replication slot {slot}")
    return int(row[0]), int(row[1])


_PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds: pgoutput's timestamps count from it


def oldest_unapplied_commit(url: str, slot: str, publication: str) -> float | None:
    """Unix time at which the oldest transaction the slot still holds committed (None: none):
    its BEGIN message carries the commit time (pgoutput, protocol 1).  Peeked, not consumed;
    the slot must not be in use."""
    with psycopg.connect(connection_url(url), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, 1, "
            "'proto_version', '1', 'publication_names', %s)", (slot, publication)).fetchone()
    if row is None:
        return None
    data = bytes(row[0])
    if data[:1] != b"B" or len(data) < 17:
        return None
    return _PG_EPOCH + int.from_bytes(data[9:17], "big", signed=True) / 1_000_000
