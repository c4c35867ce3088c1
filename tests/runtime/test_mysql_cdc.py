"""mysql_cdc against the suite's MariaDB 10.11 (ROW binlog, full images and metadata): after
every run Bronze equals the source, compared over every column; types arrive the same from the
copy and from the binlog; DDL mid-stream follows the drift rules; a crash at each stage loses
and doubles nothing; a server that is not ready says how to fix it in one line."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from floe.runtime.cdc import commit as cdc_commit
from floe.runtime.cdc.mysql import server as mysql_server
from floe.runtime.iceberg import commit as commit_module
from tests.runtime.harness import Project
from tests.servers import MariaDB

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: {name}
    source_type: mysql_cdc
    destination_table: bronze
    {extra}
    source_config:
      credentials: "{{{{ secret('SHOP_MYSQL_URL') }}}}"
      tables: [customers, products]
"""

SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80),
                        balance DECIMAL(10,2), seen_at DATETIME(6)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, price DECIMAL(8,2), stock INT,
                       doc JSON);
INSERT INTO customers VALUES (1, 'Ada', 'ada@x', 10.50, '2024-01-01 00:00:00.250000'),
  (2, 'Bob', NULL, 0.00, NULL), (3, 'Cy', 'cy@x', 3.25, '2024-01-03 12:00:00');
INSERT INTO customers SELECT seq, CONCAT('c', seq), NULL, seq, NULL FROM seq_100_to_119;
INSERT INTO products VALUES ('MUG', 9.50, 3, '{"color": "red"}'), ('CAP', 20.00, 0, NULL);
"""


class Shop:
    """One database per test on the shared server, and the project that replicates it."""

    def __init__(self, mariadb: MariaDB, database: str, project: Project) -> None:
        self.mariadb, self.database, self.project = mariadb, database, project
        self.environ = {"SHOP_MYSQL_URL": self.url()}
        self.source = database

    def url(self, scheme: str = "mysql") -> str:
        m = self.mariadb
        return f"{scheme}://{m.user}:{m.password}@127.0.0.1:{m.port}/{self.database}"

    def execute(self, sql: str) -> None:
        self.mariadb.execute(f"USE {self.database};\n{sql}")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(host="127.0.0.1", port=self.mariadb.port,
                               user=self.mariadb.user, password=self.mariadb.password,
                               database=self.database, autocommit=True,
                               init_command="SET time_zone = '+00:00'")
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def run(self, full_refresh: bool = False) -> Any:
        return self.project.run(self.source, environ=self.environ, full_refresh=full_refresh)

    def columns(self, table: str) -> list[str]:
        return [str(name) for (name,) in self.query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
            f"'{self.database}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION")]

    def source_rows(self, table: str) -> set[tuple[Any, ...]]:
        names = ", ".join(self.columns(table))
        return {tuple(row) for row in self.query(f"SELECT {names} FROM {table}")}

    def bronze_rows(self, table: str, include_deleted: bool = False) -> set[tuple[Any, ...]]:
        names = self.columns(table)
        rows = self.project.catalog().load_table(("bronze", table)).scan().to_arrow()
        return {tuple(r[c] for c in names) for r in rows.to_pylist()
                if (include_deleted or not r.get("_floe_deleted_at"))
                and r.get("_floe_is_current", True)}  # a history table: its current versions

    def assert_bronze_equals_source(self, tables: tuple[str, ...] = ("customers", "products")
                                    ) -> None:
        for table in tables:
            assert self.bronze_rows(table) == self.source_rows(table), table


@pytest.fixture
def shop(tmp_path: Path, mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[Shop]:
    database = "cdc_" + request.node.name.split("[")[0].removeprefix("test_")[:40]
    mariadb.execute(f"DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}")
    project = Project(tmp_path)
    project.write(PROJECT.format(name=database, extra=getattr(request, "param", "")))
    found = Shop(mariadb, database, project)
    found.execute(SCHEMA)
    yield found
    mariadb.execute(f"DROP DATABASE IF EXISTS {database}")


CHANGES = [
    # inserts, updates, a delete, in one transaction over two tables
    """START TRANSACTION;
       INSERT INTO customers VALUES (4, 'Dee', 'dee@x', 1.00, NOW(6));
       UPDATE customers SET email = 'bob@x', balance = 99.99 WHERE id = 2;
       DELETE FROM customers WHERE id = 3;
       UPDATE products SET stock = stock - 1 WHERE sku = 'MUG';
       COMMIT;""",
    # the same key updated many times: the last version wins
    """UPDATE customers SET name = 'Ada L.' WHERE id = 1;
       UPDATE customers SET name = 'Ada Lovelace', balance = 11 WHERE id = 1;
       UPDATE customers SET email = 'ada@lovelace' WHERE id = 1;""",
    # inserted and deleted between two runs: never appears
    """INSERT INTO customers VALUES (5, 'Tmp', NULL, NULL, NULL);
       DELETE FROM customers WHERE id = 5;""",
    # an update that changes the primary key removes the old key
    "UPDATE customers SET id = 40 WHERE id = 4;",
    # truncate, then new rows
    """TRUNCATE products;
       INSERT INTO products VALUES ('TEE', 15.00, 7, '{"size": "L", "tags": ["a", "b"]}');""",
    # a 100k-row transaction
    "INSERT INTO customers SELECT seq, CONCAT('bulk', seq), NULL, 1, NULL "
    "FROM seq_1000_to_100999;",
]


def test_every_run_leaves_bronze_equal_to_the_source(shop: Shop) -> None:
    first = shop.run()
    assert first.success, first.errors
    assert sorted(t.table for t in first.tables) == ["bronze.customers", "bronze.products"]
    assert first.rows_loaded == 25  # the copy is counted
    shop.assert_bronze_equals_source()
    for statement in CHANGES:
        shop.execute(statement)
        result = shop.run()
        assert result.success, result.errors
        shop.assert_bronze_equals_source()
    quiet = shop.run()
    assert quiet.success and quiet.rows_loaded == 0
    table = shop.project.catalog().load_table(("bronze", "customers"))
    rows = table.scan().to_arrow().to_pylist()
    assert all(r["_floe_binlog"] > 0 and r["_floe_committed_at"] is not None for r in rows)
    assert table.metadata.properties["write.merge.mode"] == "merge-on-read"
    state = table.current_snapshot().summary  # the position and GTID travel with the commit
    assert any("binlog_file" in str(v) and "gtid" in str(v) for v in state.additional_properties
               .values()), state
    from floe.runtime.verify import verify_source

    reports = verify_source(shop.project.compile(shop.environ).source(shop.source),
                            shop.project.catalog(), shop.project.root, environ=shop.environ)
    assert [(r.table, r.status, r.source_rows) for r in reports] == [
        ("bronze.customers", "match", len(shop.source_rows("customers"))),
        ("bronze.products", "match", len(shop.source_rows("products")))], reports


def test_two_runs_overlapping_are_fenced_nothing_doubled(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run B reads, then run A (started later) commits first: B writes nothing."""
    assert shop.run().success
    shop.execute("INSERT INTO customers VALUES (9, 'Gil', NULL, 2, NULL);")
    real = commit_module.commit_table_load
    raced: list[bool] = []

    def other_run_commits_first(catalog: Any, load: Any, attempts: int = 5) -> Any:
        if not raced:
            raced.append(True)
            monkeypatch.setattr(cdc_commit, "commit_table_load", real)
            other = shop.run()
            assert other.success and other.rows_loaded == 1, other.errors
        return real(catalog, load, attempts)

    monkeypatch.setattr(cdc_commit, "commit_table_load", other_run_commits_first)
    loser = shop.run()
    assert not loser.success
    assert "another run of this source committed to bronze.customers first" in loser.errors[0]
    assert [r["id"] for r in shop.project.read("bronze.customers")].count(9) == 1
    shop.assert_bronze_equals_source()


