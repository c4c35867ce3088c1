"""What a new user meets in the first hour, from their side (#24): empty or missing landing
folders, columns floe.yaml names that the data lacks, files whose types disagree, bad rows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.harness import Project
from tests.servers import Postgres

HEAD = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
"""


def _project(tmp_path: Path, source: str) -> Project:
    project = Project(tmp_path)
    project.write(HEAD + source)
    return project


def _orders(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_missing_landing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders,
     source_config: {bucket_url: landing, file_glob: "*.csv"}}
""")
    result = project.run("orders")
    assert not result.success
    assert result.errors[0].startswith(
        f"landing folder landing does not exist ({tmp_path / 'landing'}): create it, or fix "
        "source_config.bucket_url")
    assert result.error_category == "CONFIGURATION"


def test_a_first_glob_matching_nothing_warns_with_what_is_there(tmp_path: Path) -> None:
    _orders(tmp_path / "landing", "orders_1.csv", "id\n1\n")
    _orders(tmp_path / "landing", "notes.txt", "x")
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders,
     source_config: {bucket_url: landing, file_glob: "order_*.csv"}}
""")
    first = project.run("orders")
    assert first.success and first.rows_loaded == 0
    assert first.warnings == ("no file matches order_*.csv in landing — 2 other file(s) there: "
                              "notes.txt, orders_1.csv",)


def test_a_later_run_with_no_new_file_is_quiet(tmp_path: Path) -> None:
    _orders(tmp_path / "landing", "orders_1.csv", "id\n1\n")
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders,
     source_config: {bucket_url: landing, file_glob: "orders_*.csv"}}
""")
    assert project.run("orders").rows_loaded == 1
    again = project.run("orders")
    assert again.success and again.rows_loaded == 0 and again.warnings == ()


@pytest.mark.parametrize(("key", "yaml", "message"), [
    ("cursor_field", "cursor_field: modified_at",
     "cursor_field modified_at: bronze.orders has no column modified_at (in orders_1.csv); its "
     "columns: id, amount, updated_at; nothing was committed"),
    ("primary_key", "write_mode: merge, primary_key: idd",
     "primary_key idd: bronze.orders has no column idd (in orders_1.csv); its columns: id, "
     "amount, updated_at — did you mean id?; nothing was committed"),
    ("delete_column", "write_mode: merge, primary_key: id, delete_column: is_deleted",
     "delete_column is_deleted: bronze.orders has no column is_deleted (in orders_1.csv); its "
     "columns: id, amount, updated_at; nothing was committed"),
    ("partition_by", "partition_by: ['day(updated)']",
     "partition_by updated: bronze.orders has no column updated (in orders_1.csv); its columns: "
     "id, amount, updated_at — did you mean updated_at?; nothing was committed"),
    ("sort_by", "sort_by: [amount desc, idx]",
     "sort_by idx: bronze.orders has no column idx (in orders_1.csv); its columns: id, amount, "
     "updated_at — did you mean id?; nothing was committed"),
])
def test_a_column_floe_yaml_names_that_the_files_lack(tmp_path: Path, key: str, yaml: str,
                                                      message: str) -> None:
    _orders(tmp_path / "landing", "orders_1.csv",
            "id,amount,updated_at\n1,9.5,2024-01-01T00:00:00Z\n")
    project = _project(tmp_path, f"""\
  - {{name: orders, source_type: filesystem, destination_table: bronze.orders, {yaml},
     source_config: {{bucket_url: landing, file_glob: "*.csv"}}}}
""")
    result = project.run("orders")
    assert not result.success
    assert result.errors[0].startswith(message), result.errors
    assert result.error_category == "CONFIGURATION"
    assert not project.catalog().table_exists(("bronze", "orders"))


def test_files_whose_types_disagree_follow_the_drift_rules(tmp_path: Path) -> None:
    """One load, per file: the first file sets a column's type, a later file's integers fit
    its doubles (cast), its text does not (a variant column, for that whole file)."""
    landing = tmp_path / "landing"
    _orders(landing, "orders_1.csv", "id,amount,qty\n1,9.5,1\n")
    _orders(landing, "orders_2.csv", 'id,amount,qty\n2,"12,50",2\n3,7,3\n')
    _orders(landing, "orders_3.csv", "id,amount,qty\n4,3,4.5\n")
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders,
     source_config: {bucket_url: landing, file_glob: "*.csv"}}
""")
    for index, name in enumerate(["orders_1.csv", "orders_2.csv", "orders_3.csv"]):
        os.utime(landing / name, (1_700_000_000 + index, 1_700_000_000 + index))
    result = project.run("orders")
    assert result.success, result.errors
    assert result.warnings == (
        "orders_2.csv: column amount is string here but double in the load's first file: its "
        "values landed in amount__v_text",
        "orders_3.csv: column qty is double here but int64 in the load's first file: its "
        "values landed in qty__v_double")
    rows = project.read("bronze.orders")
    assert [(r["id"], r["amount"], r["amount__v_text"], r["qty"], r["qty__v_double"])
            for r in rows] == [(1, 9.5, None, 1, None), (2, None, "12,50", 2, None),
                               (3, None, "7", 3, None), (4, 3.0, None, None, 4.5)]


