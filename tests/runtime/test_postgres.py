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


@pytest.mark.parametrize("backend", ["adbc", "pyarrow", "sqlalchemy"])
def test_merge_incremental_and_schema_change(tmp_path: Path, postgres: Postgres,
                                             backend: str) -> None:
    """adbc and pyarrow go through floe's loaders; the other backends through dlt's own."""
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


@pytest.mark.parametrize("backend", ["adbc", "pyarrow"])
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2", "postgresql+psycopg"])
def test_the_urls_people_write_work(tmp_path: Path, postgres: Postgres, scheme: str,
                                    backend: str) -> None:
    """Plain postgresql:// is what most users write (SQLAlchemy 2.1 maps it to psycopg 3)."""
    postgres.execute("""
        DROP TABLE IF EXISTS customers;
        CREATE TABLE customers (id int PRIMARY KEY, name text, updated_at timestamptz);
        INSERT INTO customers VALUES (1, 'Alice', '2024-01-01T00:00:00Z');
    """)
    project = Project(tmp_path)
    project.write(PROJECT.format(backend=backend))
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


TYPES = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: types, version: 1.0.0}
sources:
  - name: by_adbc
    source_type: sql_database
    destination_table: adbc
    write_mode: replace
    source_config: {credentials: "{{ secret('URL') }}", tables: [typed]}
  - name: by_pyarrow
    source_type: sql_database
    destination_table: pyarrow
    write_mode: replace
    source_config: {credentials: "{{ secret('URL') }}", tables: [typed], backend: pyarrow}
"""


def test_adbc_writes_what_the_pyarrow_path_writes_for_every_type(
        tmp_path: Path, postgres: Postgres) -> None:
    """ADBC (the default for PostgreSQL) and floe's psycopg2 path give the same Bronze schema
    and values: numeric as decimal(p, s) from the declared type, json/jsonb and arrays as
    compact JSON text, uuid as text, bytea, time zones."""
    postgres.execute("""
        DROP TABLE IF EXISTS typed;
        DROP TYPE IF EXISTS mood;
        CREATE TYPE mood AS ENUM ('happy', 'sad');
        CREATE TABLE typed (id int PRIMARY KEY, n numeric(10,2), n2 numeric, f float8,
            r real, sm smallint, big bigint, ts timestamptz, t2 timestamp, d date, tm time,
            j jsonb, j2 json, u uuid, b bytea, a int[], ta text[], bo boolean, s text,
            m money, md mood);
        INSERT INTO typed VALUES (1, 10.50, 3.25, 1.5, 0.5, 7, 9000000000,
            '2024-01-01T00:00:00.123456+02:00', '2024-01-01 01:02:03', '2024-01-02',
            '12:34:56.5', '{"b": 1, "a": [1, 2], "c": {}}', '{"b": 1, "a":2}',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef', '{1,2}', '{x,"y z"}', true,
            'é', 12.50, 'happy'),
            (2, -0.01, 12345678901234567890.123456789, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, '[]', NULL, NULL, '', '{}', NULL, false, '', NULL, 'sad'),
            (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    """)
    environ = {"URL": postgres.url}
    project = Project(tmp_path)
    project.write(TYPES)
    project.compile(environ)
    for source in ("by_adbc", "by_pyarrow"):
        result = project.run(source, environ=environ)
        assert result.success, result.errors
    adbc, pyarrow = (project.catalog().load_table((ns, "typed")) for ns in ("adbc", "pyarrow"))
    assert {f.name: str(f.field_type) for f in adbc.schema().fields} == {
        f.name: str(f.field_type) for f in pyarrow.schema().fields}
    assert str(adbc.schema().find_field("n").field_type) == "decimal(10, 2)"
    rows = project.read("adbc.typed")
    assert rows == project.read("pyarrow.typed")
    assert (rows[0]["j"], rows[0]["j2"]) == ('{"a":[1,2],"b":1,"c":{}}', '{"b":1,"a":2}')
    assert (rows[0]["u"], rows[0]["b"], rows[0]["ta"]) == (
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", b"\xde\xad\xbe\xef", '["x","y z"]')
    assert str(rows[1]["n2"]) == "12345678901234567890.123456789"
    assert (rows[0]["m"], rows[0]["md"]) == ("$12.50", "happy")  # PostgreSQL's text


def test_adbc_reads_the_types_arrow_has_no_place_for_as_their_text(
        tmp_path: Path, postgres: Postgres) -> None:
    """interval, inet, ranges and time with time zone arrive as their ``::text`` (the
    psycopg2 path cannot load the first two at all, turns a range into a struct and drops the
    time zone's offset)."""
    postgres.execute("""
        DROP TABLE IF EXISTS typed;
        CREATE TABLE typed (id int PRIMARY KEY, iv interval, ip inet, rg int4range, tz timetz);
        INSERT INTO typed VALUES (1, '1 mon 2 days 01:00:00.5', '10.0.0.1', '[1,5)',
                                  '12:00:00+02');
    """)
    environ = {"URL": postgres.url}
    project = Project(tmp_path)
    project.write(TYPES)
    result = project.run("by_adbc", environ=environ)
    assert result.success, result.errors
    row = project.read("adbc.typed")[0]
    assert (row["iv"], row["ip"], row["rg"], row["tz"]) == (
        "1 mon 2 days 01:00:00.5", "10.0.0.1/32", "[1,5)", "12:00:00+02")  # ::text
    from floe.runtime.verify import verify_source  # and verify reads them the same way

    [report] = verify_source(project.compile(environ).source("by_adbc"), project.catalog(),
                             tmp_path, environ=environ)
    assert (report.status, report.source_rows) == ("match", 1), report


def test_a_numeric_that_decimal_38_9_cannot_hold_is_named(tmp_path: Path,
                                                          postgres: Postgres) -> None:
    postgres.execute("""
        DROP TABLE IF EXISTS typed;
        CREATE TABLE typed (id int PRIMARY KEY, n2 numeric);
        INSERT INTO typed VALUES (1, 3.14159265358979323846);
    """)
    environ = {"URL": postgres.url}
    project = Project(tmp_path)
    project.write(TYPES)
    result = project.run("by_adbc", environ=environ)
    assert not result.success
    assert result.error_category == "CONFIGURATION"
    assert "column n2 (numeric without a declared precision, stored as decimal(38, 9)) holds " \
           "a value that does not fit it exactly" in result.errors[0]
    assert not project.catalog().table_exists(("adbc", "typed"))
