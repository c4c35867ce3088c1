"""The ingestion error taxonomy and the rule that decides what is worth retrying.

Every error carries the source context (source_type, destination_table, pipeline_name) so a
message in a log or in Dagster says where it happened without a stack trace.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from enum import StrEnum


class ErrorCategory(StrEnum):
    TRANSIENT = "TRANSIENT"  # retry with backoff: 429, 503, timeouts, connection resets
    PERMANENT = "PERMANENT"  # fail now: 401, 403, missing resource, permission denied
    PARTIAL = "PARTIAL"  # some tables committed, some not
    CONFIGURATION = "CONFIGURATION"  # 400/404, invalid config, missing package


class IngestionError(Exception):
    """Base of every ingestion failure; safe to show to a user (no secrets, no traceback)."""

    category = ErrorCategory.PERMANENT

    def __init__(self, message: str, *, source_type: str = "", destination_table: str = "",
                 pipeline_name: str = "", category: ErrorCategory | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source_type = source_type
        self.destination_table = destination_table
        self.pipeline_name = pipeline_name
        if category is not None:
            self.category = category

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in (
            ("pipeline", self.pipeline_name), ("source_type", self.source_type),
            ("table", self.destination_table)) if v)
        return f"{self.message} ({where})" if where else self.message


class SourceConnectionError(IngestionError):
    category = ErrorCategory.TRANSIENT


class DestinationWriteError(IngestionError):
    category = ErrorCategory.TRANSIENT


class SchemaContractViolation(IngestionError):  # noqa: N818 (name fixed by the spec)
    category = ErrorCategory.PERMANENT


class PipelineConfigurationError(IngestionError):
    category = ErrorCategory.CONFIGURATION


class MissingSourceDependencyError(PipelineConfigurationError, ImportError):
    """An optional package a source type needs is not installed; the message names the pip
    extra.  Also an ImportError, so code that guards imports catches it as one."""


_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_PERMANENT_STATUS = {401, 403, 405, 410}
_CONFIGURATION_STATUS = {400, 404, 422}


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
        queue += [current.__cause__, current.__context__,
                  wrapped if isinstance(wrapped, BaseException) else None]


def status_code(error: BaseException) -> int | None:
    """The HTTP status somewhere in the exception chain (requests, dlt's REST client)."""
    for item in _chain(error):
        response = getattr(item, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def categorize_error(error: BaseException) -> ErrorCategory:
    """TRANSIENT errors are retried with backoff; everything else fails at once."""
    for item in _chain(error):
        if (isinstance(item, IngestionError) and type(item) is not IngestionError
                and not isinstance(item, SourceConnectionError | DestinationWriteError)):
            return item.category
    code = status_code(error)
    if code is not None:
        if code in _TRANSIENT_STATUS:
            return ErrorCategory.TRANSIENT
        if code in _PERMANENT_STATUS:
            return ErrorCategory.PERMANENT
        if code in _CONFIGURATION_STATUS:
            return ErrorCategory.CONFIGURATION
    for item in _chain(error):
        name = type(item).__name__
        if isinstance(item, TimeoutError | socket.timeout | ConnectionResetError
                      | ConnectionRefusedError | BrokenPipeError):
            return ErrorCategory.TRANSIENT
        if name in {"ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout",
                    "OperationalError", "CommitFailedException", "ServiceUnavailableError"}:
            return ErrorCategory.TRANSIENT
        if isinstance(item, PermissionError) or name in {"ForbiddenError", "UnauthorizedError"}:
            return ErrorCategory.PERMANENT
        if isinstance(item, FileNotFoundError | ImportError | ValueError | KeyError) or name in {
                "NoSuchTableError", "DictValidationException", "ConfigFieldMissingException"}:
            return ErrorCategory.CONFIGURATION
    for item in _chain(error):
        if isinstance(item, SourceConnectionError | DestinationWriteError):
            return item.category
    return ErrorCategory.PERMANENT
