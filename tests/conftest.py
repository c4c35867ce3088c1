"""Shared fixtures: a compiled project in a temp dir, and real servers started on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Postgres, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server