KINDS = """
CREATE TABLE kinds (
  id INT PRIMARY KEY, big BIGINT, ubig BIGINT UNSIGNED, tiny TINYINT, utiny TINYINT UNSIGNED,
  med MEDIUMINT UNSIGNED, price DECIMAL(12,3), f FLOAT, d DOUBLE, dt6 DATETIME(6),
  dt0 DATETIME, ts TIMESTAMP(3) NULL, day DATE, t TIME(2), yr YEAR, name VARCHAR(50),
  fixed CHAR(4), body TEXT, raw VARBINARY(16), bin BINARY(3), blob_ BLOB, doc JSON,
  color ENUM('red','green'), tags SET('a','b','c'), flags BIT(10)
) DEFAULT CHARSET=utf8mb4;
"""
ROW = """(ID, -9000000000, 18446744073709551615, -5, 250, 16777215, 123456789.125, 1.5, 2.25,
  '2024-03-01 10:11:12.123456', '2024-03-01 10:11:12', '2024-03-01 10:11:12.345',
  '2024-03-01', '13:14:15.25', 2024, 'Ada 🚀', 'ab', 'long text', X'00DEADBEEF', X'0102',
  X'FF00', '{"a": [1, 2], "b": null}', 'green', 'c,a', b'1000000101')"""
