"""The ingestion error taxonomy and the rule that decides what is worth retrying.

Every error carries the source context (source_type, destination_table, pipeline_name) so a
message in a log or in Dagster says where it happened without a stack trace.

Categories are decided by exception types, never by where floe happened to catch them: dlt's
terminal/transient markers, pyiceberg's REST errors, the DB-API classes (and SQLSTATE), HTTP
status codes, the OS's network errors.  A floe wrapper inherits its cause's category.  What is
left unknown is PERMANENT: only network errors are worth retrying blindly, and a bug retried
three times is still a bug.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

import requests
from dlt.common.configuration.exceptions import ConfigurationException
from dlt.common.exceptions import (
    DictValidationException,
    MissingDependencyException,
    TerminalException,
    TransientException,
)
from pyiceberg import exceptions as iceberg

if TYPE_CHECKING:
    from floe.artifacts import CompiledSource


class ErrorCategory(StrEnum):
    TRANSIENT = "TRANSIENT"  # retry with backoff: 429, 503, timeouts, connection resets
    PERMANENT = "PERMANENT"  # fail now: 401, 403, wrong password, bad data, floe bugs
    PARTIAL = "PARTIAL"  # some tables committed, some not
    CONFIGURATION = "CONFIGURATION"  # 400/404, invalid config, missing package or table


class IngestionError(Exception):
    """Base of every ingestion failure; safe to show to a user (no secrets, no traceback)."""

    category = ErrorCategory.PERMANENT
    wraps_cause = False  # True: a wrapper whose category is its cause's

    def __init__(self, message: str, *, source_type: str = "", destination_table: str = "",
                 pipeline_name: str = "", category: ErrorCategory | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source_type = source_type
        self.destination_table = destination_table
        self.pipeline_name = pipeline_name
        self.explicit_category = category is not None
        if category is not None:
            self.category = category

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in (
            ("pipeline", self.pipeline_name), ("source_type", self.source_type),
            ("table", self.destination_table)) if v)
        return f"{self.message} ({where})" if where else self.message


class SourceConnectionError(IngestionError):
    category = ErrorCategory.TRANSIENT
    wraps_cause = True


class DestinationWriteError(IngestionError):
    category = ErrorCategory.TRANSIENT
    wraps_cause = True


class SchemaContractViolation(IngestionError):  # noqa: N818 (name fixed by the spec)
    category = ErrorCategory.PERMANENT


class ConcurrentLoadError(IngestionError):
    """Another run of the same source committed after this one restored its state: applying
    this load too would duplicate rows, so it is abandoned (nothing written)."""

    category = ErrorCategory.PERMANENT


class SourceTimeoutError(IngestionError):
    """The source ran past its ``timeout_seconds``; nothing was committed."""

    category = ErrorCategory.PERMANENT


class PipelineConfigurationError(IngestionError):
    category = ErrorCategory.CONFIGURATION


class MissingSourceDependencyError(PipelineConfigurationError, ImportError):
    """An optional package a source type needs is not installed; the message names the pip
    extra.  Also an ImportError, so code that guards imports catches it as one."""


class SourceFields(TypedDict):
    source_type: str
    destination_table: str
    pipeline_name: str


def about(source: CompiledSource) -> SourceFields:
    """The fields an ingestion error names its source with (shown after its message)."""
    return {"source_type": source.source_type, "destination_table": source.destination_table,
            "pipeline_name": source.pipeline_name}


def config_error(source: CompiledSource, message: str) -> PipelineConfigurationError:
    """A mistake in the source's configuration (never retried), naming the source."""
    return PipelineConfigurationError(message, **about(source))


_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_PERMANENT_STATUS = {401, 403, 405, 410}
_CONFIGURATION_STATUS = {400, 404, 422}
# SQLSTATE classes: 08 connection, 40 rollback, 53 resources, 57 operator, 58 system;
# 28 authorization; 3D/3F missing database/schema, 42 syntax or missing object
_SQLSTATE = {"08": ErrorCategory.TRANSIENT, "40": ErrorCategory.TRANSIENT,
             "53": ErrorCategory.TRANSIENT, "57": ErrorCategory.TRANSIENT,
             "58": ErrorCategory.TRANSIENT, "28": ErrorCategory.PERMANENT,
             "3D": ErrorCategory.CONFIGURATION, "3F": ErrorCategory.CONFIGURATION,
             "42": ErrorCategory.CONFIGURATION, "22": ErrorCategory.PERMANENT,
             "23": ErrorCategory.PERMANENT}