CSV_WITH_BAD_ROWS = "id,amount,name\n1,9.5,a\n2,1.5,b,extra,x\n3,2.5,c\n4,4.5\n"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_bad_row_fails_the_load_naming_file_line_and_option(tmp_path: Path, fmt: str) -> None:
    text = (CSV_WITH_BAD_ROWS if fmt == "csv" else
            '{"id": 1}\n{"id": 2}\n{"id": 3,\n{"id": 4}\n')
    _orders(tmp_path / "landing", f"orders_1.{fmt}", text)
    project = _project(tmp_path, f"""\
  - {{name: orders, source_type: filesystem, destination_table: bronze.orders,
     source_config: {{bucket_url: landing, file_glob: "*.{fmt}"}}}}
""")
    result = project.run("orders")
    assert not result.success
    what = ("expected 3 columns, got 5" if fmt == "csv" else
            "not JSON: Expecting property name enclosed in double quotes at column 10")
    assert result.errors[0].startswith(
        f"bad row at orders_1.{fmt}:3: {what}; nothing was committed (set `bad_rows: "
        "skip` to drop such rows, or `bad_rows: quarantine` to keep them in "
        "<table>__rejected)"), result.errors
    assert not project.catalog().table_exists(("bronze", "orders"))


def test_bad_rows_skip_counts_them(tmp_path: Path) -> None:
    _orders(tmp_path / "landing", "orders_1.csv", CSV_WITH_BAD_ROWS)
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders, bad_rows: skip,
     source_config: {bucket_url: landing, file_glob: "*.csv"}}
""")
    result = project.run("orders")
    assert result.success and result.rows_loaded == 2
    assert result.warnings == ("skipped 2 bad row(s) (bad_rows: skip)",)
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 3]
    assert not project.catalog().table_exists(("bronze", "orders__rejected"))


def test_bad_rows_quarantine_keeps_them_with_file_and_line(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _orders(landing, "orders_1.csv", CSV_WITH_BAD_ROWS)
    _orders(landing, "orders_2.jsonl", '{"id": 5, "amount": 1.0, "name": "e"}\n[1, 2]\n')
    project = _project(tmp_path, """\
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    bad_rows: quarantine
    source_config: {bucket_url: landing, file_glob: "orders_1.csv"}
  - name: events
    source_type: filesystem
    destination_table: bronze.events
    bad_rows: quarantine
    source_config: {bucket_url: landing, file_glob: "*.jsonl"}
""")
    result = project.run("orders")
    assert result.success, result.errors
    assert {t.table: t.rows_loaded for t in result.tables} == {
        "bronze.orders": 2, "bronze.orders__rejected": 2}
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 3]
    assert project.read("bronze.orders__rejected", sort_by="line") == [
        {"file": "orders_1.csv", "line": 3, "error": "expected 3 columns, got 5",
         "raw": "2,1.5,b,extra,x"},
        {"file": "orders_1.csv", "line": 5, "error": "expected 3 columns, got 2",
         "raw": "4,4.5"}]
    events = project.run("events")
    assert events.success, events.errors
    assert project.read("bronze.events__rejected", sort_by="line") == [
        {"file": "orders_2.jsonl", "line": 2, "error": "a JSON list, not an object",
         "raw": "[1, 2]"}]
    # the file cursor moved with both tables: nothing is read twice
    again = project.run("orders")
    assert again.rows_loaded == 0
    assert len(project.read("bronze.orders__rejected", sort_by="line")) == 2


def test_bad_rows_is_for_landing_files_only(tmp_path: Path) -> None:
    from floe.errors import CompileError

    project = _project(tmp_path, """\
  - name: api
    source_type: rest_api
    destination_table: bronze
    bad_rows: skip
    source_config: {client: {base_url: "http://127.0.0.1:1"}, resources: [orders]}
""")
    with pytest.raises(CompileError) as failure:
        project.compile()
    assert "floe.yaml:8:15: sources[0].bad_rows: bad_rows applies to filesystem sources (csv, " \
           "jsonl), not rest_api" in str(failure.value.render())


SQL = """\
  - name: crm
    source_type: sql_database
    destination_table: bronze
    {extra}
    source_config:
      credentials: "{{{{ secret('CRM_DB_URL') }}}}"
      tables: [{table}]
