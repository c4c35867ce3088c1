"""Every example of the gallery, run the way its README says, with its results asserted.

Each test copies the example to a temporary folder and runs the README's ```bash blocks there
(see docs.py), then reads the Iceberg tables back with pyiceberg.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from floe.runtime.dagster import build_definitions
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.project import load_project
from tests.examples.docs import REPO, commands, copy_example, run_readme
from tests.servers import MariaDB, Postgres, RestCatalog, free_port

GALLERY = ["quickstart", "rest_api", "postgres_merge", "postgres_cdc", "schema_contracts",
           "incremental_files", "quality_checks", "notifications", "multi_env", "nycflights13",
           "plan", "changes_and_verify", "depends_on", "retries_and_timeouts",
           "failure_recovery", "slack_teams_email", "python_source", "mysql_cdc", "history",
           "transforms"]


def catalog_of(folder: Path, environ: dict[str, str] | None = None) -> Catalog:
    project = load_project(folder / "target" / "compiled_artifacts.json")
    return open_catalog(project.artifacts.environment, project.root, environ)


def rows(catalog: Catalog, table: str, sort_by: str) -> list[dict[str, Any]]:
    data = catalog.load_table(tuple(table.split("."))).scan().to_arrow()
    return sorted(data.to_pylist(), key=lambda row: row[sort_by])


def database(pg: Postgres, name: str) -> str:
    pg.execute(f"DROP DATABASE IF EXISTS {name}")
    pg.execute(f"CREATE DATABASE {name}")
    return Postgres(port=pg.port, database=name).url


def run_cdc_readme(folder: Path, postgres: Postgres, env: dict[str, str], slot: str) -> str:
    """A CDC example's README, then its replication slot dropped."""
    try:
        return run_readme(folder, env=env)
    finally:
        postgres.drop_slot(slot)


def test_every_example_has_a_readme_with_commands() -> None:
    found = sorted(p.name for p in (REPO / "examples").iterdir() if p.is_dir())
    assert found == sorted(GALLERY)
    for name in GALLERY:
        readme = REPO / "examples" / name / "README.md"
        assert readme.exists(), name
        assert any(c.startswith("floe ") for c in commands(readme)), name
        assert "## What you should see" in readme.read_text(), name


def test_quickstart(tmp_path: Path) -> None:
    folder = copy_example("quickstart", tmp_path)
    output = run_readme(folder)
    assert "bronze.customers" in output and "first 3 rows" in output
    catalog = catalog_of(folder)
    assert [(r["id"], r["status"]) for r in rows(catalog, "bronze.orders", "id")] == [
        (1, "shipped"), (2, "shipped"), (3, "shipped"), (4, "pending")]
    assert len(rows(catalog, "bronze.products", "sku")) == 3


def test_rest_api(tmp_path: Path) -> None:
    folder = copy_example("rest_api", tmp_path)
    port = str(free_port())
    output = run_readme(folder, env={"SHOP_API_URL": f"http://127.0.0.1:{port}"},
                        replace={"8765": port})
    assert "demo-token-123" not in (folder / "target" / "compiled_artifacts.json").read_text()
    assert "demo-token-123" not in output
    orders = rows(catalog_of(folder), "bronze.orders", "id")
    assert [(o["id"], o["status"]) for o in orders] == [
        (1, "shipped"), (2, "shipped"), (3, "pending"), (4, "pending")]


def test_postgres_merge(tmp_path: Path, postgres: Postgres) -> None:
    folder = copy_example("postgres_merge", tmp_path)
    url = database(postgres, "pg_merge_example")
    output = run_readme(folder, env={"SHOP_DB_URL": url})
    assert postgres.password not in output
    catalog = catalog_of(folder, {"SHOP_DB_URL": url})
    customers = rows(catalog, "bronze.customers", "id")
    assert [(c["name"], c["country"]) for c in customers] == [
        ("Alice", "DE"), ("Bob", "ES"), ("Carol", "US"), ("Dan", "NL")]
    lines = sorted((r["order_id"], r["line"], r["qty"])
                   for r in rows(catalog, "bronze.order_lines", "order_id"))
    assert lines == [(1, 1, 3), (1, 2, 1), (2, 1, 4), (3, 1, 2)]