# what libpq says when a connection is refused for good (psycopg2 gives no SQLSTATE there)
_AUTH_FAILURES = ("authentication failed", "no pg_hba.conf entry", "role \"",
                  "access denied for user")
_DBAPI = {"OperationalError": ErrorCategory.TRANSIENT, "InterfaceError": ErrorCategory.TRANSIENT,
          "InternalError": ErrorCategory.TRANSIENT,
          "ProgrammingError": ErrorCategory.CONFIGURATION,
          "NotSupportedError": ErrorCategory.CONFIGURATION,
          "IntegrityError": ErrorCategory.PERMANENT, "DataError": ErrorCategory.PERMANENT}
_ICEBERG: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...],
                      ErrorCategory], ...] = (
    ((iceberg.UnauthorizedError, iceberg.ForbiddenError, iceberg.AuthorizationExpiredError,
      iceberg.OAuthError, iceberg.ValidationError), ErrorCategory.PERMANENT),
    ((iceberg.ServiceUnavailableError, iceberg.ServerError, iceberg.TooManyRequestsError,
      iceberg.CommitFailedException, iceberg.CommitStateUnknownException,
      iceberg.WaitingForLockException), ErrorCategory.TRANSIENT),
    ((iceberg.BadRequestError, iceberg.NoSuchNamespaceError, iceberg.NoSuchTableError,
      iceberg.NotInstalledError), ErrorCategory.CONFIGURATION),
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes and contexts, and dlt's wrapped ``.exception`` (breadth first)."""
    seen: set[int] = set()
    queue: list[BaseException | None] = [error]
    while queue:
        current = queue.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "exception", None)
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError
        queue += [current.__cause__, current.__context__,
                  wrapped if isinstance(wrapped, BaseException) else None,
                  orig if isinstance(orig, BaseException) else None]


def _status(item: BaseException) -> int | None:
    code = getattr(getattr(item, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def _http(code: int) -> ErrorCategory:
    if code in _TRANSIENT_STATUS or code >= 500:
        return ErrorCategory.TRANSIENT
    if code in _PERMANENT_STATUS:
        return ErrorCategory.PERMANENT
    return ErrorCategory.CONFIGURATION


def _database(item: BaseException) -> ErrorCategory | None:
    """DB-API errors (psycopg2, psycopg, sqlite3, pymysql...): SQLSTATE first, then class."""
    # the driver's subclasses (psycopg's UndefinedTable...) count as their DB-API class
    kind = next((k.__name__ for k in type(item).__mro__ if k.__name__ in _DBAPI), None)
    if kind is None or "sqlalchemy" in type(item).__module__:
        return None  # not a DB-API error, or SQLAlchemy's wrapper: its .orig decides
    sqlstate = getattr(item, "pgcode", None) or getattr(item, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in _SQLSTATE:
        return _SQLSTATE[sqlstate[:2]]
    text = str(item).lower()
    if kind == "OperationalError":
        if any(marker in text for marker in _AUTH_FAILURES):
            return ErrorCategory.PERMANENT
        if ("database" in text and "does not exist" in text) or "unknown database" in text:
            return ErrorCategory.CONFIGURATION
    return _DBAPI[kind]


def _classify(item: BaseException) -> ErrorCategory | None:
    """The category ``item`` decides on its own, or None to look further down the chain."""
    if isinstance(item, IngestionError):
        if item.explicit_category or not item.wraps_cause:
            return item.category
        return None if (item.__cause__ or item.__context__) else item.category
    code = _status(item)
    if code is not None:
        return _http(code)
    for kinds, category in _ICEBERG:
        if isinstance(item, kinds):
            return category
    if isinstance(item, ConfigurationException | DictValidationException
                  | MissingDependencyException | ImportError | FileNotFoundError):
        return ErrorCategory.CONFIGURATION
    if isinstance(item, TransientException):
        return ErrorCategory.TRANSIENT
    if isinstance(item, TerminalException | PermissionError):
        return ErrorCategory.PERMANENT
    database = _database(item)
    if database is not None:
        return database
    if isinstance(item, TimeoutError | ConnectionError | socket.gaierror
                  | requests.ConnectionError | requests.Timeout):
        return ErrorCategory.TRANSIENT
    return None


def categorize_error(error: BaseException) -> ErrorCategory:
    """TRANSIENT errors are retried with backoff; everything else fails at once."""
    for item in _chain(error):
        category = _classify(item)
        if category is not None:
            return category
    return ErrorCategory.PERMANENT
