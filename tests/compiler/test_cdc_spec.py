"""postgres_cdc and delete markers in floe.yaml: defaults, and every mistake located."""

from __future__ import annotations

from pathlib import Path

from tests.compiler.helpers import compile_text, errors_of, hints_of

CDC = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: my-shop, version: 1.0.0}
sources:
  - name: shop
    source_type: postgres_cdc
    destination_table: bronze
    source_config:
      credentials: "{{ secret('SHOP_PG_URL') }}"
      tables: [customers, orders]
"""


def test_defaults(tmp_path: Path) -> None:
    [source] = compile_text(tmp_path, CDC, environ={"SHOP_PG_URL": "x"}).sources
    assert source.write_mode == "merge" and source.deletes == "hard"
    assert source.resources == ("customers", "orders")
    assert source.source_config["slot_name"] == "floe_my_shop_shop"
    assert source.source_config["publication_name"] == "floe_my_shop_shop"
    assert source.source_config["schema"] == "public"
    assert source.source_config["credentials"] == "${secret:SHOP_PG_URL}"


def test_another_write_mode_is_an_error_with_a_hint(tmp_path: Path) -> None:
    text = CDC.replace("    destination_table: bronze\n",
                       "    destination_table: bronze\n    write_mode: append\n")
    assert errors_of(tmp_path, text) == [
        "8:17: sources[0].write_mode: postgres_cdc always merges; write_mode append cannot "
        "apply"]
    assert "upserted by primary key" in hints_of(tmp_path, text)[0]


def test_tables_are_required_and_slot_names_checked(tmp_path: Path) -> None:
    text = CDC.replace("      tables: [customers, orders]\n",
                       "      slot_name: Bad-Slot\n")
    assert errors_of(tmp_path, text) == [
        "9:7: sources[0].source_config: postgres_cdc source_config needs 'tables'",
        "10:18: sources[0].source_config.slot_name: 'Bad-Slot' is not a valid PostgreSQL "
        "slot name"]


MERGE = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: api
    source_type: filesystem
    destination_table: bronze.items
    write_mode: append
    delete_column: is_deleted
    source_config: {bucket_url: data, format: jsonl}
"""


def test_delete_column_needs_merge(tmp_path: Path) -> None:
    assert errors_of(tmp_path, MERGE) == [
        "9:20: sources[0].delete_column: delete_column only applies to write_mode merge, but "
        "this source uses append"]


def test_soft_deletes_need_a_marker(tmp_path: Path) -> None:
    text = MERGE.replace("    delete_column: is_deleted\n", "    deletes: soft\n").replace(
        "write_mode: append", "write_mode: merge\n    primary_key: id")
    assert errors_of(tmp_path, text) == [
        "10:14: sources[0].deletes: deletes: soft needs a delete_column on this source type"]


def test_plan_flags_replication_changes(tmp_path: Path) -> None:
    from floe.compiler.plan import plan

    environ = {"SHOP_PG_URL": "x"}
    old = compile_text(tmp_path, CDC, environ=environ)
    new = compile_text(tmp_path, CDC.replace("[customers, orders]", "[customers, orders, items]")
                       .replace("      tables:", "      slot_name: floe_shop_v2\n      tables:"),
                       environ=environ)
    changes = {c.field: c for c in plan(old, new)}
    assert changes["source_config.tables"].after == ["customers", "orders", "items"]
    assert "tables added are copied on the next run" in str(changes["source_config.tables"].risk)
    assert "drop the old slot" in str(changes["source_config.slot_name"].risk)
    assert changes["source_config.publication_name"].after == "floe_shop_v2"


MYSQL_CDC = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: my-shop, version: 1.0.0}
sources:
  - name: shop
    source_type: mysql_cdc
    destination_table: bronze
    source_config:
      credentials: "{{ secret('SHOP_MYSQL_URL') }}"
      tables: [customers, products]
"""


def test_mysql_cdc_defaults_its_server_id_from_product_and_source(tmp_path: Path) -> None:
    [source] = compile_text(tmp_path, MYSQL_CDC, environ={"SHOP_MYSQL_URL": "x"}).sources
    assert source.write_mode == "merge" and source.deletes == "hard"
    assert source.resources == ("customers", "products")
    # documented: 1000000 + crc32("my_shop__shop") mod 3,000,000,000
    import zlib
    assert source.source_config["server_id"] == 1_000_000 + zlib.crc32(
        b"my_shop__shop") % 3_000_000_000
    assert source.source_config["credentials"] == "${secret:SHOP_MYSQL_URL}"
    other = MYSQL_CDC.replace("name: shop", "name: shop2")
    [second] = compile_text(tmp_path, other, environ={"SHOP_MYSQL_URL": "x"}).sources
    assert second.source_config["server_id"] != source.source_config["server_id"]


def test_mysql_cdc_mistakes_are_located(tmp_path: Path) -> None:
    text = MYSQL_CDC.replace("      tables: [customers, products]\n",
                             "      server_id: 0\n      slot_name: x\n").replace(
        "    destination_table: bronze\n",
        "    destination_table: bronze\n    write_mode: append\n")
    assert errors_of(tmp_path, text) == [
        "8:17: sources[0].write_mode: mysql_cdc always merges; write_mode append cannot apply",
        "10:7: sources[0].source_config: mysql_cdc source_config needs 'tables'",
        "11:18: sources[0].source_config.server_id: server_id must be an integer from 1 to "
        "4294967295",
        "12:7: sources[0].source_config.slot_name: unknown mysql_cdc source_config key "
        "'slot_name'"]


def test_plan_flags_binlog_changes(tmp_path: Path) -> None:
    from floe.compiler.plan import plan

    environ = {"SHOP_MYSQL_URL": "x"}
    old = compile_text(tmp_path, MYSQL_CDC, environ=environ)
    new = compile_text(tmp_path, MYSQL_CDC.replace("[customers, products]", "[customers]")
                       .replace("      tables:", "      server_id: 77\n      tables:"),
                       environ=environ)
    changes = {c.field: c for c in plan(old, new)}
    assert changes["source_config.tables"].after == ["customers"]
    assert "tables removed are no longer replicated" in str(
        changes["source_config.tables"].risk)
    assert changes["source_config.server_id"].after == 77
    assert "another replica id" in str(changes["source_config.server_id"].risk)
