"""floe verify against the suite's PostgreSQL: matches after a load, names the key a Bronze
delete removed, reports lag and the differing columns of an unloaded update."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import EqualTo

from tests.runtime.harness import Project
from tests.servers import Postgres

PROJECT = """\
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
      tables: [accounts]
  - name: cdc
    source_type: postgres_cdc
    destination_table: mirror
    deletes: soft
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      tables: [accounts]
      slot_name: floe_verify_test
  - name: files
    source_type: filesystem
    destination_table: bronze.files
    source_config: {bucket_url: landing, format: jsonl}
"""


def _verify(project: Project, environ: dict[str, str], *args: str) -> tuple[int, Any]:
    floe = str(Path(sys.executable).parent / "floe")
    done = subprocess.run([floe, "verify", "--json", *args], cwd=project.root,
                          capture_output=True, text=True, env={**os.environ, **environ})
    assert done.stderr.strip() == "" or done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_verify(tmp_path: Path, postgres: Postgres) -> None:
    postgres.execute("""
        SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
            WHERE slot_name = 'floe_verify_test';
        DROP TABLE IF EXISTS accounts;
        CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(10,2),
                               prefs jsonb, updated_at timestamptz NOT NULL);
        INSERT INTO accounts VALUES
          (1, 'Ada', 10.50, '{"b": 1, "a": [1, 2]}', '2024-01-01T00:00:00Z'),
          (2, 'Bob', 0.00, NULL, '2024-01-02T00:00:00Z'),
          (3, 'Cy', 3.10, '{}', '2024-01-03T00:00:00Z');
    """)
    environ = {"CRM_DB_URL": postgres.url}
    project = Project(tmp_path)
    project.write(PROJECT)
    project.compile(environ)
    try:
        assert project.run("crm", environ=environ).success
        assert project.run("cdc", environ=environ).success
        code, found = _verify(project, environ, "--select", "crm", "--select", "cdc")
        assert code == 0, json.dumps(found, indent=1)
        assert [(r["source"], r["table"], r["status"], r["source_rows"], r["bronze_rows"])
                for r in found] == [("crm", "bronze.accounts", "match", 3, 3),
                                    ("cdc", "mirror.accounts", "match", 3, 3)]
        assert found[0]["source_checksum"] == found[0]["bronze_checksum"]
        assert found[0]["lag"] == "0:00:00"
        # verify found this one: Arrow turned jsonb {} into {"a": null, "b": null}
        prefs = {r["id"]: r["prefs"] for r in project.read("bronze.accounts")}
        assert json.loads(prefs[3]) == {} and json.loads(prefs[1]) == {"a": [1, 2], "b": 1}

        # a row lost in Bronze is named by its key
        table = project.catalog().load_table(("bronze", "accounts"))
        table.delete(EqualTo("id", 2))
        code, found = _verify(project, environ, "--select", "crm")
        assert code == 1
        assert found[0]["status"] == "mismatch"
        assert found[0]["missing_in_bronze"] == ["2"]
        assert found[0]["bronze_rows"] == 2

        # the source moved on and nobody ran floe: lag and the differing columns
        postgres.execute("UPDATE accounts SET name = 'Cyrus', updated_at = "
                         "'2024-01-05T00:00:00Z' WHERE id = 3; DELETE FROM accounts "
                         "WHERE id = 1")
        code, found = _verify(project, environ, "--select", "crm")
        assert code == 1
        assert found[0]["different"] == ["3 (name, updated_at)"]
        assert found[0]["extra_in_bronze"] == ["1"]
        assert found[0]["lag"] == "2 days, 0:00:00"

        # CDC with soft deletes: the deleted row stays in Bronze, marked; verify compares the
        # live rows
        assert project.run("cdc", environ=environ).success
        code, found = _verify(project, environ, "--select", "cdc")
        assert code == 0, found
        assert found[0]["source_rows"] == found[0]["bronze_rows"] == 2

        assert postgres.password not in json.dumps(found)
    finally:
        postgres.drop_slot("floe_verify_test")


RECONCILED = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: ledger
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    primary_key: id
    cursor_field: updated_at
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      tables: [ledger]
    checks:
      - reconcile: {max_lag: 1h}
"""


