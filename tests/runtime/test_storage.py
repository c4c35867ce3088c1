"""Where data comes from and where the catalog lives, beyond the defaults: a filesystem source
on S3 (SeaweedFS) and the embedded-style SQL catalog on PostgreSQL instead of SQLite."""

from __future__ import annotations

from pathlib import Path

import boto3
import sqlalchemy

from floe.runtime.iceberg.catalog import open_catalog
from tests.runtime.harness import Project
from tests.servers import Postgres, RestCatalog

S3_SOURCE = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: landing
    source_type: filesystem
    destination_table: bronze.events
    source_config:
      bucket_url: s3://landing/events/
      file_glob: "*.jsonl"
      format: jsonl
      credentials:
        aws_access_key_id: "{{{{ secret('S3_ACCESS_KEY_ID') }}}}"
        aws_secret_access_key: "{{{{ secret('S3_SECRET_ACCESS_KEY') }}}}"
        endpoint_url: {endpoint}
"""


def test_filesystem_source_on_s3(tmp_path: Path, rest_catalog: RestCatalog) -> None:
    s3 = boto3.client("s3", endpoint_url=rest_catalog.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id=rest_catalog.access_key,
                      aws_secret_access_key=rest_catalog.secret_key)
    if "landing" not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="events/a.jsonl",
                  Body=b'{"id": 1, "kind": "view"}\n{"id": 2, "kind": "buy"}\n')
    project = Project(tmp_path)
    project.write(S3_SOURCE.format(endpoint=rest_catalog.s3_endpoint))
    result = project.run("landing", environ=rest_catalog.secrets)
    assert result.success, result.errors
    assert [(r["id"], r["kind"]) for r in project.read("bronze.events")] == [
        (1, "view"), (2, "buy")]
    s3.put_object(Bucket="landing", Key="events/b.jsonl", Body=b'{"id": 3, "kind": "view"}\n')
    again = project.run("landing", environ=rest_catalog.secrets)
    assert again.rows_loaded == 1, "only the new object is read"


PG_CATALOG_PLATFORM = """\
apiVersion: floe.dev/v1
kind: Platform
environments:
  dev:
    catalog:
      type: sql
      uri: "{{ secret('CATALOG_DB_URL') }}"
      warehouse: .floe/warehouse
"""


def test_sql_catalog_on_postgresql(tmp_path: Path, postgres: Postgres) -> None:
    postgres.execute("DROP DATABASE IF EXISTS iceberg_catalog")
    postgres.execute("CREATE DATABASE iceberg_catalog")
    url = Postgres(port=postgres.port, database="iceberg_catalog").url
    (tmp_path / "platform.yaml").write_text(PG_CATALOG_PLATFORM)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("id,amount\n1,2.5\n2,4.0\n")
    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: shop, version: 1.0.0}
        platform: platform.yaml
        sources:
          - name: orders
            source_type: filesystem
            destination_table: bronze.orders
            source_config: {bucket_url: data, format: csv}
    """)
    env = {"CATALOG_DB_URL": url}
    result = project.run("orders", environ=env)
    assert result.success, result.errors
    assert postgres.password not in "".join(result.errors)
    with sqlalchemy.create_engine(url).connect() as connection:
        tables = connection.exec_driver_sql(
            "SELECT table_namespace, table_name FROM iceberg_tables").fetchall()
    assert [tuple(t) for t in tables] == [("bronze", "orders")]
    catalog = open_catalog(project.compile(env).environment, tmp_path, env)
    assert catalog.load_table(("bronze", "orders")).scan().to_arrow()["id"].to_pylist() == [
        1, 2]


def test_an_s3_landing_folder_in_a_bucket_that_does_not_exist(tmp_path: Path,
                                                             rest_catalog: RestCatalog) -> None:
    """A missing bucket is an error naming the URL, never an empty 'ok' load (#24); an empty
    prefix of a bucket that exists is a first load that warns."""
    project = Project(tmp_path)
    project.write(S3_SOURCE.format(endpoint=rest_catalog.s3_endpoint).replace(
        "s3://landing/events/", "s3://no-such-bucket-fh/events/"))
    missing = project.run("landing", environ=rest_catalog.secrets)
    assert not missing.success
    assert missing.errors[0].startswith(
        "cannot list landing folder s3://no-such-bucket-fh/events/: "), missing.errors
    assert rest_catalog.secret_key not in missing.errors[0]
    s3 = boto3.client("s3", endpoint_url=rest_catalog.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id=rest_catalog.access_key,
                      aws_secret_access_key=rest_catalog.secret_key)
    if "landing" not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket="landing")
    project.write(S3_SOURCE.format(endpoint=rest_catalog.s3_endpoint).replace(
        "s3://landing/events/", "s3://landing/nothing-here-yet/"))
    empty = project.run("landing", environ=rest_catalog.secrets)
    assert empty.success and empty.warnings == (
        "no file matches *.jsonl in s3://landing/nothing-here-yet/ — it is empty",)