def test_mysql_cdc(tmp_path: Path, mariadb: MariaDB) -> None:
    folder = copy_example("mysql_cdc", tmp_path)
    mariadb.execute("DROP DATABASE IF EXISTS my_cdc_example; CREATE DATABASE my_cdc_example")
    url = MariaDB(port=mariadb.port, socket=mariadb.socket, database="my_cdc_example").url
    output = run_readme(folder, env={"SHOP_MYSQL_URL": url})
    assert mariadb.password not in output
    assert "shop: binlog at binlog." in output and "lag" in output
    assert output.count("match") >= 2 and "mismatch" not in output
    catalog = catalog_of(folder, {"SHOP_MYSQL_URL": url})
    customers = rows(catalog, "bronze.customers", "id")
    assert [(c["name"], c["country_code"]) for c in customers] == [
        ("Alice", "PT"), ("Bob", "ES"), ("Dan", "NL")]
    assert "country" not in customers[0]
    products = rows(catalog, "bronze.products", "sku")
    assert [(p["sku"], p["stock"]) for p in products] == [("HAT", 3), ("MUG", 10), ("TEE", 0)]
    assert all(p["_floe_binlog"] > 0 for p in products)


def test_history(tmp_path: Path, postgres: Postgres) -> None:
    folder = copy_example("history", tmp_path)
    url = database(postgres, "history_example")
    output = run_cdc_readme(folder, postgres, {"SHOP_DB_URL": url}, "floe_history_crm")
    assert postgres.password not in output
    assert "[('Alice', 'Munich'), ('Carol', 'Oslo')]" in output
    assert output.count("rows valid at") == 3
    versions = rows(catalog_of(folder, {"SHOP_DB_URL": url}), "bronze.customers",
                    "_floe_valid_from")
    by_name = {name: [(v["city"], v["_floe_is_current"]) for v in versions if v["name"] == name]
               for name in ("Alice", "Bob", "Carol")}
    assert by_name == {"Alice": [("Berlin", False), ("Munich", True)],
                       "Bob": [("Paris", False), ("Lyon", True)],
                       "Carol": [("Oslo", True)]}
    bob = [v for v in versions if v["name"] == "Bob"]
    assert bob[0]["_floe_valid_to"] < bob[1]["_floe_valid_from"]  # the gap while he was gone


def test_transforms(tmp_path: Path, postgres: Postgres) -> None:
    import hashlib
    import hmac

    folder = copy_example("transforms", tmp_path)
    url = database(postgres, "transforms_example")
    salt = "example-salt-0123456789"
    env = {"SHOP_DB_URL": url, "PII_SALT": salt}
    output = run_cdc_readme(folder, postgres, env, "floe_crm_customers")
    assert postgres.password not in output and salt not in output
    assert salt not in (folder / "target" / "compiled_artifacts.json").read_text()
    assert "match" in output and "mismatch" not in output
    customers = rows(catalog_of(folder, env), "bronze.customers", "id")
    assert [(c["id"], c["full_name"], c["region"], c["iban"], c["email_verified"])
            for c in customers] == [(2, "Bob Stone", "EU", "****4300", False),
                                    (4, "Dana Ito", "EU", None, False)]
    assert customers[0]["email"] == hmac.new(salt.encode(), b"bob@example.com",
                                             hashlib.sha256).hexdigest()
    assert "password_hash" not in customers[0] and "e-mail verified" not in customers[0]


def test_postgres_cdc(tmp_path: Path, postgres: Postgres) -> None:
    folder = copy_example("postgres_cdc", tmp_path)
    url = database(postgres, "pg_cdc_example")
    output = run_cdc_readme(folder, postgres, {"SHOP_DB_URL": url}, "floe_pg_cdc_shop")
    assert postgres.password not in output
    assert "replication slot floe_pg_cdc_shop: lag" in output
    catalog = catalog_of(folder, {"SHOP_DB_URL": url})
    customers = rows(catalog, "bronze.customers", "id")
    assert [(c["name"], c["country"]) for c in customers] == [
        ("Alice", "DE"), ("Bob", "ES"), ("Dan", "NL")]
    orders = rows(catalog, "bronze.orders", "id")
    assert [(o["id"], o["status"]) for o in orders] == [
        (10, "paid"), (11, "shipped"), (13, "pending")]
    assert all(o["_floe_lsn"] > 0 for o in orders)


def test_changes_and_verify(tmp_path: Path) -> None:
    folder = copy_example("changes_and_verify", tmp_path)
    output = run_readme(folder)
    reads = [[json.loads(line) for line in block.splitlines() if line.startswith("{")]
             for block in output.split("ledger.db: ")[1:3]]
    assert sorted((r["id"], r["_change_type"]) for r in reads[0]) == [
        (1, "insert"), (2, "insert"), (3, "insert")]
    assert sorted((r["id"], r["balance"], r["_change_type"]) for r in reads[1]) == [
        (1, 100.0, "delete"), (1, 120.0, "insert"), (2, 30.0, "insert"), (2, 50.0, "delete"),
        (3, 0.0, "delete"), (4, 10.0, "insert")]
    assert "0 change(s)" in output
    assert "│ accounts │ bronze.accounts │ match" in output
    assert "different: 4 (owner)" in output