def test_reconcile_is_a_check_in_floe_run_and_dagster(
        tmp_path: Path, postgres: Postgres, monkeypatch: Any) -> None:
    import dagster as dg

    from floe.runtime.dagster import build_definitions
    from floe.runtime.quality import check_source

    postgres.execute("""
        DROP TABLE IF EXISTS ledger;
        CREATE TABLE ledger (id int PRIMARY KEY, amount numeric(8,2),
                             updated_at timestamptz NOT NULL);
        INSERT INTO ledger VALUES (1, 1.00, '2024-01-01T00:00:00Z'),
                                  (2, 2.50, '2024-01-01T01:00:00Z');
    """)
    environ = {"CRM_DB_URL": postgres.url}
    monkeypatch.setenv("CRM_DB_URL", postgres.url)
    project = Project(tmp_path)
    project.write(RECONCILED)
    project.compile(environ)
    defs = build_definitions(tmp_path / "target" / "compiled_artifacts.json")
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    run = dg.materialize([*assets, *(defs.asset_checks or [])])
    assert run.success
    [evaluation] = run.get_asset_check_evaluations()
    assert evaluation.check_name == "reconcile" and evaluation.passed
    assert evaluation.metadata["message"].value.startswith("2 rows match the source")

    artifacts = project.compile(environ)
    source = artifacts.source("ledger")
    postgres.execute("INSERT INTO ledger VALUES (3, 9.00, '2024-01-01T05:00:00Z')")
    [(_, late)] = check_source(project.catalog(), source, ["ledger"], tmp_path)
    assert not late.passed
    assert "missing in Bronze: 3" in late.message
    assert project.run("ledger", environ=environ).success
    postgres.execute("UPDATE ledger SET amount = 9.50, updated_at = '2024-01-01T09:00:00Z' "
                     "WHERE id = 3")
    assert project.run("ledger", environ=environ).success
    [(_, fine)] = check_source(project.catalog(), source, ["ledger"], tmp_path)
    assert fine.passed, fine.message


LANDING = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    write_mode: merge
    primary_key: order_id
    delete_column: cancelled
    source_config: {bucket_url: landing, file_glob: "*.csv", format: csv}
  - name: api
    source_type: rest_api
    destination_table: raw
    source_config: {client: {base_url: "http://127.0.0.1:9"}, resources: [things]}
"""


def test_verify_a_landing_folder(tmp_path: Path) -> None:
    """Files already loaded against Bronze: the last row per key across files, delete
    markers; a newer file is the lag; an API cannot be re-read."""
    import time

    project = Project(tmp_path)
    project.write(LANDING)
    project.compile()
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("order_id,Amount,cancelled\n1,10.50,false\n2,3,false\n"
                                   "3,7,false\n")
    time.sleep(0.05)
    (landing / "b.csv").write_text("order_id,Amount,cancelled\n2,4.25,false\n3,7,true\n")
    assert project.run("orders").success
    assert "Amount" in project.columns("bronze.orders")  # Arrow items keep their names
    code, found = _verify(project, {}, "--select", "orders")
    assert code == 0, found
    assert (found[0]["status"], found[0]["source_rows"], found[0]["bronze_rows"],
            found[0]["lag"]) == ("match", 2, 2, None)
    from floe.runtime.verify import reconcile  # the same as a Dagster asset check

    source = project.compile().source("orders")
    passed, message, _ = reconcile(source, project.catalog().load_table(("bronze", "orders")),
                                   "orders", tmp_path, max_lag_seconds=None)
    assert passed and message.startswith("2 rows match the source"), message

    time.sleep(0.05)
    (landing / "c.csv").write_text("order_id,Amount,cancelled\n9,1,false\n")
    table = project.catalog().load_table(("bronze", "orders"))
    table.delete(EqualTo("order_id", 2))
    code, found = _verify(project, {}, "--select", "orders")
    assert code == 1
    assert found[0]["missing_in_bronze"] == ["2"]  # c.csv is not loaded yet: lag, not missing
    passed, message, _ = reconcile(source, project.catalog().load_table(("bronze", "orders")),
                                   "orders", tmp_path, max_lag_seconds=None)
    assert not passed and "missing in Bronze: 2" in message
    assert found[0]["lag"] == "1 file(s) newer than the last load"
    with table.transaction() as tx:  # a value changed in Bronze is named with its column
        tx.overwrite(table.scan().to_arrow().set_column(
            1, "Amount", pa.array([99.5])))
    code, found = _verify(project, {}, "--select", "orders")
    assert found[0]["different"] == ["1 (Amount)"]

    code, found = _verify(project, {}, "--select", "api")
    assert (code, found[0]["status"]) == (1, "not_comparable")
    assert "cannot be re-read" in found[0]["reason"]


CDC_ON_REST = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: cdc
    source_type: postgres_cdc
    destination_table: mirror
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      tables: [ledger_rest]
      slot_name: floe_verify_rest
"""


