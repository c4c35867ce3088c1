"""Shared fixtures: real servers started on loopback (PostgreSQL 15, an Iceberg REST catalog)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import (
    GlueCatalog,
    MariaDB,
    Postgres,
    RestCatalog,
    glue_catalog_server,
    mariadb_server,
    postgres_server,
    rest_catalog_server,
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_without_logical_wal() -> Iterator[Postgres]:
    """A server left at the default wal_level (replica), as many are."""
    with postgres_server(wal_level="replica") as server:
        yield server


@pytest.fixture(scope="session")
def rest_catalog() -> Iterator[RestCatalog]:
    with rest_catalog_server() as server:
        yield server


@pytest.fixture(scope="session")
def glue_catalog() -> Iterator[GlueCatalog]:
    with glue_catalog_server() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    with mariadb_server() as server:
        yield server