def test_python_source(tmp_path: Path) -> None:
    folder = copy_example("python_source", tmp_path)
    port = str(free_port())
    output = run_readme(folder, env={"SHOP_API_URL": f"http://127.0.0.1:{port}"},
                        replace={"8765": port})
    assert "demo-key-123" not in (folder / "target" / "compiled_artifacts.json").read_text()
    assert "demo-key-123" not in output
    catalog = catalog_of(folder)
    events = [r["offset"] for r in rows(catalog, "bronze.events", "offset")]
    assert events == list(range(600)), "each event exactly once, kill -9 or not"
    assert [(c["id"], c["tier"]) for c in rows(catalog, "bronze.customers", "id")] == [
        (1, "gold"), (2, "gold"), (3, "silver"), (4, "bronze")]
    lines = rows(catalog, "bronze.order_lines", "order_id")
    assert sorted((line["order_id"], line["sku"]) for line in lines) == [
        (100, "cup"), (100, "tea"), (101, "tea")]  # merged: not once per run


def test_depends_on(tmp_path: Path) -> None:
    folder = copy_example("depends_on", tmp_path)
    output = run_readme(folder)
    assert "orders: skipped: depends on customers, which failed" in output
    assert ("customers: bad row at customers.csv:3: expected 2 columns, got 3; nothing was "
            "committed (set `bad_rows: skip`") in output
    catalog = catalog_of(folder)
    assert [r["name"] for r in rows(catalog, "bronze.customers", "id")] == ["Ada", "Bob"]
    assert [r["id"] for r in rows(catalog, "bronze.orders", "id")] == [10, 11]
    assert len(rows(catalog, "bronze.payments", "id")) == 1


def test_retries_and_timeouts(tmp_path: Path) -> None:
    folder = copy_example("retries_and_timeouts", tmp_path)
    port = str(free_port())
    try:
        output = run_readme(folder, env={"API_URL": f"http://127.0.0.1:{port}"},
                            replace={"8766": port})
    finally:
        subprocess.run([sys.executable, "-m", "api_server", "stop"], cwd=folder, check=False)
    retries = [line for line in output.splitlines() if "ingestion.retry" in line]
    assert len(retries) == 2 and all("503 Server Error" in line for line in retries)
    assert "│ rates  │ bronze.rates  │ 2    │" in output
    assert "timed out after 2 s (timeout_seconds) while extracting; nothing was committed" \
        in output
    assert ("bronze", "report") not in catalog_of(folder).list_tables("bronze")


def test_failure_recovery(tmp_path: Path) -> None:
    folder = copy_example("failure_recovery", tmp_path)
    output = run_readme(folder)
    assert "killed" in output
    assert "│ bronze.events │ 1,000,000 │" in output
    table = catalog_of(folder).load_table(("bronze", "events"))
    ids = table.scan(selected_fields=("id",)).to_arrow()["id"].to_pylist()
    assert sorted(ids) == list(range(1, 1_000_001))  # every event, none twice


def test_slack_teams_email(tmp_path: Path) -> None:
    folder = copy_example("slack_teams_email", tmp_path)
    http, smtp = str(free_port()), str(free_port())
    try:
        run_readme(folder, replace={"8767": http, "8025": smtp})
    finally:
        subprocess.run([sys.executable, "receivers.py", "stop"], cwd=folder, check=False)
    received = [json.loads(line) for line in
                (folder / "received.jsonl").read_text().splitlines()]
    slack, teams = sorted(received, key=lambda r: r["path"])
    assert slack["body"]["text"].startswith(
        "floe alerts_demo: ingestion__orders__orders failed — bad row at orders_2.jsonl:1: "
        "not JSON: Expecting ',' delimiter at column 24")
    title, text = teams["body"]["attachments"][0]["content"]["body"]
    assert title["text"] == "[floe alerts_demo] failure: ingestion__orders__orders"
    assert text["text"] == slack["body"]["text"]
    inbox = (folder / "inbox.txt").read_text()
    assert inbox.startswith("Subject: [alerts_demo] ingestion__orders__orders: failure\n"
                            "From: floe@shop.example\nTo: data@shop.example\n\n"
                            "ingestion__orders__orders failure in alerts_demo.\n"
                            "bad row at orders_2.jsonl:1: not JSON: Expecting ',' "
                            "delimiter at column 24")


