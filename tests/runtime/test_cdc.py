"""postgres_cdc against the suite's PostgreSQL 15 (wal_level=logical): after every run Bronze
equals the source, compared as sets over every column; faults at each stage lose and double
nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.string import TextLoader

from floe.runtime.cdc import commit as cdc_commit
from floe.runtime.cdc.postgres import load as cdc_load
from floe.runtime.iceberg import commit as commit_module
from tests.runtime.harness import Project
from tests.servers import Postgres

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: {name}
    source_type: postgres_cdc
    destination_table: bronze
    {extra}
    source_config:
      credentials: "{{{{ secret('SHOP_PG_URL') }}}}"
      tables: [customers, orders]
"""

SCHEMA = """
DROP TABLE IF EXISTS customers, orders;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text,
                        balance numeric(10,2), tags jsonb, seen_at timestamptz);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, total double precision,
                     note text);
INSERT INTO customers VALUES
  (1, 'Ada', 'ada@x', 10.50, '{"vip": true}', '2024-01-01T00:00:00Z'),
  (2, 'Bob', NULL, 0.00, NULL, NULL),
  (3, 'Cy', 'cy@x', 3.25, '[1, 2]', '2024-01-03T12:00:00+02:00');
INSERT INTO customers SELECT g, 'c' || g, NULL, g, NULL, NULL FROM generate_series(100, 119) g;
INSERT INTO orders VALUES (10, 1, 9.5, 'first'), (11, 2, 20.0, NULL);
"""


