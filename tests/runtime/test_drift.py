"""Columns that change type at the source never block a source under evolve; freeze names the
change; --full-refresh takes the source's current types.  PostgreSQL 15 between runs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from floe.logs import configure_logging
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
    schema_contract: {contract}
    source_config:
      credentials: "{{{{ secret('CRM_DB_URL') }}}}"
      tables: [prices]
"""


def _start(tmp_path: Path, postgres: Postgres, contract: str) -> tuple[Project, dict[str, str]]:
    postgres.execute("""
        DROP TABLE IF EXISTS prices;
        CREATE TABLE prices (id int PRIMARY KEY, amount numeric(10,2), price bigint, code int,
                             updated_at timestamptz NOT NULL);
        INSERT INTO prices VALUES (1, 1.50, 10, 7, '2024-01-01T00:00:00Z'),
                                  (2, 2.25, 20, 8, '2024-01-02T00:00:00Z');
    """)
    environ = {"CRM_DB_URL": postgres.url}
    project = Project(tmp_path)
    project.write(PROJECT.format(contract=contract))
    first = project.run("crm", environ=environ)
    assert first.success, first.errors
    postgres.execute("""
        ALTER TABLE prices ALTER COLUMN amount TYPE numeric(14,2),
                           ALTER COLUMN price TYPE double precision,
                           ALTER COLUMN code TYPE text;
        UPDATE prices SET amount = 123456789012.34, price = 2.5, code = 'X9',
                          updated_at = '2024-02-01T00:00:00Z' WHERE id = 2;
    """)
    return project, environ


def _types(project: Project) -> dict[str, str]:
    table = project.catalog().load_table(("bronze", "prices"))
    return {f.name: str(f.field_type) for f in table.schema().fields}


def test_evolve_promotes_or_keeps_the_value_in_a_variant_column(
        tmp_path: Path, postgres: Postgres, capsys: pytest.CaptureFixture[str]) -> None:
    project, environ = _start(tmp_path, postgres, "evolve")
    before = project.catalog().load_table(("bronze", "prices")).current_snapshot()
    assert before is not None
    configure_logging("info")
    second = project.run("crm", environ=environ)
    configure_logging()
    assert second.success, second.errors
    assert set(second.tables[0].type_changes) == {
        "amount: decimal(10, 2) -> decimal(14, 2)",
        "price: long -> double (price__v_double)",
        "code: long -> string (code__v_text)"}
    assert set(second.tables[0].new_columns) == {"price__v_double", "code__v_text"}
    types = _types(project)
    assert types["amount"] == "decimal(14, 2)"  # a legal promotion: same column, same id
    assert (types["price"], types["price__v_double"]) == ("long", "double")
    assert (types["code"], types["code__v_text"]) == ("long", "string")
    rows = project.read("bronze.prices")
    assert [(r["id"], r["amount"], r["price"], r["price__v_double"], r["code"],
             r["code__v_text"]) for r in rows] == [
        (1, Decimal("1.50"), 10, None, 7, None),
        (2, Decimal("123456789012.34"), None, 2.5, None, "X9")]
    old = project.catalog().load_table(("bronze", "prices")).scan(
        snapshot_id=before.snapshot_id).to_arrow().sort_by("id").to_pylist()
    assert [(r["id"], r["price"], r["code"]) for r in old] == [(1, 10, 7), (2, 20, 8)]
    logged = capsys.readouterr()
    assert "schema.evolved" in logged.out + logged.err
    # the next change of the same kind goes to the same variant column: never blocked
    postgres.execute("UPDATE prices SET price = 3.75, updated_at = '2024-03-01T00:00:00Z' "
                     "WHERE id = 1")
    third = project.run("crm", environ=environ)
    assert third.success, third.errors
    assert [r["price__v_double"] for r in project.read("bronze.prices")] == [3.75, 2.5]


def test_freeze_names_the_column_and_both_types(tmp_path: Path, postgres: Postgres) -> None:
    project, environ = _start(tmp_path, postgres, "freeze")
    snapshots = project.snapshots("bronze.prices")
    second = project.run("crm", environ=environ)
    assert not second.success
    assert second.error_category == "PERMANENT"
    assert ("schema contract 'freeze' rejects the type change of column amount from "
            "decimal(10, 2) to decimal(14, 2)") in second.errors[0]
    assert "table=bronze.prices" in second.errors[0]
    assert project.snapshots("bronze.prices") == snapshots
    assert _types(project)["amount"] == "decimal(10, 2)"


def test_discard_value_drops_values_that_do_not_fit(tmp_path: Path, postgres: Postgres) -> None:
    project, environ = _start(tmp_path, postgres, "discard_value")
    second = project.run("crm", environ=environ)
    assert second.success, second.errors
    assert set(_types(project)) == {"id", "amount", "price", "code", "updated_at"}
    rows = project.read("bronze.prices")
    assert [(r["id"], r["amount"], r["price"], r["code"]) for r in rows] == [
        (1, Decimal("1.50"), 10, 7), (2, Decimal("123456789012.34"), None, None)]