EMPTY = "(ID, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0000-00-00 00:00:00', " \
        "NULL, '0000-00-00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', " \
        "NULL)"


def test_every_type_arrives_the_same_from_the_copy_and_from_the_binlog(shop: Shop) -> None:
    shop.execute("SET SESSION sql_mode = ''; " + KINDS + "INSERT INTO kinds VALUES "
                 + ROW.replace("ID", "1") + ", " + EMPTY.replace("ID", "2"))
    shop.project.write(PROJECT.format(name=shop.source, extra="").replace(
        "[customers, products]", "[kinds]"))
    assert shop.run().success  # rows 1, 2 from the copy
    shop.execute("SET SESSION sql_mode = ''; SET time_zone = '+02:00'; INSERT INTO kinds "
                 "VALUES " + ROW.replace("ID", "3").replace(
                     "'2024-03-01 10:11:12.345'", "'2024-03-01 12:11:12.345'") + ", "
                 + EMPTY.replace("ID", "4"))
    result = shop.run()  # rows 3, 4 from the binlog
    assert result.success, result.errors
    table = shop.project.catalog().load_table(("bronze", "kinds"))
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert {k: v for k, v in types.items() if not k.startswith("_")} == {
        "id": "long", "big": "long", "ubig": "decimal(20, 0)", "tiny": "long",
        "utiny": "long", "med": "long", "price": "decimal(12, 3)", "f": "double",
        "d": "double", "dt6": "timestamp", "dt0": "timestamp", "ts": "timestamptz",
        "day": "date", "t": "time", "yr": "long", "name": "string", "fixed": "string",
        "body": "string", "raw": "binary", "bin": "binary", "blob_": "binary",
        "doc": "string", "color": "string", "tags": "string", "flags": "long"}
    rows = {r["id"]: {k: v for k, v in r.items() if not k.startswith("_") and k != "id"}
            for r in table.scan().to_arrow().to_pylist()}
    assert rows[1] == rows[3] == {
        "big": -9000000000, "ubig": decimal.Decimal("18446744073709551615"), "tiny": -5,
        "utiny": 250, "med": 16777215, "price": decimal.Decimal("123456789.125"), "f": 1.5,
        "d": 2.25, "dt6": dt.datetime(2024, 3, 1, 10, 11, 12, 123456),
        "dt0": dt.datetime(2024, 3, 1, 10, 11, 12),
        "ts": dt.datetime(2024, 3, 1, 10, 11, 12, 345000, tzinfo=dt.UTC),
        "day": dt.date(2024, 3, 1), "t": dt.time(13, 14, 15, 250000), "yr": 2024,
        "name": "Ada 🚀", "fixed": "ab", "body": "long text", "raw": b"\x00\xde\xad\xbe\xef",
        "bin": b"\x01\x02\x00", "blob_": b"\xff\x00", "doc": '{"a": [1, 2], "b": null}',
        "color": "green", "tags": "a,c", "flags": 0b1000000101}
    # zero dates land as null (documented); an empty SET is the empty string
    assert rows[2] == rows[4]
    assert rows[2]["dt0"] is None and rows[2]["day"] is None and rows[2]["tags"] == ""


def test_ddl_mid_stream_follows_the_drift_rules(shop: Shop) -> None:
    assert shop.run().success
    field_id = shop.project.catalog().load_table(("bronze", "customers")).schema().find_field(
        "email").field_id
    shop.execute("""
        UPDATE customers SET email = 'before@x' WHERE id = 1;
        ALTER TABLE customers RENAME COLUMN email TO mail;
        UPDATE customers SET mail = 'after@x' WHERE id = 2;
        ALTER TABLE customers ADD COLUMN tier VARCHAR(10);
        UPDATE customers SET tier = 'gold' WHERE id = 1;
        ALTER TABLE customers CHANGE mail contact VARCHAR(120);
        INSERT INTO customers (id, name, contact, tier) VALUES (7, 'Eve', 'eve@x', 'new');
        ALTER TABLE products MODIFY stock BIGINT;
        UPDATE products SET stock = 3000000000 WHERE sku = 'CAP';
        ALTER TABLE products DROP COLUMN doc;
        INSERT INTO products VALUES ('PEN', 1.00, 5);
    """)
    result = shop.run()
    assert result.success, result.errors
    customers = shop.project.catalog().load_table(("bronze", "customers"))
    assert customers.schema().find_field("contact").field_id == field_id
    assert not {"email", "mail"} & set(customers.schema().column_names)
    shop.assert_bronze_equals_source()
    products = shop.project.catalog().load_table(("bronze", "products"))
    assert str(products.schema().find_field("stock").field_type) == "long"
    assert "doc" in products.schema().column_names  # a dropped column stays, null from now
    assert {r["sku"]: r["doc"] for r in products.scan().to_arrow().to_pylist()}["PEN"] is None


