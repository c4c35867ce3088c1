"""Which failures are retried: decided by exception types, the same for every source type.

Errors come from the real libraries (a real HTTP response, real PostgreSQL connections to the
suite's server), wrapped the way dlt and floe wrap them."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import psycopg2
import pytest
import requests
import sqlalchemy
from dlt.common.exceptions import DictValidationException
from dlt.extract.exceptions import ResourceExtractionError
from pyiceberg import exceptions as iceberg

from floe.runtime.ingestion.errors import (
    ConcurrentLoadError,
    DestinationWriteError,
    ErrorCategory,
    MissingSourceDependencyError,
    SchemaContractViolation,
    SourceTimeoutError,
    categorize_error,
)
from tests.servers import Postgres

T, P, C = ErrorCategory.TRANSIENT, ErrorCategory.PERMANENT, ErrorCategory.CONFIGURATION


def _http(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = "http://127.0.0.1/orders"
    return requests.HTTPError(f"{status} error", response=response)


def _extraction(cause: BaseException) -> BaseException:
    """How dlt's extract step hands an error from inside a resource."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise ResourceExtractionError("orders", None, "failed in extract", "gen") from exc
    except ResourceExtractionError as wrapped:
        return wrapped


def _committing(cause: BaseException) -> BaseException:
    """How the runner wraps a failed Iceberg commit (the wrapper inherits the category)."""
    try:
        raise DestinationWriteError("committing bronze.orders failed") from cause
    except DestinationWriteError as wrapped:
        return wrapped


CASES: list[tuple[str, Callable[[], BaseException], ErrorCategory]] = [
    # rest_api
    ("rest_api 429", lambda: _extraction(_http(429)), T),
    ("rest_api 503", lambda: _extraction(_http(503)), T),
    ("rest_api 401", lambda: _extraction(_http(401)), P),
    ("rest_api 403", lambda: _extraction(_http(403)), P),
    ("rest_api 404", lambda: _extraction(_http(404)), C),
    ("rest_api 400", lambda: _extraction(_http(400)), C),
    ("rest_api connection reset", lambda: _extraction(requests.ConnectionError("reset")), T),
    ("rest_api read timeout", lambda: _extraction(requests.ReadTimeout("slow")), T),
    ("rest_api bad config", lambda: DictValidationException("bad paginator", "client", {}), C),
    # filesystem
    ("filesystem missing folder", lambda: _extraction(FileNotFoundError("landing/")), C),
    ("filesystem unreadable", lambda: _extraction(PermissionError("landing/a.csv")), P),
    ("filesystem bad file", lambda: _extraction(ValueError("cannot read a.csv as csv")), P),
    # Iceberg catalog and commits
    ("catalog 403", lambda: _committing(iceberg.ForbiddenError("no")), P),
    ("catalog 401", lambda: _committing(iceberg.UnauthorizedError("no")), P),
    ("catalog 503", lambda: _committing(iceberg.ServiceUnavailableError("busy")), T),
    ("commit conflict", lambda: _committing(iceberg.CommitFailedException("raced")), T),
    ("commit unknown", lambda: _committing(iceberg.CommitStateUnknownException("?")), T),
    ("another run committed", lambda: ConcurrentLoadError("another run"), P),
    ("freeze", lambda: SchemaContractViolation("freeze"), P),
    ("timeout", lambda: _extraction(SourceTimeoutError("timed out")), P),
    ("missing package", lambda: MissingSourceDependencyError("pip install x"), C),
    # floe's own bugs are not the user's configuration, and not worth retrying
    ("a KeyError in floe", lambda: _committing(KeyError("resources")), P),
    ("a ValueError in floe", lambda: _extraction(ValueError("bad")), P),
    ("a TypeError in floe", lambda: TypeError("unexpected"), P),
]


@pytest.mark.parametrize(("name", "make", "expected"), CASES, ids=[c[0] for c in CASES])
def test_category(name: str, make: Callable[[], BaseException], expected: ErrorCategory) -> None:
    assert categorize_error(make()) is expected


def _connect_error(connect: Callable[[], object]) -> BaseException:
    try:
        connect()
    except Exception as exc:
        return exc
    raise AssertionError("connected")


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg", "sqlalchemy"])
def test_sql_database_categories_from_a_real_server(postgres: Postgres, driver: str) -> None:
    """Wrong password: PERMANENT; no such database: CONFIGURATION; nobody listening:
    TRANSIENT; a missing table (SQLSTATE 42P01): CONFIGURATION."""
    def connect(password: str = postgres.password, port: int = postgres.port,
                dbname: str = postgres.database) -> Callable[[], object]:
        if driver == "psycopg2":
            return lambda: psycopg2.connect(host="127.0.0.1", port=port, user=postgres.user,
                                            password=password, dbname=dbname)
        if driver == "psycopg":
            return lambda: psycopg.connect(host="127.0.0.1", port=port, user=postgres.user,
                                           password=password, dbname=dbname)
        url = f"postgresql://{postgres.user}:{password}@127.0.0.1:{port}/{dbname}"
        return lambda: sqlalchemy.create_engine(url).connect()

    assert categorize_error(_connect_error(connect(password="wrong"))) is P
    assert categorize_error(_connect_error(connect(dbname="nope"))) is C
    assert categorize_error(_connect_error(connect(port=1))) is T

    def missing_table() -> None:
        with sqlalchemy.create_engine(postgres.url).connect() as conn:
            conn.exec_driver_sql("SELECT * FROM no_such_table")

    assert categorize_error(_connect_error(missing_table)) is C