def test_full_refresh_recreates_the_table_with_the_current_types(
        tmp_path: Path, postgres: Postgres) -> None:
    project, environ = _start(tmp_path, postgres, "evolve")
    assert project.run("crm", environ=environ).success
    refreshed = project.run("crm", environ=environ, full_refresh=True)
    assert refreshed.success, refreshed.errors
    types = _types(project)
    assert (types["price"], types["code"], types["amount"]) == ("double", "string",
                                                                "decimal(14, 2)")
    assert "price__v_double" not in types and "code__v_text" not in types
    rows = project.read("bronze.prices")
    assert [(r["id"], r["price"], r["code"]) for r in rows] == [(1, 10.0, "7"), (2, 2.5, "X9")]


FILES = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    schema_contract: {contract}
    source_config: {{bucket_url: landing, file_glob: "*.parquet", format: parquet}}
"""


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
def test_int_widened_to_long_and_float_to_double(tmp_path: Path, contract: str) -> None:
    (tmp_path / "landing").mkdir()
    pq.write_table(pa.table({"id": pa.array([1], pa.int32()), "x": pa.array([0.5], pa.float32())}),
                   tmp_path / "landing" / "a.parquet")
    project = Project(tmp_path)
    project.write(FILES.format(contract=contract))
    assert project.run("orders").success
    assert {f.name: str(f.field_type) for f in project.catalog().load_table(
        ("bronze", "orders")).schema().fields} == {"id": "int", "x": "float"}
    pq.write_table(pa.table({"id": pa.array([2**40], pa.int64()),
                             "x": pa.array([0.1], pa.float64())}),
                   tmp_path / "landing" / "b.parquet")
    result = project.run("orders")
    types = {f.name: str(f.field_type) for f in project.catalog().load_table(
        ("bronze", "orders")).schema().fields}
    if contract == "freeze":
        assert not result.success
        assert "type change of column id from int to long" in result.errors[0]
        assert types == {"id": "int", "x": "float"}
        return
    assert result.success, result.errors
    assert types == {"id": "long", "x": "double"}
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 2**40]


RENAME_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: crm
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    primary_key: id
    cursor_field: updated_at
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      tables: [people]
"""


def test_a_postgres_rename_renames_the_bronze_column(tmp_path: Path,
                                                     postgres: Postgres) -> None:
    """Detected from pg_attribute.attnum, never guessed: the same Iceberg field id keeps the
    column's history (no new empty column, no orphaned old one)."""
    postgres.execute("""
        DROP TABLE IF EXISTS people;
        CREATE TABLE people (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL);
        INSERT INTO people VALUES (1, 'Ada', '2024-01-01T00:00:00Z');
    """)
    environ = {"CRM_DB_URL": postgres.url}
    project = Project(tmp_path)
    project.write(RENAME_PROJECT)
    assert project.run("crm", environ=environ).success
    table = project.catalog().load_table(("bronze", "people"))
    field_id = table.schema().find_field("name").field_id
    before = table.current_snapshot()
    assert before is not None
    postgres.execute("""
        ALTER TABLE people RENAME COLUMN name TO full_name;
        INSERT INTO people VALUES (2, 'Grace', '2024-02-01T00:00:00Z');
    """)
    second = project.run("crm", environ=environ)
    assert second.success, second.errors
    assert second.tables[0].renamed == ("name -> full_name",)
    assert second.tables[0].new_columns == ()
    table = project.catalog().load_table(("bronze", "people"))
    assert table.schema().column_names == ["id", "full_name", "updated_at"]
    assert table.schema().find_field("full_name").field_id == field_id
    rows = project.read("bronze.people")
    assert [(r["id"], r["full_name"]) for r in rows] == [(1, "Ada"), (2, "Grace")]
    # time travel: pyiceberg shows a snapshot with its own schema, where the same field id
    # still has the old name
    old = table.scan(snapshot_id=before.snapshot_id).to_arrow().to_pylist()
    assert [(r["id"], r["name"]) for r in old] == [(1, "Ada")]
    assert table.schemas()[before.schema_id or 0].find_field(field_id).name == "name"


def test_other_sources_keep_the_old_column_and_add_the_new_one(tmp_path: Path) -> None:
    """A file has no column identity: a rename looks like a new column (documented)."""
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.jsonl").write_text('{"id": 1, "name": "Ada"}\n')
    project = Project(tmp_path)
    project.write(FILES.replace("*.parquet", "*.jsonl").replace("format: parquet",
                                                                   "format: jsonl")
                  .format(contract="evolve"))
    assert project.run("orders").success
    (tmp_path / "landing" / "b.jsonl").write_text('{"id": 2, "full_name": "Grace"}\n')
    assert project.run("orders").success
    rows = project.read("bronze.orders")
    assert [(r["id"], r["name"], r["full_name"]) for r in rows] == [
        (1, "Ada", None), (2, None, "Grace")]