def test_changes_and_verify_of_cdc_on_a_rest_catalog(
        tmp_path: Path, postgres: Postgres, request: Any) -> None:
    """postgres_cdc into an Iceberg REST catalog on S3: the changes of a run (an update, an
    insert, a delete) read back exactly; verify matches, then names a key Bronze lost."""
    from floe.runtime.changes import table_changes

    postgres.execute("""
        SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
            WHERE slot_name = 'floe_verify_rest';
        DROP TABLE IF EXISTS ledger_rest;
        CREATE TABLE ledger_rest (id int PRIMARY KEY, amount numeric(8,2), note text);
        INSERT INTO ledger_rest VALUES (1, 1.00, 'a'), (2, 2.50, 'b'), (3, 3.00, 'c');
    """)
    environ = {"CRM_DB_URL": postgres.url}
    project = Project(tmp_path, rest=request.getfixturevalue("rest_catalog"))
    project.write(CDC_ON_REST)
    project.drop_all_tables()
    project.compile(environ)
    try:
        assert project.run("cdc", environ=environ).success
        first = project.catalog().load_table(("mirror", "ledger_rest")).current_snapshot()
        assert first is not None
        postgres.execute("UPDATE ledger_rest SET amount = 9.99 WHERE id = 1; "
                         "INSERT INTO ledger_rest VALUES (4, 4.00, 'd'); "
                         "DELETE FROM ledger_rest WHERE id = 2")
        assert project.run("cdc", environ=environ).success
        table = project.catalog().load_table(("mirror", "ledger_rest"))
        found = table_changes(table, since=first.snapshot_id)
        assert sorted((r["id"], str(r["amount"]), r["_change_type"])
                      for r in found.to_pylist()) == [
            (1, "1.00", "delete"), (1, "9.99", "insert"), (2, "2.50", "delete"),
            (4, "4.00", "insert")]
        assert project.rest is not None
        cli_environ = {**project.rest.secrets, **environ}  # the catalog's secrets too
        code, reports = _verify(project, cli_environ)
        assert (code, reports[0]["status"], reports[0]["bronze_rows"]) == (0, "match", 3)
        table.delete(EqualTo("id", 4))
        code, reports = _verify(project, cli_environ)
        assert (code, reports[0]["missing_in_bronze"]) == (1, ["4"])
        assert postgres.password not in json.dumps(reports)
    finally:
        postgres.drop_slot("floe_verify_rest")


def test_verify_reads_delete_markers_as_the_load_does(tmp_path: Path) -> None:
    """A non-null marker deletes, zero included (a deletion time of 0 is still a time): the
    load removes such a row, and verify leaves it out of the source as well."""
    project = Project(tmp_path)
    project.write(LANDING.replace("delete_column: cancelled", "delete_column: deleted_at")
                  .replace('file_glob: "*.csv", format: csv', 'file_glob: "*.jsonl", format: '
                           'jsonl'))
    project.compile()
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"order_id": 1, "deleted_at": None}, {"order_id": 2, "deleted_at": 0},
        {"order_id": 3, "deleted_at": 1700000000}]))
    assert project.run("orders").success
    assert [r["order_id"] for r in project.read("bronze.orders", sort_by="order_id")] == [1]
    code, found = _verify(project, {}, "--select", "orders")
    assert (code, found[0]["source_rows"], found[0]["bronze_rows"]) == (0, 1, 1), found


def test_verify_leaves_marked_rows_out_of_a_postgresql_source(tmp_path: Path,
                                                              postgres: Postgres) -> None:
    """ADBC's batches get the same delete-marker filter as the SQLAlchemy path."""
    postgres.execute("""
        DROP TABLE IF EXISTS members;
        CREATE TABLE members (id int PRIMARY KEY, name text, closed boolean);
        INSERT INTO members VALUES (1, 'a', false), (2, 'b', true), (3, 'c', NULL);
    """)
    environ = {"CRM_DB_URL": postgres.url}
    project = Project(tmp_path)
    project.write(PROJECT.replace("tables: [accounts]", "tables: [members]", 1)
                  .replace("cursor_field: updated_at", "delete_column: closed", 1))
    project.compile(environ)
    assert project.run("crm", environ=environ).success
    assert [r["id"] for r in project.read("bronze.members")] == [1, 3]
    code, found = _verify(project, environ, "--select", "crm")
    assert (code, found[0]["source_rows"], found[0]["bronze_rows"]) == (0, 2, 2), found