def test_a_crash_before_the_commit_loses_nothing(shop: Shop,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert shop.run().success
    shop.execute(CHANGES[0])

    def crash(*_: object, **__: object) -> None:
        raise OSError("power lost before the commit")

    monkeypatch.setattr(cdc_commit, "commit_table_load", crash)
    assert not shop.run().success
    monkeypatch.setattr(cdc_commit, "commit_table_load", commit_module.commit_table_load)
    assert shop.run().success
    shop.assert_bronze_equals_source()


def test_a_crash_between_two_tables_commits_applies_nothing_twice(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shop.run().success
    shop.execute(CHANGES[0] + "INSERT INTO customers VALUES (8, 'Fay', NULL, 1, NULL);")
    real = commit_module.commit_table_load
    seen: list[str] = []

    def second_fails(catalog: Any, load: Any, attempts: int = 5) -> Any:
        seen.append(load.identifier[1])
        if len(seen) == 2:
            raise OSError("power lost between two commits")
        return real(catalog, load, attempts)

    monkeypatch.setattr(cdc_commit, "commit_table_load", second_fails)
    assert not shop.run().success
    assert seen == ["customers", "products"]
    shop.assert_bronze_equals_source(("customers",))  # committed before the crash
    monkeypatch.setattr(cdc_commit, "commit_table_load", real)
    again = shop.run()
    assert again.success, again.errors
    assert again.rows_loaded == 1, "only products' change: customers' were already applied"
    shop.assert_bronze_equals_source()


def test_a_crash_mid_copy_then_the_next_run_copies_again(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    real_copy = mysql_server.MySQLSource.copy

    def copy_then_crash(self: Any, table: Any, batch_rows: int = 50_000) -> Iterator[Any]:
        yield from real_copy(self, table, batch_rows=5)
        raise OSError("killed during the copy")

    monkeypatch.setattr(mysql_server.MySQLSource, "copy", copy_then_crash)
    assert not shop.run().success
    monkeypatch.setattr(mysql_server.MySQLSource, "copy", real_copy)
    shop.execute(CHANGES[0])
    assert shop.run().success
    shop.assert_bronze_equals_source()


@pytest.mark.parametrize("shop", ["deletes: soft"], indirect=True)
def test_soft_deletes_keep_the_row_with_its_time(shop: Shop) -> None:
    assert shop.run().success
    shop.execute("DELETE FROM customers WHERE id = 3;")
    assert shop.run().success
    rows = {r["id"]: r for r in shop.project.read("bronze.customers")}
    assert rows[3]["name"] == "Cy" and rows[3]["_floe_deleted_at"] is not None
    assert rows[1]["_floe_deleted_at"] is None
    shop.assert_bronze_equals_source()


def test_full_refresh_copies_again(shop: Shop) -> None:
    assert shop.run().success
    shop.execute("DELETE FROM customers WHERE id > 99;")
    result = shop.run(full_refresh=True)
    assert result.success, result.errors
    assert result.rows_loaded == 5
    shop.assert_bronze_equals_source()


def _fails_with(shop: Shop, message: str) -> None:
    snapshots = {t: _snapshot(shop, t) for t in ("customers", "products")}
    result = shop.run()
    assert not result.success
    assert result.error_category == "CONFIGURATION", result.errors
    assert result.errors == [message] or message in result.errors[0], result.errors
    assert "\n" not in result.errors[0] and "Traceback" not in result.errors[0]
    assert {t: _snapshot(shop, t) for t in snapshots} == snapshots  # nothing written


def _snapshot(shop: Shop, table: str) -> int | None:
    try:
        current = shop.project.catalog().load_table(("bronze", table)).current_snapshot()
    except Exception:
        return None
    return current.snapshot_id if current else None


@pytest.mark.parametrize(("variable", "value"), [
    ("binlog_format", "STATEMENT"), ("binlog_row_image", "MINIMAL"),
    ("binlog_row_metadata", "MINIMAL")])
def test_a_server_setting_that_is_not_ready_names_the_fix(
        shop: Shop, variable: str, value: str) -> None:
    shop.mariadb.execute(f"SET GLOBAL {variable} = '{value}'")
    wanted = "ROW" if variable == "binlog_format" else "FULL"
    try:
        _fails_with(shop, f"{variable} is {value}, mysql_cdc needs {wanted}: SET GLOBAL "
                    f"{variable} = '{wanted}'; and {variable}={wanted} in my.cnf")
    finally:
        shop.mariadb.execute(f"SET GLOBAL {variable} = '{wanted}'")


def test_changes_written_with_minimal_metadata_are_refused_not_misapplied(shop: Shop) -> None:
    assert shop.run().success
    shop.mariadb.execute("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:  # a new session takes the global setting
        shop.execute("UPDATE customers SET name = 'no names' WHERE id = 1;")
    finally:
        shop.mariadb.execute("SET GLOBAL binlog_row_metadata = 'FULL'")
    result = shop.run()
    assert not result.success
    assert "was written without column names (binlog_row_metadata=MINIMAL)" in \
        result.errors[0], result.errors
    assert [r["name"] for r in shop.project.read("bronze.customers") if r["id"] == 1] == ["Ada"]
    assert shop.run(full_refresh=True).success
    shop.assert_bronze_equals_source()


def test_a_user_without_replication_grants_is_told_which(shop: Shop) -> None:
    shop.mariadb.execute(f"""
        DROP USER IF EXISTS 'reader'@'%';
        CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pw';
        GRANT SELECT ON {shop.database}.* TO 'reader'@'%';""")
    m = shop.mariadb
    shop.environ = {"SHOP_MYSQL_URL":
                    f"mysql://reader:reader-pw@127.0.0.1:{m.port}/{shop.database}"}
    _fails_with(shop, "user reader@% lacks REPLICATION SLAVE and REPLICATION CLIENT: run GRANT "
                "REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'reader'@'%'; (as an "
                "administrator)")
    assert "reader-pw" not in " ".join(shop.run().errors)


def test_a_table_without_primary_key_is_named(shop: Shop) -> None:
    shop.execute("ALTER TABLE products DROP PRIMARY KEY;")
    _fails_with(shop, "table products has no primary key, so its updates and deletes cannot "
                "be matched")


def test_a_missing_table_is_named(shop: Shop) -> None:
    shop.execute("DROP TABLE products;")
    _fails_with(shop, f"table {shop.database}.products does not exist (its tables: "
                "customers): create it, or fix source_config.tables")


def test_the_servers_own_server_id_is_refused(shop: Shop) -> None:
    shop.project.write(PROJECT.format(name=shop.source, extra="").replace(
        "tables: [customers, products]", "tables: [customers, products]\n      server_id: 1"))
    _fails_with(shop, "server_id 1 is the server's own: set source_config.server_id")


def test_a_purged_binlog_names_full_refresh_as_the_way_out(shop: Shop) -> None:
    assert shop.run().success
    shop.mariadb.execute("FLUSH BINARY LOGS")
    shop.execute("UPDATE customers SET name = 'x' WHERE id = 1;")
    [(newest, *_)] = shop.query("SHOW MASTER STATUS")
    shop.mariadb.execute(f"PURGE BINARY LOGS TO '{newest}'")
    result = shop.run()
    assert not result.success
    assert "(purged;" in result.errors[0] and "floe run --full-refresh" in result.errors[0]
    assert shop.run(full_refresh=True).success
    shop.assert_bronze_equals_source()


def test_the_binlog_library_contract(shop: Shop) -> None:
    """What floe takes from python-mysql-replication (cdc/mysql/binlog.py): row events with
    names from the table map, their end positions, and DDL statements."""
    from floe.runtime.cdc.mysql.binlog import Rename, RowChange, Truncate, read_changes
    from floe.runtime.cdc.mysql.server import MySQLSource

    with MySQLSource(shop.url(), ["customers", "products"]) as db:
        start, _ = db.position()
        shop.execute("""UPDATE customers SET name = 'A' WHERE id = 1;
                        ALTER TABLE customers RENAME COLUMN name TO full_name;
                        TRUNCATE TABLE products;""")
        upto, _ = db.position()
        changes = list(read_changes(db.settings, 4242, shop.database,
                                    ["customers", "products"], start, upto))
    [update, rename, truncate] = changes
    assert isinstance(update, RowChange) and update.kind == "update"
    assert update.names == ("id", "name", "email", "balance", "seen_at")
    [(before, after)] = update.rows
    assert before is not None and after is not None
    assert (before[1], after[1]) == ("Ada", "A")
    assert [c.kind for c in update.columns] == ["int", "string", "string", "decimal",
                                                "datetime"]
    assert isinstance(rename, Rename) and (rename.old, rename.new) == ("name", "full_name")
    assert isinstance(truncate, Truncate) and truncate.table == "products"
    assert start < update.position < rename.position < truncate.position <= upto


@pytest.mark.parametrize(("query", "session_db", "found"), [
    ("-- a note\n/* why */ ALTER TABLE `customers` RENAME COLUMN country TO `country code`, "
     "CHANGE COLUMN a b INT", "shop", [("customers", "country", "country code"),
                                        ("customers", "a", "b")]),
    ("ALTER TABLE shop.customers CHANGE name name VARCHAR(90)", "other", []),  # a retype
    ("# cleanup\nTRUNCATE customers", "shop", [("customers",)]),
    ("TRUNCATE TABLE shop.customers", "other", [("customers",)]),
    ("TRUNCATE customers", "other", []),  # another database's customers
    ("ALTER TABLE other.customers RENAME COLUMN a TO b", "shop", []),
    ("ALTER TABLE orders RENAME COLUMN a TO b", "shop", []),  # not replicated
])
def test_ddl_statements_are_read_for_their_table(query: str, session_db: str,
                                                 found: list[tuple[str, ...]]) -> None:
    from floe.runtime.cdc.mysql.binlog import Rename, ddl_changes
    from floe.runtime.cdc.mysql.server import Position

    changes = ddl_changes(query, session_db, "shop", ["customers", "products"],
                          Position("binlog.000001", 4))
    assert [(c.table, c.old, c.new) if isinstance(c, Rename) else (c.table,)
            for c in changes] == found


def test_dagster_has_one_asset_per_table_and_materializes_them(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from floe.runtime.dagster import build_definitions

    shop.project.compile(shop.environ)
    monkeypatch.setenv("SHOP_MYSQL_URL", shop.environ["SHOP_MYSQL_URL"])
    defs = build_definitions(shop.project.root / "target" / "compiled_artifacts.json")
    [assets] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert assets.keys == {dg.AssetKey(f"ingestion__{shop.source}__customers"),
                           dg.AssetKey(f"ingestion__{shop.source}__products")}
    assert dg.materialize([assets]).success
    shop.execute("UPDATE customers SET name = 'Ada L.' WHERE id = 1;")
    run = dg.materialize([assets])
    assert run.success
    shop.assert_bronze_equals_source()
    rows = {e.asset_key.path[-1]: e.materialization.metadata["rows_loaded"].value
            for e in run.get_asset_materialization_events()}
    assert rows == {f"ingestion__{shop.source}__customers": 1,
                    f"ingestion__{shop.source}__products": 0}


DECODED = """
CREATE TABLE decoded (
  id INT PRIMARY KEY, i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
  i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED, i64 BIGINT,
  u64 BIGINT UNSIGNED, d1 DECIMAL(5,0), d2 DECIMAL(20,6), d3 DECIMAL(38,10), f FLOAT,
  g DOUBLE, dt0 DATETIME, dt1 DATETIME(1), dt3 DATETIME(3), dt6 DATETIME(6),
  ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL, ts5 TIMESTAMP(5) NULL, day DATE, t0 TIME,
  t4 TIME(4), t6 TIME(6), yr YEAR, c CHAR(5), vc VARCHAR(300), tx TINYTEXT, lt LONGTEXT,
  b BINARY(4), vb VARBINARY(300), bl MEDIUMBLOB, e ENUM('x','y','z'),
  s SET('p','q','r','s','t','u','v','w','x9'), bt1 BIT(1), bt17 BIT(17), j JSON,
  lat VARCHAR(10) CHARACTER SET latin1
) DEFAULT CHARSET=utf8mb4;
INSERT INTO decoded VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615, -99999, -12345678901234.123456,
  1234567890123456789012345678.0123456789, -1.25, 3.141592653589793,
  '1000-01-01 00:00:00', '2024-02-29 23:59:59.9', '1999-12-31 23:59:59.999',
  '9999-12-31 23:59:59.999999', '1970-01-02 00:00:00', '2038-01-19 03:14:07.99',
  '2024-06-01 12:00:00.12345', '2024-02-29', '-838:59:59', '-00:00:01.0001',
  '838:59:58.999999', 2155, 'héllo', REPEAT('ü', 300), 'tiny', REPEAT('long', 1000), X'01',
  X'00FF00', X'DEADBEEF', 'z', 'p,x9', b'1', b'10000000000000001', '{"k": [1, "😀"]}',
  'façade'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '00:00:00', NULL, NULL, NULL, '', '', '',
  '', X'', X'', X'', NULL, '', b'0', NULL, NULL, NULL),
 (3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -0.4, -0.000001, -0.0000000001, 1e30, -1e-300,
  '2000-01-01 00:00:01', '2000-01-01 00:00:01.5', '2000-01-01 00:00:01.05',
  '2000-01-01 00:00:01.000005', '2000-01-01 00:00:01', '2000-01-01 00:00:01.01',
  '2000-01-01 00:00:01.00001', '2000-01-01', '12:34:56', '12:34:56.7', '12:34:56.000001',
  1901, 'a', 'b', 'c', 'd', X'00000000', X'00', X'00', 'x', 'w', b'0', b'1',
  '[]', 'x');
UPDATE decoded SET vc = 'changed', i8 = i8 + 1 WHERE id IN (1, 3);
DELETE FROM decoded WHERE id = 3;
"""


def test_the_row_decoder_agrees_with_the_library(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """floe decodes row images itself (cdc/mysql/rows.py, 3x faster); on every type, every
    fractional precision, nulls, signs and edges, it gives what python-mysql-replication
    gives for the same binlog bytes."""
    from floe.runtime.cdc.mysql import binlog
    from floe.runtime.cdc.mysql.server import MySQLSource
    from floe.runtime.mysql.types import convert_row, converters

    with MySQLSource(shop.url(), ["decoded"]) as db:
        start, _ = db.position()
        shop.execute("SET time_zone = '+00:00'; " + DECODED)
        upto, _ = db.position()
        covered: list[bool] = []
        real = binlog.row_reader

        def recorded(columns: Any) -> Any:
            found = real(columns)
            covered.append(found is not None)
            return found

        monkeypatch.setattr(binlog, "row_reader", recorded)
        ours = list(binlog.read_changes(db.settings, 4243, shop.database, ["decoded"],
                                        start, upto))
        assert covered and all(covered), "every column here is decoded by floe"
        monkeypatch.setattr(binlog, "row_reader", lambda columns: None)
        theirs = list(binlog.read_changes(db.settings, 4243, shop.database, ["decoded"],
                                          start, upto))
    kinds = [c.kind for c in ours if isinstance(c, binlog.RowChange)]
    assert list(dict.fromkeys(kinds)) == ["insert", "update", "delete"]  # big rows: events
    assert sum(len(c.rows) for c in ours if isinstance(c, binlog.RowChange)) == 6
    assert len(ours) == len(theirs) >= 3
    for mine, reference in zip(ours, theirs, strict=True):
        assert (type(mine), mine.position) == (type(reference), reference.position)
        if isinstance(mine, binlog.RowChange) and isinstance(reference, binlog.RowChange):
            assert (mine.kind, mine.names, mine.columns) == (
                reference.kind, reference.names, reference.columns)
            convert = converters(mine.columns)  # what lands in Bronze
            for row, expected in zip(mine.rows, reference.rows, strict=True):
                for image, image_expected in zip(row, expected, strict=True):
                    assert (image is None) == (image_expected is None)
                    if image is not None and image_expected is not None:
                        assert dict(zip(mine.names, convert_row(convert, image),
                                        strict=True)) == dict(zip(
                            mine.names, convert_row(convert, image_expected), strict=True))
    inserted = next(c for c in ours if isinstance(c, binlog.RowChange))
    first = dict(zip(inserted.names, inserted.rows[0][1] or (), strict=True))
    assert first["u64"] == 18446744073709551615 and first["lat"] == "façade"
    assert first["dt6"] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    # a negative TIME with a fraction: exact here (the library's reading is off by a second;
    # Bronze's time of day holds neither, it lands null)
    assert first["t4"] == -dt.timedelta(seconds=1, microseconds=100)
    assert first["t0"] == -dt.timedelta(hours=838, minutes=59, seconds=59)


@pytest.mark.parametrize("shop", ["", "merge_strategy: scd2"], indirect=True)
def test_kill_9_at_any_stage_then_bronze_equals_the_source(shop: Shop) -> None:
    """`floe run` processes killed with SIGKILL at random points (the first copy, reading the
    binlog, between commits), changes arriving between them; then a run that finishes, and
    Bronze equals the source: nothing lost, nothing twice.  With history (scd2): no version
    is left half-closed either (each key: versions end to end, at most one current)."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    shop.execute("INSERT INTO customers SELECT seq, CONCAT('k', seq), NULL, seq, NULL "
                 "FROM seq_1000_to_60999;")
    shop.project.compile(shop.environ)
    env = {**os.environ, **shop.environ}

    def floe_run() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "floe.cli", "run"],
                                cwd=shop.project.root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    started = time.perf_counter()
    first = floe_run()
    time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # during its start or its first copy
    first.wait()
    assert floe_run().wait() == 0  # the copy

    def change(round_: int) -> None:  # ~30k row changes: most of a run is its work
        shop.execute(f"UPDATE customers SET balance = balance + 1 WHERE id % 2 = {round_ % 2};"
                     f"DELETE FROM customers WHERE id % 50 = {round_};"
                     f"INSERT INTO customers SELECT seq, 'new', NULL, 0, NULL FROM "
                     f"seq_{100000 + round_ * 5000}_to_{100000 + round_ * 5000 + 4999};")

    change(0)
    timed = time.perf_counter()
    assert floe_run().wait() == 0  # a whole run of one round: how long one takes here
    whole = time.perf_counter() - timed
    chance = random.Random(19)
    interrupted = 0
    for round_ in range(1, 7):
        change(round_)
        run = floe_run()
        time.sleep(chance.uniform(0.4, 1.05) * whole)  # late in a run (its work), or after
        if run.poll() is None:
            interrupted += 1
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert interrupted >= 2, interrupted  # the kills hit runs mid-way
    final = subprocess.run([sys.executable, "-m", "floe.cli", "run"], cwd=shop.project.root,
                           env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    shop.assert_bronze_equals_source()
    rows = shop.project.catalog().load_table(("bronze", "customers")).scan().to_arrow()
    if "_floe_is_current" in rows.column_names:
        by_key: dict[Any, list[dict[str, Any]]] = {}
        for row in rows.to_pylist():
            by_key.setdefault(row["id"], []).append(row)
        for versions in by_key.values():
            versions.sort(key=lambda r: r["_floe_valid_from"])
            assert sum(r["_floe_is_current"] for r in versions) <= 1
            for older, newer in itertools.pairwise(versions):
                assert older["_floe_valid_to"] is not None
                assert older["_floe_valid_to"] <= newer["_floe_valid_from"]
    assert time.perf_counter() - started < 240


def test_the_pymysql_contract(shop: Shop) -> None:
    """runtime/mysql/pymysql_internals.py overrides PyMySQL's _create_ssl_ctx: connections in
    TLS-preferred mode share one default context, and still connect."""
    import pymysql.connections

    from floe.runtime.mysql.connect import connect, connection_settings

    assert callable(getattr(pymysql.connections.Connection, "_create_ssl_ctx", None))
    settings = connection_settings(shop.url())
    first, second = connect(settings), connect(settings)
    try:
        assert first.ctx is not None and first.ctx is second.ctx
        with first.cursor() as cursor:
            cursor.execute("SELECT @@time_zone, 1")
            assert cursor.fetchone() == ("+00:00", 1)
    finally:
        first.close()
        second.close()


def test_a_server_without_its_binary_log_names_the_fix(tmp_path: Path) -> None:
    from tests.servers import mariadb_server

    with mariadb_server(log_bin=False) as plain:
        plain.execute("CREATE TABLE customers (id INT PRIMARY KEY); "
                      "CREATE TABLE products (sku VARCHAR(9) PRIMARY KEY)")
        project = Project(tmp_path)
        project.write(PROJECT.format(name="nobinlog", extra=""))
        result = project.run("nobinlog", environ={"SHOP_MYSQL_URL": plain.url})
    assert not result.success
    assert result.errors[0] == (
        "the binary log is off on this server: start it with log_bin (e.g. --log-bin=binlog "
        "in my.cnf's [mysqld]) and restart it (pipeline=shop__nobinlog, "
        "source_type=mysql_cdc, table=bronze)"), result.errors
    assert result.error_category == "CONFIGURATION"


def test_lag_in_seconds_is_the_age_of_the_oldest_unread_change(shop: Shop) -> None:
    """What the metrics report: after a run, a change written since is the lag, in seconds
    from its binlog timestamp; changes to other tables or databases do not count."""
    import time

    from floe.runtime.cdc.mysql.binlog import oldest_unread_change
    from floe.runtime.cdc.mysql.server import MySQLSource

    result = shop.run()
    assert result.success and result.lag is not None
    assert result.lag.seconds == 0.0
    with MySQLSource(shop.url(), ["customers", "products"]) as db:
        upto, _ = db.position()
        assert oldest_unread_change(db.settings, 4242, shop.database,
                                    ["customers", "products"], upto) is None
        shop.mariadb.execute("CREATE DATABASE IF NOT EXISTS other_db; "
                             "CREATE TABLE IF NOT EXISTS other_db.t (id int PRIMARY KEY); "
                             "INSERT INTO other_db.t VALUES (1)")  # not ours: not lag
        assert oldest_unread_change(db.settings, 4242, shop.database,
                                    ["customers", "products"], upto) is None
        before = time.time()
        shop.execute("UPDATE customers SET name = 'Ada 2' WHERE id = 1")
        written = oldest_unread_change(db.settings, 4242, shop.database,
                                       ["customers", "products"], upto)
    shop.mariadb.execute("DROP DATABASE other_db")
    assert written is not None and before - 2 <= written <= time.time() + 1
