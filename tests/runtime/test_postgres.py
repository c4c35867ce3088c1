"""sql_database from a real PostgreSQL 15 started by the suite: merge, incremental, new column."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.harness import Project
from tests.servers import Postgres

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: crm, version: 1.0.0}}
sources:
  - name: crm
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    primary_key: id
    cursor_field: updated_at
    source_config:
      credentials: "{{{{ secret('CRM_DB_URL') }}}}"
      schema: public
      tables: [customers]
      backend: {backend}
"""


@pytest.mark.parametrize("backend", ["pyarrow", "sqlalchemy"])
def test_merge_incremental_and_schema_change(tmp_path: Path, postgres: Postgres,
                                             backend: str) -> None:
    """pyarrow goes through floe's tuple loader; the other backends through dlt's own."""
    postgres.execute("""
        DROP TABLE IF EXISTS customers;
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL,
                                updated_at timestamptz NOT NULL);
        INSERT INTO customers VALUES (1, 'Alice', '2024-01-01T00:00:00Z'),
                                     (2, 'Bob', '2024-01-02T00:00:00Z');
    """)
    environ = {"CRM_DB_URL": postgres.url}
    project = Project(tmp_path)
    project.write(PROJECT.format(backend=backend))
    artifact = project.compile(environ)
    assert postgres.password not in artifact.to_json()

    first = project.run("crm", environ=environ)
    assert first.success, first.errors
    assert first.rows_loaded == 2

    postgres.execute("""
        ALTER TABLE customers ADD COLUMN tier text;
        UPDATE customers SET name = 'Bobby', tier = 'gold', updated_at = '2024-02-01T00:00:00Z'
            WHERE id = 2;
        INSERT INTO customers VALUES (3, 'Carol', '2024-02-02T00:00:00Z', 'silver');
    """)
    second = project.run("crm", environ=environ)
    assert second.success, second.errors
    assert second.rows_loaded == 2  # only the changed and the new row were read
    rows = project.read("bronze.customers")
    assert [(r["id"], r["name"], r["tier"]) for r in rows] == [
        (1, "Alice", None), (2, "Bobby", "gold"), (3, "Carol", "silver")]
    assert project.run("crm", environ=environ).rows_loaded == 0


def test_wrong_password_fails_without_leaking_it(tmp_path: Path, postgres: Postgres) -> None:
    wrong = postgres.url.replace(postgres.password, "not-the-pw-4242")
    environ = {"CRM_DB_URL": wrong}
    project = Project(tmp_path)
    project.write(PROJECT.format(backend="pyarrow"))
    result = project.run("crm", environ=environ)
    assert not result.success
    assert "not-the-pw-4242" not in result.errors[0]
    assert "password authentication failed" in result.errors[0]
    assert result.error_category == "PERMANENT"  # not retried: it will not get better


def test_missing_secret_is_a_configuration_error(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(PROJECT.format(backend="pyarrow"))
    result = project.run("crm", environ={})
    assert not result.success
    assert result.error_category == "CONFIGURATION"
    assert "secret 'CRM_DB_URL' is not set" in result.errors[0]


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2", "postgresql+psycopg"])
def test_the_urls_people_write_work(tmp_path: Path, postgres: Postgres, scheme: str) -> None:
    """Plain postgresql:// is what most users write (SQLAlchemy 2.1 maps it to psycopg 3)."""
    postgres.execute("""
        DROP TABLE IF EXISTS customers;
        CREATE TABLE customers (id int PRIMARY KEY, name text, updated_at timestamptz);
        INSERT INTO customers VALUES (1, 'Alice', '2024-01-01T00:00:00Z');
    """)
    project = Project(tmp_path)
    project.write(PROJECT.format(backend="pyarrow"))
    result = project.run("crm", environ={"CRM_DB_URL": postgres.url_for(scheme)})
    assert result.success, result.errors
    assert [r["name"] for r in project.read("bronze.customers")] == ["Alice"]


def test_a_missing_driver_names_the_package_to_install(tmp_path: Path,
                                                       postgres: Postgres) -> None:
    project = Project(tmp_path)
    project.write(PROJECT.format(backend="pyarrow"))
    result = project.run("crm", environ={"CRM_DB_URL": postgres.url_for("postgresql+pg8000")})
    assert not result.success
    assert result.error_category == "CONFIGURATION"
    assert "the database driver pg8000 that this URL needs is not installed: pip install " \
           "'pg8000'" in result.errors[0]
    assert "dlt[sql-database]" not in result.errors[0]
