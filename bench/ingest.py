"""floe run's load path against bare pyiceberg and bare dlt, on a real PostgreSQL 15 server.

Three measurements (issue #3), each printed as a ratio against baselines run in this process:

1. append: N rows Postgres -> a new Iceberg table.
   - baselines: the same query read into Arrow with psycopg2 (and with ADBC, the #13 goal
     <= 1.3x), then one pyiceberg ``table.append``;
   - dlt: dlt's own ``filesystem`` destination with ``table_format="iceberg"``.
   Targets: floe <= 1.3x the baseline, and faster than dlt.
2. upsert: U changed rows (half updates, half new keys) merged into an N-row table.
   - baseline: the changes read into Arrow, then pyiceberg ``Table.upsert`` alone;
   - dlt: the same dlt destination with ``write_disposition=merge, strategy=upsert``.
   Targets: floe <= 1.3x the baseline, >= 10x faster than dlt, one catalog commit.
3. memory: peak RSS of a child process that loads R rows with floe (target < 1.0 GB, #13).

    .venv/bin/python bench/ingest.py [--rows 1000000] [--upsert-rows 100000]
                                     [--rss-rows 10000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dlt
import psycopg2
import pyarrow as pa
from bench.child import run_measured
from dlt.sources.sql_database import sql_database
from pyiceberg.catalog import Catalog
from tests.servers import Postgres, postgres_server

from floe.compiler import CompileRequest, compile_project
from floe.logs import configure_logging
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.ingestion.result import IngestionResult
from floe.runtime.ingestion.runner import run_source

COLUMNS = """g AS id, (g % 5000)::int AS customer_id, (g % 997) * 1.25::float8 AS amount,
    (ARRAY['new','paid','shipped','cancelled'])[g % 4 + 1] AS status,
    timestamptz '2024-01-01' + g * interval '1 second' AS updated_at"""

FLOE_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: bench, version: 1.0.0}}
sources:
  - name: events
    source_type: sql_database
    source_config: {{credentials: "{{{{ secret('PG_URL') }}}}", tables: [events]}}
    destination_table: bench.{events_table}
  - name: changes
    source_type: sql_database
    source_config: {{credentials: "{{{{ secret('PG_URL') }}}}", tables: [changes]}}
    destination_table: bench.{upsert_table}
    write_mode: merge
    primary_key: id
  - name: big
    source_type: sql_database
    source_config: {{credentials: "{{{{ secret('PG_URL') }}}}", tables: [big]}}
    destination_table: bench.big
"""


def seed(pg: Postgres, rows: int, changes: int, rss_rows: int) -> None:
    first_change = rows - changes // 2 + 1
    pg.execute(f"""
        CREATE TABLE events AS SELECT {COLUMNS} FROM generate_series(1, {rows}) g;
        ALTER TABLE events ADD PRIMARY KEY (id);
        CREATE TABLE changes AS SELECT {COLUMNS.replace("1.25", "1.5")}
            FROM generate_series({first_change}, {first_change + changes - 1}) g;
        ALTER TABLE changes ADD PRIMARY KEY (id);
        CREATE TABLE big AS SELECT {COLUMNS} FROM generate_series(1, {rss_rows}) g;
    """)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def query_to_arrow(pg: Postgres, table: str) -> pa.Table:
    """The hand-written way: one query, rows into Arrow columns."""
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user,
                            password=pg.password, dbname=pg.database)
    with conn, conn.cursor(name="bench") as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        rows = cursor.fetchall()
        names = [column.name for column in cursor.description]
    conn.close()
    columns = [list(column) for column in zip(*rows, strict=True)]
    return pa.table(dict(zip(names, columns, strict=True)))


