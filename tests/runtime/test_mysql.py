"""MySQL / MariaDB as a first-class sql_database (#19): the URLs users write, every common type
to the Bronze type it should be, merge + incremental, and floe verify — against a real MariaDB
10.11 started by the suite (ROW binlog, full images and metadata)."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.harness import Project
from tests.servers import MariaDB

KINDS = """
    DROP TABLE IF EXISTS kinds;
    CREATE TABLE kinds (
      id INT PRIMARY KEY, big BIGINT, ubig BIGINT UNSIGNED, tiny TINYINT, utiny TINYINT UNSIGNED,
      price DECIMAL(12,2), f FLOAT, d DOUBLE, dt DATETIME(6), ts TIMESTAMP(3) NULL, day DATE,
      t TIME, yr YEAR, name VARCHAR(50), body TEXT, raw VARBINARY(16), doc JSON,
      color ENUM('red','green'), tags SET('a','b'), flags BIT(8),
      updated_at DATETIME(6) NOT NULL
    ) DEFAULT CHARSET=utf8mb4;
    SET time_zone = '+02:00';
    INSERT INTO kinds VALUES (1, -9000000000, 18446744073709551615, -5, 250, 12345.67, 1.5, 2.25,
      '2024-03-01 10:11:12.123456', '2024-03-01 10:11:12.345', '2024-03-01', '13:14:15', 2024,
      'Ada 🚀', 'long text', X'DEADBEEF', '{"a": [1, 2], "b": null}', 'green', 'b,a',
      b'10100101', '2024-03-01 00:00:00');
    INSERT INTO kinds (id, updated_at) VALUES (2, '2024-03-01 00:00:01');
"""

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: my, version: 1.0.0}
sources:
  - name: crm
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    primary_key: id
    cursor_field: updated_at
    source_config: {credentials: "{{ secret('MY_URL') }}", tables: [kinds]}
"""


@pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql", "mariadb"])
def test_every_type_lands_as_its_bronze_type(tmp_path: Path, mariadb: MariaDB, scheme: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Read with connectorx (floe's MySQL loader, the default): the types and values the
    mysql_cdc copy and binlog give."""
    from floe.runtime.ingestion.mysql_loader import MySQLTableLoader

    loaded: list[str] = []
    real = MySQLTableLoader.load_rows

    def counted(self: MySQLTableLoader, backend_kwargs: Any = None) -> Any:
        loaded.append(self.table.name)
        return real(self, backend_kwargs)

    monkeypatch.setattr(MySQLTableLoader, "load_rows", counted)
    mariadb.execute(KINDS)
    project = Project(tmp_path)
    project.write(PROJECT)
    environ = {"MY_URL": mariadb.url_for(scheme)}
    result = project.run("crm", environ=environ)
    assert result.success, result.errors
    assert mariadb.password not in project.compile(environ).to_json()
    table = project.catalog().load_table(("bronze", "kinds"))
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert {k: v for k, v in types.items() if not k.startswith("_")} == {
        "id": "long", "big": "long", "ubig": "decimal(20, 0)", "tiny": "long", "utiny": "long",
        "price": "decimal(12, 2)", "f": "double", "d": "double", "dt": "timestamp",
        "ts": "timestamptz", "day": "date", "t": "time", "yr": "long", "name": "string",
        "body": "string", "raw": "binary", "doc": "string", "color": "string",
        "tags": "string", "flags": "long", "updated_at": "timestamp"}
    [row, empty] = project.read("bronze.kinds")
    assert row == {
        "id": 1, "big": -9000000000, "ubig": decimal.Decimal("18446744073709551615"),
        "tiny": -5, "utiny": 250, "price": decimal.Decimal("12345.67"), "f": 1.5, "d": 2.25,
        "dt": dt.datetime(2024, 3, 1, 10, 11, 12, 123456),
        # written at +02:00, stored and read in UTC
        "ts": dt.datetime(2024, 3, 1, 8, 11, 12, 345000, tzinfo=dt.UTC),
        "day": dt.date(2024, 3, 1), "t": dt.time(13, 14, 15), "yr": 2024, "name": "Ada 🚀",
        "body": "long text", "raw": b"\xde\xad\xbe\xef", "doc": '{"a": [1, 2], "b": null}',
        "color": "green", "tags": "a,b", "flags": 165,
        "updated_at": dt.datetime(2024, 3, 1, 0, 0)}
    assert empty["ubig"] is None and empty["ts"] is None
    assert loaded == ["kinds"]


def test_merge_incremental_and_verify(tmp_path: Path, mariadb: MariaDB) -> None:
    from floe.runtime.verify import verify_source

    mariadb.execute(KINDS)
    project = Project(tmp_path)
    project.write(PROJECT)
    environ = {"MY_URL": mariadb.url}
    assert project.run("crm", environ=environ).rows_loaded == 2
    mariadb.execute("""
        UPDATE kinds SET name = 'Ada L.', updated_at = '2024-03-02 00:00:00' WHERE id = 1;
        INSERT INTO kinds (id, name, updated_at) VALUES (3, 'Cy', '2024-03-02 00:00:01');
    """)
    second = project.run("crm", environ=environ)
    assert second.success and second.rows_loaded == 2, "only the changed and the new row"
    assert [(r["id"], r["name"]) for r in project.read("bronze.kinds")] == [
        (1, "Ada L."), (2, None), (3, "Cy")]
    [report] = verify_source(project.compile(environ).source("crm"), project.catalog(),
                             project.root, environ=environ)
    assert (report.status, report.source_rows, report.bronze_rows) == ("match", 3, 3), report
    mariadb.execute("UPDATE kinds SET tags = 'a', updated_at = '2024-03-01 00:00:00' "
                    "WHERE id = 3")  # a change the cursor cannot see: verify names it
    [stale] = verify_source(project.compile(environ).source("crm"), project.catalog(),
                            project.root, environ=environ)
    assert stale.status == "mismatch" and stale.different == ["3 (tags, updated_at)"], stale