"""


@pytest.fixture
def customers(postgres: Postgres) -> Postgres:
    postgres.execute("""
        DROP TABLE IF EXISTS fh_customers;
        CREATE TABLE fh_customers (id int PRIMARY KEY, name text, updated_at timestamptz);
        INSERT INTO fh_customers VALUES (1, 'Alice', '2024-01-01T00:00:00Z');
    """)
    return postgres


@pytest.mark.parametrize(("extra", "message"), [
    ("cursor_field: modified_at",
     "cursor_field modified_at: bronze.fh_customers has no column modified_at; its columns: id, "
     "name, updated_at; nothing was committed"),
    ("write_mode: merge\n    primary_key: customer_id",
     "primary_key customer_id: bronze.fh_customers has no column customer_id; its columns: id, "
     "name, updated_at; nothing was committed"),
])
def test_sql_database_column_mistakes(tmp_path: Path, customers: Postgres, extra: str,
                                      message: str) -> None:
    project = _project(tmp_path, SQL.format(extra=extra, table="fh_customers"))
    result = project.run("crm", environ={"CRM_DB_URL": customers.url})
    assert not result.success
    assert result.errors[0].startswith(message), result.errors
    assert customers.password not in result.errors[0]


def test_sql_database_table_that_does_not_exist(tmp_path: Path, customers: Postgres) -> None:
    project = _project(tmp_path, SQL.format(extra="", table="fh_custmers"))
    result = project.run("crm", environ={"CRM_DB_URL": customers.url})
    assert not result.success
    assert result.errors[0].startswith(
        "source_config.tables: no table fh_custmers in schema public — did you mean "
        "fh_customers?; its tables: "), result.errors
    assert result.error_category == "CONFIGURATION"
    assert customers.password not in result.errors[0]


def _verify(project: Project, name: str) -> list[Any]:
    from floe.runtime.verify import verify_source

    artifacts = project.compile()
    return verify_source(artifacts.source(name), project.catalog(), project.root)


def test_verify_tells_never_loaded_from_loaded_but_empty(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders,
     source_config: {bucket_url: landing, file_glob: "orders_*.csv"}}
""")
    assert project.run("orders").success
    [empty] = _verify(project, "orders")
    assert (empty.status, empty.reason) == (
        "match", "no file matches orders_*.csv in landing — it is empty: nothing to load "
        "(Bronze creates the table with the first rows)")
    _orders(tmp_path / "landing", "orders_1.csv", "id\n1\n")
    [never] = _verify(project, "orders")
    assert (never.status, never.reason) == ("mismatch", "not in Bronze yet: run floe run")


def test_verify_counts_quarantined_rows_as_accounted_for(tmp_path: Path) -> None:
    _orders(tmp_path / "landing", "orders_1.csv", CSV_WITH_BAD_ROWS)
    project = _project(tmp_path, """\
  - {name: orders, source_type: filesystem, destination_table: bronze.orders,
     bad_rows: quarantine, source_config: {bucket_url: landing, file_glob: "*.csv"}}
""")
    assert project.run("orders").success
    [report] = _verify(project, "orders")
    assert (report.status, report.source_rows, report.bronze_rows) == ("match", 2, 2)
    assert report.reason == "2 bad row(s) quarantined in bronze.orders__rejected, accounted for"


def test_verify_an_empty_source_table(tmp_path: Path, postgres: Postgres) -> None:
    postgres.execute("DROP TABLE IF EXISTS fh_empty; CREATE TABLE fh_empty (id int);")
    project = _project(tmp_path, SQL.format(extra="", table="fh_empty"))
    environ = {"CRM_DB_URL": postgres.url}
    assert project.run("crm", environ=environ).success
    from floe.runtime.verify import verify_source

    [report] = verify_source(project.compile(environ).source("crm"), project.catalog(),
                             project.root, environ=environ)
    assert (report.status, report.reason) == (
        "match", "source table fh_empty has no rows: nothing to load (Bronze creates the table "
        "with the first rows)")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_large_files_stream_with_the_same_bad_row_rules(tmp_path: Path, fmt: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Files over WHOLE_FILE_BYTES are read in bounded pieces (here: tiny ones, so a bad row's
    line is counted across many chunks and blocks)."""
    from floe.runtime.ingestion import landing

    monkeypatch.setattr(landing, "WHOLE_FILE_BYTES", 100)
    monkeypatch.setattr(landing, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(landing, "_CHUNK_BYTES", 1000)
    good = [f"{i},{i * 1.5},n{i}" for i in range(2000)] if fmt == "csv" else [
        f'{{"id": {i}, "amount": {i * 1.5}, "name": "n{i}"}}' for i in range(2000)]
    lines = (["id,amount,name"] if fmt == "csv" else []) + good
    broken = "x,1,2,3" if fmt == "csv" else '{"id": 5000,'
    for at in (700, 1900):  # physical lines (1-based)
        lines.insert(at - 1, broken)
    _orders(tmp_path / "landing", f"big.{fmt}", "\n".join(lines) + "\n")
    project = _project(tmp_path, f"""\
  - {{name: orders, source_type: filesystem, destination_table: bronze.orders,
     bad_rows: quarantine, source_config: {{bucket_url: landing, file_glob: "*.{fmt}"}}}}
""")
    result = project.run("orders")
    assert result.success, result.errors
    assert [r["id"] for r in project.read("bronze.orders")] == list(range(2000))
    assert [(r["line"], r["raw"]) for r in project.read("bronze.orders__rejected", "line")] == [
        (700, broken), (1900, broken)]