class Floe:
    """A compiled floe project on the embedded catalog, in its own folder."""

    def __init__(self, root: Path, pg: Postgres, events_table: str, upsert_table: str) -> None:
        root.mkdir(parents=True)
        (root / "floe.yaml").write_text(FLOE_YAML.format(events_table=events_table,
                                                         upsert_table=upsert_table))
        self.root, self.environ = root, {"PG_URL": pg.url}
        self.artifacts = compile_project(CompileRequest(
            floe_file=root / "floe.yaml", output_dir=root / "target", environ=self.environ))
        self.catalog = open_catalog(self.artifacts.environment, root, self.environ)

    def run(self, source: str) -> IngestionResult:
        result = run_source(self.artifacts.source(source), self.catalog, self.root,
                            environ=self.environ)
        if not result.success:
            raise RuntimeError(result.errors)
        return result


def bare_dlt(root: Path, pg: Postgres, table: str, dataset_table: str,
             disposition: Any = "append") -> None:
    source = sql_database(credentials=pg.url, table_names=[table], backend="pyarrow",
                          chunk_size=50_000)
    source.resources[table].apply_hints(table_name=dataset_table, primary_key="id",
                                        write_disposition=disposition)
    pipeline = dlt.pipeline(pipeline_name=f"bench_{dataset_table}",
                            pipelines_dir=str(root / "pipelines"), dataset_name="bench",
                            destination=dlt.destinations.filesystem(
                                bucket_url=(root / "lake").as_uri()))
    pipeline.run(source, table_format="iceberg", loader_file_format="parquet")


def baseline_catalog(root: Path) -> Catalog:
    from pyiceberg.catalog.sql import SqlCatalog

    (root / "warehouse").mkdir(parents=True)
    catalog = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db",
                         warehouse=(root / "warehouse").as_uri())
    catalog.create_namespace("bench")
    return catalog


def bench_append(pg: Postgres, root: Path, rows: int, repeat: int) -> None:
    """Best of ``repeat`` for each contender, each time into a new table."""
    catalog = baseline_catalog(root / "baseline")
    floe = Floe(root / "floe", pg, "events", "unused")
    base_s = adbc_s = floe_s = dlt_s = float("inf")
    for attempt in range(repeat):
        def baseline(name: str = f"events_{attempt}") -> None:
            data = query_to_arrow(pg, "events")
            catalog.create_table(("bench", name), schema=data.schema).append(data)

        def adbc_baseline(name: str = f"adbc_{attempt}") -> None:
            import adbc_driver_postgresql.dbapi as adbc

            with adbc.connect(pg.url) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT * FROM events")
                data = cursor.fetch_arrow_table()
            catalog.create_table(("bench", name), schema=data.schema).append(data)

        base_s = min(base_s, timed(baseline)[0])
        adbc_s = min(adbc_s, timed(adbc_baseline)[0])
        if attempt:
            floe.catalog.drop_table(("bench", "events"))  # its cursor state goes with it
        seconds, result = timed(lambda: floe.run("events"))
        floe_s = min(floe_s, seconds)
        assert result.rows_loaded == rows, result
        dlt_s = min(dlt_s, timed(partial(bare_dlt, root / f"dlt_{attempt}", pg, "events",
                                         "events"))[0])
    print(f"\n1. append {rows:,} rows Postgres -> Iceberg (best of {repeat})")
    print(f"   pyiceberg baseline (psycopg2 -> arrow -> append) {base_s:7.2f} s")
    print(f"   ADBC fetch -> one pyiceberg append               {adbc_s:7.2f} s")
    print(f"   floe run_source (ADBC, the PostgreSQL default)   {floe_s:7.2f} s"
          f"   {floe_s / base_s:5.2f}x psycopg2 baseline, {floe_s / adbc_s:5.2f}x ADBC "
          "baseline (target <= 1.3x)")
    print(f"   dlt filesystem destination, table_format=iceberg {dlt_s:7.2f} s"
          f"   floe is {dlt_s / floe_s:5.2f}x faster (target > 1x)")