def test_schema_contracts(tmp_path: Path) -> None:
    folder = copy_example("schema_contracts", tmp_path)
    output = run_readme(folder)
    assert "schema contract 'freeze' rejects new column(s) coupon" in output
    catalog = catalog_of(folder)
    evolve = rows(catalog, "bronze.orders_evolve", "id")
    assert [(r["id"], r["coupon"]) for r in evolve] == [
        (1, None), (2, None), (3, "SPRING"), (4, None)]
    discard = rows(catalog, "bronze.orders_discard", "id")
    assert [r["id"] for r in discard] == [1, 2, 3, 4] and "coupon" not in discard[0]
    assert [r["id"] for r in rows(catalog, "bronze.orders_freeze", "id")] == [1, 2]


def test_incremental_files(tmp_path: Path) -> None:
    folder = copy_example("incremental_files", tmp_path)
    output = run_readme(folder)
    assert [r["event_id"] for r in rows(catalog_of(folder), "bronze.events", "event_id")] == [
        1, 2, 3, 4, 5]
    assert output.count("unique__event_id") == 3 and "FAIL" not in output
    # the Dagster side: the sensor sees the files as already loaded... then a new one
    defs = build_definitions(folder / "target" / "compiled_artifacts.json")
    sensor = defs.resolve_sensor_def("ingest__events__new_files")
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
        assert isinstance(sensor(dg.build_sensor_context(instance=instance,
                                                         cursor=first.cursor)), dg.SkipReason)


def test_quality_checks(tmp_path: Path) -> None:
    folder = copy_example("quality_checks", tmp_path)
    output = run_readme(folder)
    assert output.count(" pass ") == 4
    assert "1 rows with method outside ['card', 'paypal', 'bank_transfer']: crypto" in output
    assert "1 check(s) failed (severity error)" in output
    assert len(rows(catalog_of(folder), "bronze.payments", "payment_id")) == 6


def test_notifications(tmp_path: Path) -> None:
    folder = copy_example("notifications", tmp_path)
    port = str(free_port())
    output = run_readme(folder, replace={"8766": port})
    [message] = [json.loads(line) for line in
                 (folder / "received.jsonl").read_text().splitlines()]
    assert message["status"] == "failure"
    assert message["text"].startswith(
        "floe alerts_demo: ingestion__orders__orders failure - bad row at orders_2.jsonl:1: "
        "not JSON: Expecting ',' delimiter at column 24")
    assert "hooks/T000" not in output  # the webhook URL is a secret
    assert "hooks/T000" not in (folder / "target" / "compiled_artifacts.json").read_text()


def test_multi_env(tmp_path: Path, rest_catalog: RestCatalog) -> None:
    folder = copy_example("multi_env", tmp_path)
    env = {"FLOE_REST_URI": rest_catalog.uri, "FLOE_S3_ENDPOINT": rest_catalog.s3_endpoint,
           "FLOE_WAREHOUSE": rest_catalog.warehouse, **rest_catalog.secrets}
    output = run_readme(folder, env=env)
    assert "sales.daily" in output
    prod = catalog_of(folder, env)
    assert type(prod).__name__ == "RestCatalog"
    assert [r["id"] for r in rows(prod, "sales.daily", "id")] == [1, 2, 3]
    embedded = SqlCatalog("floe", uri=f"sqlite:///{folder / '.floe' / 'catalog.db'}",
                          warehouse=(folder / ".floe" / "warehouse").as_uri())
    assert embedded.load_table(("sales", "daily")).scan().to_arrow().num_rows == 3


def test_nycflights13(tmp_path: Path, postgres: Postgres) -> None:
    folder = copy_example("nycflights13", tmp_path)
    url = database(postgres, "flights_example")
    output = run_readme(folder, env={"FLIGHTS_DB_URL": url})
    assert output.count(" pass ") == 9 and "FAIL" not in output
    catalog = catalog_of(folder, {"FLIGHTS_DB_URL": url})
    counts = {t: catalog.load_table(("nycflights13", t)).scan().count()
              for t in ("flights", "airlines", "airports", "planes", "weather")}
    assert counts == {"flights": 336_776, "airlines": 16, "airports": 1_458,
                      "planes": 3_322, "weather": 26_115}


def test_plan(tmp_path: Path) -> None:
    folder = copy_example("plan", tmp_path)
    output = run_readme(folder)
    expected = (REPO / "examples" / "plan" / "README.md").read_text().split("```text\n")[1]
    expected = expected.split("```")[0]
    assert expected in output, output
