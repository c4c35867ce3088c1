"""Connections from the URLs users write: ``mysql://`` or ``mariadb://``, with or without a
``+driver``, database in the path."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from floe.runtime.mysql.pymysql_internals import Connection


class MySQLURLError(ValueError):
    """The URL is not one floe can connect to MySQL with; the message says what to write."""


def connection_settings(url: str) -> dict[str, Any]:
    """PyMySQL's keyword arguments (``passwd`` is the password)."""
    parts = urlsplit(url)
    if not re.match(r"^(mysql|mariadb)(\+\w+)?$", parts.scheme):
        raise MySQLURLError(f"a MySQL URL is mysql://... or mariadb://..., not {parts.scheme}://")
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": unquote(parts.username or ""), "passwd": unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or None}


def connect(settings: dict[str, Any], **extra: Any) -> Any:
    """A session that reads TIMESTAMPs in UTC and text as utf8mb4 (a PyMySQL connection)."""
    plain = {k: v for k, v in settings.items() if k != "passwd"}
    return Connection(password=settings["passwd"], autocommit=True, charset="utf8mb4",
                      init_command="SET time_zone = '+00:00'", **plain, **extra)


def plain_url(settings: dict[str, Any]) -> str:
    """``mysql://user:password@host:port/database``, as connectorx takes it."""
    user, password = quote(settings["user"], safe=""), quote(settings["passwd"], safe="")
    return (f"mysql://{user}:{password}@{settings['host']}:{settings['port']}/"
            f"{settings['database'] or ''}")


def quote_name(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"
