"""The MySQL/MariaDB side of ``mysql_cdc``: readiness checks, binlog positions, the first copy.

Everything here is ordinary SQL over PyMySQL (the copy: connectorx, ``runtime/mysql/read.py``);
the binlog itself is read in ``binlog.py``.  A position is ``(file, offset)`` in the server's
binary logs; Bronze stores it as one integer (``file number << 32 | offset``, the
``_floe_binlog`` column), which orders like the binlog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pymysql

from floe.runtime.mysql.connect import MySQLURLError, connect, connection_settings
from floe.runtime.mysql.read import describe, read_batches
from floe.runtime.mysql.types import ColumnType


class ReplicationSetupError(Exception):
    """The server is not ready for binlog replication; the message says how to fix it."""


@dataclass(frozen=True, order=True)
class Position:
    file: str
    offset: int

    @property
    def number(self) -> int:
        """``binlog.000042:1234`` -> 42 << 32 | 1234: one integer that sorts like the log."""
        suffix = self.file.rsplit(".", 1)[-1]
        return (int(suffix) << 32 | self.offset) if suffix.isdigit() else self.offset

    def __str__(self) -> str:
        return f"{self.file}:{self.offset}"


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: tuple[tuple[str, ColumnType], ...]
    primary_key: tuple[str, ...]


class MySQLSource:
    def __init__(self, url: str, tables: Sequence[str]) -> None:
        try:
            self.settings = connection_settings(url)
        except MySQLURLError as exc:
            raise ReplicationSetupError(f"mysql_cdc credentials: {exc}") from None
        self.database = str(self.settings["database"] or "")
        if not self.database:
            raise ReplicationSetupError(
                "mysql_cdc credentials name no database: end the URL with /<database>")
        self.tables = list(tables)
        self.conn = connect(self.settings)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> MySQLSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())

    def _variable(self, name: str) -> str | None:
        rows = self._rows("SHOW GLOBAL VARIABLES LIKE %s", (name,))
        return str(rows[0][1]) if rows else None

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in str(self._variable("version") or "").lower()

    def check(self, server_id: int) -> dict[str, TableInfo]:
        """Every precondition, each failure one message that names the fix."""
        if str(self._variable("log_bin")).upper() not in ("ON", "1"):
            raise ReplicationSetupError(
                "the binary log is off on this server: start it with log_bin (e.g. "
                "--log-bin=binlog in my.cnf's [mysqld]) and restart it")
        wanted = (("binlog_format", "ROW"), ("binlog_row_image", "FULL"),
                  ("binlog_row_metadata", "FULL"))
        for name, value in wanted:
            found = self._variable(name)
            if found is None:
                raise ReplicationSetupError(
                    f"this server has no {name} setting: mysql_cdc needs MySQL 8.0 or "
                    "MariaDB 10.5 or newer")
            if found.upper() != value:
                raise ReplicationSetupError(
                    f"{name} is {found}, mysql_cdc needs {value}: SET GLOBAL {name} = "
                    f"'{value}'; and {name}={value} in my.cnf (changes written before stay "
                    "unreadable: floe run --full-refresh copies the tables again)")
        self._check_grants()
        own = self._variable("server_id")
        if own is not None and int(own) == server_id:
            raise ReplicationSetupError(
                f"server_id {server_id} is the server's own: set source_config.server_id to "
                "a number no server or replica of this source uses")
        for row in self._replica_hosts():
            if int(row[0]) == server_id:
                raise ReplicationSetupError(
                    f"server_id {server_id} is in use by another replica of this server "
                    f"({row[1]}): another run of this source is still reading, or set "
                    "source_config.server_id to a number of its own")
        return {name: self._table(name) for name in self.tables}

    def _check_grants(self) -> None:
        granted = " ".join(str(row[0]).upper() for row in self._rows("SHOW GRANTS")
                           if " ON *.* " in str(row[0]).upper())
        if "ALL PRIVILEGES" in granted:
            return
        missing = [p for p, aliases in (
            ("REPLICATION SLAVE", ("REPLICATION SLAVE", "REPLICATION REPLICA")),
            ("REPLICATION CLIENT", ("REPLICATION CLIENT", "BINLOG MONITOR", "SUPER")))
            if not any(a in granted for a in aliases)]
        if missing:
            user = self._rows("SELECT CURRENT_USER()")[0][0]
            account = "'{}'@'{}'".format(*str(user).split("@", 1))
            raise ReplicationSetupError(
                f"user {user} lacks {' and '.join(missing)}: run GRANT "
                f"{', '.join(missing)} ON *.* TO {account}; (as an administrator)")

    def _replica_hosts(self) -> list[tuple[Any, ...]]:
        try:
            return [(row[0], row[1]) for row in self._rows("SHOW SLAVE HOSTS")]
        except pymysql.err.MySQLError:
            return []

    def _table(self, name: str) -> TableInfo:
        columns, key = describe(self.conn, self.database, name)
        if not columns:
            tables = [str(t) for (t,) in self._rows(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME", (self.database,))]
            raise ReplicationSetupError(
                f"table {self.database}.{name} does not exist (its tables: "
                f"{', '.join(tables) or 'none'}): create it, or fix source_config.tables")
        return TableInfo(name, tuple(columns), key)

    def position(self) -> tuple[Position, str | None]:
        """Where the binlog ends now, and the server's GTID position there when it has one."""
        with self.conn.cursor() as cursor:
            try:
                cursor.execute("SHOW MASTER STATUS")
            except pymysql.err.ProgrammingError:  # MySQL 8.4 dropped the old name
                cursor.execute("SHOW BINARY LOG STATUS")
            row = cursor.fetchone()
        if row is None:
            raise ReplicationSetupError("the binary log is off on this server: start it with "
                                        "log_bin and restart it")
        gtid_name = "gtid_binlog_pos" if self.is_mariadb else "gtid_executed"
        gtid = self._variable(gtid_name) or None
        return Position(str(row[0]), int(row[1])), gtid

    def binlogs(self) -> list[tuple[str, int]]:
        return [(str(name), int(size)) for name, size, *_ in self._rows("SHOW BINARY LOGS")]

    def check_kept(self, position: Position) -> None:
        """The stored position's binlog file must still be on the server."""
        files = [name for name, _ in self.binlogs()]
        if position.file not in files:
            raise ReplicationSetupError(
                f"the server no longer has binlog {position.file} (purged; it keeps "
                f"{files[0] if files else 'none'} onwards), where this source stopped at "
                f"{position}: changes since are lost to floe; floe run --full-refresh copies "
                "the tables again (keep binlogs longer: binlog_expire_logs_seconds)")

    def copy(self, table: TableInfo, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        """The table's rows as they are now, streamed in Bronze-typed Arrow batches (memory
        holds one batch of the read).  Not one snapshot across tables, nor needed: the
        replay from the position read before the copy makes each table exact."""
        yield from read_batches(self.settings, self.database, table.name, table.columns,
                                batch_rows)

    def lag_bytes(self, position: Position) -> int:
        """Binlog bytes written after ``position`` (what the next run reads)."""
        behind = 0
        for name, size in self.binlogs():
            if name == position.file:
                behind += max(size - position.offset, 0)
            elif name > position.file:
                behind += size
        return behind


def committed_at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