def bench_upsert(pg: Postgres, root: Path, rows: int, changes: int) -> None:
    catalog = baseline_catalog(root / "baseline")
    table = catalog.create_table(("bench", "upsert"), schema=query_to_arrow(pg, "events").schema)
    table.append(query_to_arrow(pg, "events"))

    def baseline() -> Any:
        return table.upsert(query_to_arrow(pg, "changes"), join_cols=["id"])

    base_s, upserted = timed(baseline)
    floe = Floe(root / "floe", pg, "upsert", "upsert")
    floe.run("events")  # the 1M-row table the changes go into (not timed)
    floe_table = floe.catalog.load_table(("bench", "upsert"))
    metadata_before = len(floe_table.metadata.metadata_log)
    snapshot_before = floe_table.metadata.current_snapshot_id
    floe_s, _ = timed(lambda: floe.run("changes"))
    floe_table = floe.catalog.load_table(("bench", "upsert"))
    commits = len(floe_table.metadata.metadata_log) - metadata_before
    snapshots = [s for s in floe_table.snapshots() if s.snapshot_id != snapshot_before
                 and s.timestamp_ms >= floe_table.snapshot_by_id(snapshot_before).timestamp_ms]
    bare_dlt(root / "dlt", pg, "events", "upsert")
    dlt_s, _ = timed(lambda: bare_dlt(root / "dlt", pg, "changes", "upsert",
                                      {"disposition": "merge", "strategy": "upsert"}))
    expected = rows + changes // 2 + changes % 2
    floe_rows = floe_table.scan().count()
    base_rows = table.refresh().scan().count()
    assert floe_rows == base_rows == expected, (floe_rows, base_rows, expected)
    print(f"\n2. upsert {changes:,} rows ({upserted.rows_updated:,} updates, "
          f"{upserted.rows_inserted:,} inserts) into a {rows:,}-row table")
    print(f"   pyiceberg Table.upsert (incl. reading the changes) {base_s:7.2f} s")
    print(f"   floe run_source, merge/upsert                      {floe_s:7.2f} s"
          f"   {floe_s / base_s:5.2f}x baseline (target <= 1.3x)")
    print(f"   dlt filesystem iceberg, merge/upsert               {dlt_s:7.2f} s"
          f"   floe is {dlt_s / floe_s:5.1f}x faster (target >= 10x)")
    print(f"   floe: {commits} catalog commit, {len(snapshots)} snapshot(s) "
          f"({', '.join(str(s.summary.operation.value) for s in snapshots if s.summary)})")


def bench_rss(pg: Postgres, root: Path, rows: int) -> None:
    started = time.perf_counter()
    _, peak_mb = run_measured([sys.executable, __file__, "--rss-child", str(root),
                               "--pg-port", str(pg.port)])
    elapsed = time.perf_counter() - started
    print(f"\n3. memory: floe loads {rows:,} rows in {elapsed:.1f} s; peak RSS "
          f"{peak_mb:,.0f} MB (target < 1,024 MB)")


def rss_child(root: Path, port: int) -> None:
    pg = Postgres(port=port)
    floe = Floe(root, pg, "unused", "unused")
    floe.run("big")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--upsert-rows", type=int, default=100_000)
    parser.add_argument("--rss-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="append runs (best is kept)")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pg-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("error")
    if args.rss_child:
        rss_child(args.rss_child, args.pg_port)
        return
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    with postgres_server() as pg, tempfile.TemporaryDirectory(prefix="floe-bench-") as tmp:
        seed(pg, args.rows, args.upsert_rows, args.rss_rows)
        print(textwrap.dedent(f"""\
            floe ingest benchmark: PostgreSQL 15 on loopback, embedded SQLite catalog,
            {os.cpu_count()} cores; every number is one run in this process"""))
        bench_append(pg, Path(tmp) / "append", args.rows, args.repeat)
        bench_upsert(pg, Path(tmp) / "upsert", args.rows, args.upsert_rows)
        bench_rss(pg, Path(tmp) / "rss", args.rss_rows)


if __name__ == "__main__":
    main()
