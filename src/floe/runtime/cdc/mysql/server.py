"""The MySQL/MariaDB side of ``mysql_cdc``: readiness checks, binlog positions, the first copy.

Everything here is ordinary SQL over PyMySQL; the binlog itself is read in ``binlog.py``.
A position is ``(file, offset)`` in the server's binary logs; Bronze stores it as one integer
(``file number << 32 | offset``, the ``_floe_binlog`` column), which orders like the binlog.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.cursors

from floe.runtime.cdc.mysql.types import ColumnType, from_schema


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


def connection_settings(url: str) -> dict[str, Any]:
    """PyMySQL's keyword arguments from ``mysql://`` / ``mariadb://`` (``+driver`` allowed)."""
    parts = urlsplit(url)
    if not re.match(r"^(mysql|mariadb)(\+\w+)?$", parts.scheme):
        raise ReplicationSetupError(
            f"mysql_cdc credentials must be a mysql:// or mariadb:// URL, not {parts.scheme}://")
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": unquote(parts.username or ""), "passwd": unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or None}


class MySQLSource:
    def __init__(self, url: str, tables: Sequence[str]) -> None:
        self.settings = connection_settings(url)
        self.database = str(self.settings["database"] or "")
        if not self.database:
            raise ReplicationSetupError(
                "mysql_cdc credentials name no database: end the URL with /<database>")
        self.tables = list(tables)
        self.conn = self._connect()

    def _connect(self, **extra: Any) -> pymysql.connections.Connection[Any]:
        settings = {k: v for k, v in self.settings.items() if k != "passwd"}
        return pymysql.connect(password=self.settings["passwd"], autocommit=True,
                               charset="utf8mb4", init_command="SET time_zone = '+00:00'",
                               **settings, **extra)

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
        found = self._rows(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
            "TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (self.database, name))
        if not found:
            tables = [str(t) for (t,) in self._rows(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME", (self.database,))]
            raise ReplicationSetupError(
                f"table {self.database}.{name} does not exist (its tables: "
                f"{', '.join(tables) or 'none'}): create it, or fix source_config.tables")
        columns = tuple((str(c), from_schema(str(d), str(t), p, s))
                        for c, d, t, p, s, _ in found)
        key = tuple(str(c) for c, _, _, _, _, k in found if k == "PRI")
        return TableInfo(name, columns, key)

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

    def copy(self, table: TableInfo, batch_rows: int = 50_000
             ) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows in one consistent snapshot, streamed in batches (a server-side
        cursor: memory holds one batch).  FLOAT columns are read as DOUBLE: the binlog carries
        their exact binary value, which MySQL's text output rounds."""
        select = ", ".join(
            f"CAST({quote(name)} AS DOUBLE)" if kind.kind == "double" else quote(name)
            for name, kind in table.columns)
        query = f"SELECT {select} FROM {quote(self.database)}.{quote(table.name)}"  # noqa: S608 - quoted identifiers, no values
        conn = self._connect(cursorclass=pymysql.cursors.SSCursor)
        try:
            with conn.cursor() as cursor:
                cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                cursor.execute(query)
                while rows := cursor.fetchmany(batch_rows):
                    yield list(rows)
                cursor.execute("COMMIT")
        finally:
            conn.close()

    def lag_bytes(self, position: Position) -> int:
        """Binlog bytes written after ``position`` (what the next run reads)."""
        behind = 0
        for name, size in self.binlogs():
            if name == position.file:
                behind += max(size - position.offset, 0)
            elif name > position.file:
                behind += size
        return behind


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def committed_at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