def _connect(postgres: Postgres) -> psycopg.Connection[Any]:
    conn = psycopg.connect(postgres.url, autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    return conn


def source_rows(postgres: Postgres, table: str) -> set[tuple[Any, ...]]:
    with _connect(postgres) as conn:
        cursor = conn.execute(f"SELECT * FROM {table}")
        return {tuple(row) for row in cursor.fetchall()}


def bronze_rows(project: Project, table: str, columns: list[str],
                include_deleted: bool = False) -> set[tuple[Any, ...]]:
    rows = project.catalog().load_table(("bronze", table)).scan().to_arrow().to_pylist()
    return {tuple(r[c] for c in columns) for r in rows
            if include_deleted or not r.get("_floe_deleted_at")}


def columns(postgres: Postgres, table: str) -> list[str]:
    with _connect(postgres) as conn:
        return [d.name for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description or []]


def assert_bronze_equals_source(project: Project, postgres: Postgres) -> None:
    for table in ("customers", "orders"):
        names = columns(postgres, table)
        assert bronze_rows(project, table, names) == source_rows(postgres, table), table


@pytest.fixture
def shop(tmp_path: Path, postgres: Postgres, request: pytest.FixtureRequest
         ) -> Iterator[tuple[Project, dict[str, str]]]:
    name = "cdc_" + request.node.name.split("[")[0].removeprefix("test_")[:40]
    postgres.execute(SCHEMA)
    project = Project(tmp_path)
    extra = getattr(request, "param", "")
    project.write(PROJECT.format(name=name, extra=extra))
    yield project, {"SHOP_PG_URL": postgres.url}
    postgres.drop_slot(f"floe_shop_{name}", publication=True)


CHANGES = [
    # inserts, updates, a delete
    """INSERT INTO customers VALUES (4, 'Dee', 'dee@x', 1.00, '{}', now());
       UPDATE customers SET email = 'bob@x', balance = 99.99 WHERE id = 2;
       DELETE FROM customers WHERE id = 3;""",
    # the same key updated twice: the last version wins
    """UPDATE customers SET name = 'Ada L.' WHERE id = 1;
       UPDATE customers SET name = 'Ada Lovelace', tags = '{"vip": false}' WHERE id = 1;""",
    # inserted and deleted between two runs: never appears
    """INSERT INTO customers VALUES (5, 'Tmp', NULL, NULL, NULL, NULL);
       DELETE FROM customers WHERE id = 5;""",
    # an update that changes the primary key removes the old key
    "UPDATE customers SET id = 40 WHERE id = 4;",
    # truncate, then new rows
    """TRUNCATE orders;
       INSERT INTO orders VALUES (12, 40, 7.25, 'after truncate');""",
]


def test_every_run_leaves_bronze_equal_to_the_source(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = shop
    first = project.run(project_source(project), environ=environ)
    assert first.success, first.errors
    assert sorted(t.table for t in first.tables) == ["bronze.customers", "bronze.orders"]
    assert_bronze_equals_source(project, postgres)
    for statement in CHANGES:
        postgres.execute(statement)
        result = project.run(project_source(project), environ=environ)
        assert result.success, result.errors
        assert_bronze_equals_source(project, postgres)
    quiet = project.run(project_source(project), environ=environ)
    assert quiet.success and quiet.rows_loaded == 0
    table = project.catalog().load_table(("bronze", "customers"))
    rows = table.scan().to_arrow().to_pylist()
    assert all(r["_floe_lsn"] > 0 and r["_floe_committed_at"] is not None for r in rows)
    assert {f.name for f in table.schema().fields} >= {"_floe_lsn", "_floe_committed_at"}
    # CDC tables are merge-on-read: changes to a few of the copy's rows were position deletes
    assert table.metadata.properties["write.merge.mode"] == "merge-on-read"
    assert any((s.summary or {}).get("added-position-delete-files") for s in table.snapshots())


def project_source(project: Project) -> str:
    return project.compile().sources[0].name


def test_a_crash_before_the_commit_loses_nothing(
        shop: tuple[Project, dict[str, str]], postgres: Postgres,
        monkeypatch: pytest.MonkeyPatch) -> None:
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    postgres.execute(CHANGES[0])

    def crash(*_: object, **__: object) -> None:
        raise OSError("power lost before the commit")

    monkeypatch.setattr(cdc_commit, "commit_table_load", crash)
    assert not project.run(name, environ=environ).success
    monkeypatch.setattr(cdc_commit, "commit_table_load", commit_module.commit_table_load)
    assert project.run(name, environ=environ).success
    assert_bronze_equals_source(project, postgres)


def test_a_crash_after_the_commit_before_the_slot_moved_applies_nothing_twice(
        shop: tuple[Project, dict[str, str]], postgres: Postgres,
        monkeypatch: pytest.MonkeyPatch) -> None:
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    postgres.execute(CHANGES[0] + CHANGES[3])

    def crash(self: object, lsn: int) -> None:
        raise OSError("power lost after the commit, before the slot was confirmed")

    monkeypatch.setattr(cdc_load.PostgresSource, "advance", crash)
    assert not project.run(name, environ=environ).success
    assert_bronze_equals_source(project, postgres)  # the commits landed
    monkeypatch.undo()
    replay = project.run(name, environ=environ)  # the same changes come again: skipped
    assert replay.success and replay.rows_loaded == 0
    assert_bronze_equals_source(project, postgres)


def test_a_crash_mid_copy_then_the_next_run_copies_again(
        shop: tuple[Project, dict[str, str]], postgres: Postgres,
        monkeypatch: pytest.MonkeyPatch) -> None:
    project, environ = shop
    name = project_source(project)
    real_copy = cdc_load.PostgresSource.copy

    def copy_then_crash(self: Any, table: Any, batch_rows: int = 100_000) -> Any:
        yield from real_copy(self, table, 1)
        postgres.execute("UPDATE customers SET name = 'changed mid-copy' WHERE id = 1")
        raise OSError("connection lost mid-copy")

    monkeypatch.setattr(cdc_load.PostgresSource, "copy", copy_then_crash)
    assert not project.run(name, environ=environ).success
    monkeypatch.undo()
    postgres.execute(CHANGES[0])
    assert project.run(name, environ=environ).success
    assert_bronze_equals_source(project, postgres)


@pytest.mark.parametrize("shop", ["deletes: soft"], indirect=True)
def test_soft_deletes_keep_the_row_with_its_time(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    postgres.execute("DELETE FROM customers WHERE id = 3")
    assert project.run(name, environ=environ).success
    rows = project.catalog().load_table(("bronze", "customers")).scan().to_arrow().to_pylist()
    deleted = [r for r in rows if r["_floe_deleted_at"] is not None]
    assert [(r["id"], r["name"], r["email"]) for r in deleted] == [(3, "Cy", "cy@x")]
    assert_bronze_equals_source(project, postgres)  # live rows equal the source


def test_json_text_and_types_arrive_as_postgres_has_them(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = shop
    assert project.run(project_source(project), environ=environ).success
    table = project.catalog().load_table(("bronze", "customers"))
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["balance"] == "decimal(10, 2)"
    assert types["seen_at"] == "timestamptz"
    assert types["id"] == "long"
    ada = next(r for r in table.scan().to_arrow().to_pylist() if r["id"] == 1)
    assert json.loads(ada["tags"]) == {"vip": True}


def _bronze_snapshots(project: Project) -> dict[str, int | None]:
    catalog = project.catalog()
    if ("bronze",) not in catalog.list_namespaces():
        return {}
    found = {}
    for identifier in catalog.list_tables("bronze"):
        snapshot = catalog.load_table(identifier).current_snapshot()
        found[identifier[-1]] = snapshot.snapshot_id if snapshot else None
    return found


def _fails_with(project: Project, environ: dict[str, str], message: str) -> None:
    """A one-line CONFIGURATION error, and Bronze exactly as it was (no table, no commit)."""
    before = _bronze_snapshots(project)
    result = project.run(project_source(project), environ=environ)
    assert not result.success
    assert result.error_category == "CONFIGURATION"
    assert message in result.errors[0], result.errors[0]
    assert _bronze_snapshots(project) == before


def test_wal_level_not_logical_says_how_to_fix_it(
        tmp_path: Path, postgres_without_logical_wal: Postgres) -> None:
    postgres_without_logical_wal.execute(SCHEMA)
    project = Project(tmp_path)
    project.write(PROJECT.format(name="walcheck", extra=""))
    _fails_with(project, {"SHOP_PG_URL": postgres_without_logical_wal.url},
                "PostgreSQL wal_level is replica, logical replication needs logical: run "
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")


def test_a_role_without_replication_is_named(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, _ = shop
    postgres.execute("""
        DROP ROLE IF EXISTS reader; CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
        GRANT SELECT ON customers, orders TO reader;
    """)
    url = postgres.url.replace(f"{postgres.user}:{postgres.password}", "reader:reader-pw")
    _fails_with(project, {"SHOP_PG_URL": url},
                "role reader lacks the REPLICATION attribute: run ALTER ROLE reader "
                "REPLICATION;")


def test_a_missing_table_is_named(shop: tuple[Project, dict[str, str]],
                                  postgres: Postgres) -> None:
    project, environ = shop
    postgres.execute("DROP TABLE orders")
    _fails_with(project, environ, "table public.orders does not exist: create it, or remove "
                "it from source_config.tables")


def test_a_table_without_key_or_full_identity_is_named(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = shop
    postgres.execute("ALTER TABLE orders DROP CONSTRAINT orders_pkey")
    _fails_with(project, environ, "table orders has no primary key and no REPLICA IDENTITY "
                "FULL")


def test_a_slot_in_use_elsewhere_is_reported(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    import psycopg2
    from psycopg2.extras import LogicalReplicationConnection

    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    other = psycopg2.connect(host="127.0.0.1", port=postgres.port, user=postgres.user,
                             password=postgres.password, dbname=postgres.database,
                             connection_factory=LogicalReplicationConnection)
    try:
        other.cursor().start_replication(
            slot_name=f"floe_shop_{name}", decode=False,
            options={"proto_version": "1", "publication_names": f"floe_shop_{name}"})
        _fails_with(project, environ,
                    f"replication slot floe_shop_{name} is active in another process")
    finally:
        other.close()


def test_columns_added_and_retyped_follow_the_evolution_rules(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    postgres.execute("""
        ALTER TABLE customers ADD COLUMN tier text;
        ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;
        ALTER TABLE customers ALTER COLUMN balance TYPE numeric(14,2);
        UPDATE customers SET tier = 'gold', balance = 123456789012.34 WHERE id = 1;
        INSERT INTO orders VALUES (13, 3000000000, 1.0, 'big customer id');
    """)
    result = project.run(name, environ=environ)
    assert result.success, result.errors
    assert_bronze_equals_source(project, postgres)
    types = {f.name: str(f.field_type) for f in project.catalog().load_table(
        ("bronze", "customers")).schema().fields}
    assert types["tier"] == "string" and types["balance"] == "decimal(14, 2)"


def test_a_rename_mid_batch_renames_the_bronze_column_keeping_its_field_id(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    """Updates before and after a RENAME COLUMN in one batch: Bronze has one column under the
    new name with every row's value, and older snapshots read under the new name (same field
    id).  Before the fix Bronze kept `note` and added an empty `memo`."""
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    before = project.catalog().load_table(("bronze", "orders")).schema().find_field("note")
    postgres.execute("""
        UPDATE orders SET note = 'before rename' WHERE id = 10;
        ALTER TABLE orders RENAME COLUMN note TO memo;
        UPDATE orders SET memo = 'after rename' WHERE id = 11;
        INSERT INTO orders VALUES (14, 1, 2.5, 'new row');
    """)
    result = project.run(name, environ=environ)
    assert result.success, result.errors
    table = project.catalog().load_table(("bronze", "orders"))
    assert "note" not in table.schema().column_names
    assert table.schema().find_field("memo").field_id == before.field_id
    assert_bronze_equals_source(project, postgres)
    # renamed between two runs, with no change in between: the stored {attnum: name} has it
    postgres.execute("ALTER TABLE orders RENAME COLUMN memo TO remark;")
    assert project.run(name, environ=environ).success
    postgres.execute("UPDATE orders SET remark = 'third name' WHERE id = 14;")
    assert project.run(name, environ=environ).success
    table = project.catalog().load_table(("bronze", "orders"))
    assert table.schema().find_field("remark").field_id == before.field_id
    assert "memo" not in table.schema().column_names
    assert_bronze_equals_source(project, postgres)


@pytest.mark.parametrize("shop", ["merge_strategy: scd2"], indirect=True)
def test_history_keeps_every_change_from_the_wal_at_its_commit_time(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    """postgres_cdc with scd2: each committed change a version, valid from its transaction's
    commit time; the current versions equal the source."""
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success  # the copy: one version per row
    for statement in ("UPDATE customers SET email = 'ada@one' WHERE id = 1;",
                      "UPDATE customers SET email = 'ada@two' WHERE id = 1;",
                      "UPDATE customers SET name = 'Ada' WHERE id = 1;",  # same values: none
                      "DELETE FROM customers WHERE id = 3;",
                      "INSERT INTO customers VALUES (3, 'Cy again', NULL, 1, NULL, NULL);",
                      "INSERT INTO orders VALUES (15, 1, 3.0, 'before the truncate');",
                      "TRUNCATE orders; INSERT INTO orders VALUES (20, 1, 1.0, 'after');"):
        postgres.execute(statement)
    result = project.run(name, environ=environ)
    assert result.success, result.errors
    rows = project.catalog().load_table(("bronze", "customers")).scan().to_arrow().to_pylist()
    ada = sorted((r for r in rows if r["id"] == 1), key=lambda r: r["_floe_valid_from"])
    assert [r["email"] for r in ada] == ["ada@x", "ada@one", "ada@two"]
    assert [r["_floe_is_current"] for r in ada] == [False, False, True]
    assert ada[0]["_floe_valid_to"] == ada[1]["_floe_valid_from"] == ada[1]["_floe_committed_at"]
    cy = sorted((r for r in rows if r["id"] == 3), key=lambda r: r["_floe_valid_from"])
    assert [(r["name"], r["_floe_is_current"]) for r in cy] == [("Cy", False), ("Cy again", True)]
    assert cy[0]["_floe_valid_to"] < cy[1]["_floe_valid_from"]  # the delete's gap
    current = {tuple(r[c] for c in columns(postgres, "customers")) for r in rows
               if r["_floe_is_current"]}
    assert current == source_rows(postgres, "customers")
    orders = project.catalog().load_table(("bronze", "orders")).scan().to_arrow().to_pylist()
    # TRUNCATE closes what Bronze held and what this same run opened before it
    assert sorted((r["id"], r["_floe_is_current"]) for r in orders) == [
        (10, False), (11, False), (15, False), (20, True)]
    ends = {r["id"]: r["_floe_valid_to"] for r in orders}
    twenty = next(r for r in orders if r["id"] == 20)
    assert ends[10] == ends[11] == ends[15] == twenty["_floe_valid_from"]
    assert {t.table: t.versions_opened for t in result.tables} == {
        "bronze.customers": 3, "bronze.orders": 2}


def test_dagster_has_one_asset_per_table_and_materializes_them(
        shop: tuple[Project, dict[str, str]], postgres: Postgres,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from floe.runtime.dagster import build_definitions

    project, environ = shop
    name = project_source(project)
    monkeypatch.setenv("SHOP_PG_URL", environ["SHOP_PG_URL"])
    defs = build_definitions(project.root / "target" / "compiled_artifacts.json")
    [assets] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert assets.keys == {dg.AssetKey(f"ingestion__{name}__customers"),
                           dg.AssetKey(f"ingestion__{name}__orders")}
    assert dg.materialize([assets]).success
    postgres.execute(CHANGES[0])
    run = dg.materialize([assets])
    assert run.success
    assert_bronze_equals_source(project, postgres)
    rows = {e.asset_key.path[-1]: e.materialization.metadata["rows_loaded"].value
            for e in run.get_asset_materialization_events()}
    assert rows == {f"ingestion__{name}__customers": 3, f"ingestion__{name}__orders": 0}


def test_an_unchanged_toasted_value_keeps_its_value(
        shop: tuple[Project, dict[str, str]], postgres: Postgres,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pgoutput leaves out an unchanged TOASTed value: Bronze keeps the one it has."""
    from floe.runtime.cdc.fold import TableFold

    pending: list[Any] = []
    real = TableFold.unchanged_keys
    monkeypatch.setattr(TableFold, "unchanged_keys",
                        lambda self: pending.extend(real(self)) or real(self))
    project, environ = shop
    name = project_source(project)
    postgres.execute("""
        ALTER TABLE customers ALTER COLUMN email SET STORAGE EXTERNAL;  -- out of line, as is
        UPDATE customers SET email = (SELECT string_agg(md5(g::text), '') FROM
                                      generate_series(1, 400) g) WHERE id = 1;
    """)
    assert project.run(name, environ=environ).success
    postgres.execute("UPDATE customers SET name = 'Ada L.' WHERE id = 1")
    assert project.run(name, environ=environ).success
    assert_bronze_equals_source(project, postgres)
    ada = next(r for r in project.read("bronze.customers") if r["id"] == 1)
    assert len(ada["email"]) == 400 * 32 and ada["name"] == "Ada L."
    assert pending == [(1,)]  # the message really left the value out


def test_full_refresh_recreates_the_slot_and_copies_again(
        shop: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = shop
    name = project_source(project)
    assert project.run(name, environ=environ).success
    with _connect(postgres) as conn:
        before = conn.execute("SELECT catalog_xmin FROM pg_replication_slots WHERE "
                              "slot_name = %s", (f"floe_shop_{name}",)).fetchone()
    postgres.execute(CHANGES[0])
    refreshed = project.run(name, environ=environ, full_refresh=True)
    assert refreshed.success, refreshed.errors
    assert_bronze_equals_source(project, postgres)
    with _connect(postgres) as conn:
        after = conn.execute("SELECT catalog_xmin FROM pg_replication_slots WHERE "
                             "slot_name = %s", (f"floe_shop_{name}",)).fetchone()
    assert before is not None and after is not None and after != before  # a new slot
    postgres.execute(CHANGES[1])
    assert project.run(name, environ=environ).success
    assert_bronze_equals_source(project, postgres)


def test_a_single_table_lands_under_the_name_destination_table_gives(
        tmp_path: Path, postgres: Postgres) -> None:
    postgres.execute(SCHEMA)
    project = Project(tmp_path)
    project.write(PROJECT.format(name="renamed_dest", extra="").replace(
        "destination_table: bronze", "destination_table: bronze.people").replace(
        "tables: [customers, orders]", "tables: [customers]"))
    environ = {"SHOP_PG_URL": postgres.url}
    try:
        first = project.run("renamed_dest", environ=environ)
        assert first.success, first.errors
        assert [t.table for t in first.tables] == ["bronze.people"]
        postgres.execute(CHANGES[0])
        second = project.run("renamed_dest", environ=environ)
        assert second.success and second.tables[0].rows_loaded == 3
        names = columns(postgres, "customers")
        assert bronze_rows(project, "people", names) == source_rows(postgres, "customers")
        assert ("bronze", "customers") not in project.catalog().list_tables("bronze")
    finally:
        postgres.drop_slot("floe_shop_renamed_dest", publication=True)
