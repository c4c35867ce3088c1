"""mysql_cdc end to end on a real MariaDB 10.11 (ROW binlog, full images and metadata), ratios
printed in one run against baselines measured in the same run.

1. First run of a 1M-row table (the copy, then the binlog since) against the fastest Arrow
   read of the table this machine has (PyMySQL streamed into Arrow; connectorx too when it is
   installed) plus one pyiceberg append.  Goal <= 1.3x.
2. 1M binlog changes (60% updates, 20% inserts, 20% deletes) on the 1M-row table: changes/s of
   one `floe run` in a child process (its peak RSS measured alone).  Goals: >= 50k changes/s,
   peak RSS < 1 GB.
3. 10k changes against reloading the table with `write_mode: replace` (a `sql_database` source
   on the same table).  Goal <= 0.2x.
4. `floe verify` of the 1M-row table against the same fastest read alone.  Goal <= 1.7x.

    .venv/bin/python bench/cdc_mysql.py [--rows 1000000] [--small 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.child import run_measured
from bench.runs import timed_run
from tests.servers import MariaDB, mariadb_server

from floe.compiler import CompileRequest, compile_project
from floe.logs import configure_logging
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.ingestion.result import IngestionResult

FLOE_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: bench, version: 1.0.0}
sources:
  - name: cdc
    source_type: mysql_cdc
    destination_table: bronze
    source_config: {credentials: "{{ secret('MY_URL') }}", tables: [events]}
  - name: reload
    source_type: sql_database
    destination_table: reload
    write_mode: replace
    source_config: {credentials: "{{ secret('MY_URL') }}", tables: [events]}
"""

TABLE = """
DROP TABLE IF EXISTS events;
CREATE TABLE events (id BIGINT PRIMARY KEY, customer_id INT, amount DECIMAL(12,2),
                     status VARCHAR(12), updated_at DATETIME(6));
"""
COLUMNS = """seq, seq % 5000, (seq % 997) * 1.25, ELT(seq % 4 + 1, 'new', 'paid', 'shipped',
    'cancelled'), TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND"""


def run(root: Path, url: str, source: str) -> IngestionResult:
    """One ``floe run`` of ``source``, in-process: the project compiled beforehand (as
    ``floe run`` finds target/compiled_artifacts.json), imports already done."""
    result, seconds = timed_run(root, source, {"MY_URL": url})
    RUN_SECONDS.append(seconds)
    return result


RUN_SECONDS: list[float] = []


def warm_up() -> None:
    """Import what a floe run of each source type needs (in-process figures exclude it)."""


def changes(db: MariaDB, rows: int, count: int, offset: int, deleted: int) -> None:
    """60% updates, 20% inserts, 20% deletes (ids ``deleted`` mod 5), spread over the table."""
    step = rows // count * 5 or 1
    db.execute(f"""
        UPDATE events SET status = 'changed', amount = amount + 1
            WHERE id % {step} IN (1, 2, 3) AND id <= {rows};
        DELETE FROM events WHERE id % {step} = {deleted} AND id <= {rows};
        INSERT INTO events SELECT {COLUMNS} FROM seq_{offset + 1}_to_{offset + count // 5};
    """)


def pymysql_arrow(db: MariaDB) -> pa.Table:
    """The table streamed with PyMySQL (unbuffered) into Arrow, one batch of columns at a time."""
    import pymysql
    import pymysql.cursors

    conn = pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password,
                           database=db.database, cursorclass=pymysql.cursors.SSCursor)
    batches = []
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT * FROM events")
            names = [d[0] for d in cursor.description]
            while rows := cursor.fetchmany(100_000):
                columns = map(list, zip(*rows, strict=True))
                batches.append(pa.table(dict(zip(names, columns, strict=True))))
    finally:
        conn.close()
    return pa.concat_tables(batches)


def connectorx_arrow(db: MariaDB) -> pa.Table | None:
    try:
        import connectorx
    except ImportError:
        return None
    table: Any = connectorx.read_sql(db.url, "SELECT * FROM events", return_type="arrow")
    return table if isinstance(table, pa.Table) else None


def fastest_read(db: MariaDB) -> tuple[str, float, pa.Table]:
    found: list[tuple[str, float, pa.Table]] = []
    for name, read in (("PyMySQL -> Arrow", pymysql_arrow), ("connectorx", connectorx_arrow)):
        started = time.perf_counter()
        table = read(db)
        if table is not None:
            found.append((name, time.perf_counter() - started, table))
    for name, seconds, table in found:
        print(f"   read {table.num_rows:,} rows with {name}: {seconds:.2f} s")
    return min(found, key=lambda f: f[1])


def append_seconds(root: Path, data: pa.Table) -> float:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("base", uri=f"sqlite:///{root}/base.db",
                         warehouse=(root / "base").as_uri())
    catalog.create_namespace("b")
    started = time.perf_counter()
    table = catalog.create_table(("b", "events"), schema=data.schema)
    table.append(data)
    return time.perf_counter() - started


def child(root: Path, port: int) -> None:
    db = MariaDB(port=port, socket="")
    result = run(root, db.url, "cdc")
    elapsed = RUN_SECONDS[-1]
    print(f"{sum(t.rows_loaded for t in result.tables)} {elapsed:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("warning")
    if args.child:
        child(args.child, args.port)
        return
    rows = args.rows
    with mariadb_server() as db, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "floe.yaml").write_text(FLOE_YAML)
        db.execute(TABLE + f"INSERT INTO events SELECT {COLUMNS} FROM seq_1_to_{rows};")
        name, read, data = fastest_read(db)
        append = append_seconds(root, data)
        del data
        baseline = read + append
        warm_up()
        run(root, db.url, "cdc")
        copy = RUN_SECONDS[-1]
        print(f"1. first run of {rows:,} rows (copy + binlog since): {copy:.2f} s vs "
              f"{name} read {read:.2f} s + one pyiceberg append {append:.2f} s = "
              f"{baseline:.2f} s: {copy / baseline:.2f}x (goal <= 1.3x; in-process)")
        with tempfile.TemporaryDirectory() as fresh:  # the copy again, alone in a child
            (Path(fresh) / "floe.yaml").write_text(FLOE_YAML)
            _, copy_mb = run_measured([sys.executable, __file__, "--child", fresh,
                                       "--port", str(db.port)])
        print(f"   the same first run in a child process: peak RSS {copy_mb:,.0f} MB (the copy "
              "streams 100k-row batches to working files; pyiceberg gathers up to a "
              "target-size data file, write.target-file-size-bytes, before writing it)")

        changes(db, rows, rows, 10 * rows, deleted=4)
        wall = time.perf_counter()
        output, peak_mb = run_measured([sys.executable, __file__, "--child", str(root),
                                        "--port", str(db.port)])
        wall = time.perf_counter() - wall
        applied, elapsed = output.split()[-2:]
        print(f"2. {int(applied):,} binlog changes (60% updates, 20% inserts, 20% deletes) on "
              f"{rows:,} rows: {float(elapsed):.1f} s in-process ({wall:.1f} s process wall, "
              f"imports included), {int(applied) / float(elapsed):,.0f} changes/s (goal >= "
              f"50,000); peak RSS {peak_mb:,.0f} MB (goal < 1,024)")

        changes(db, rows, args.small, 20 * rows, deleted=0)
        small = run(root, db.url, "cdc")
        cdc_seconds = RUN_SECONDS[-1]
        run(root, db.url, "reload")
        reload_seconds = RUN_SECONDS[-1]
        print(f"3. {sum(t.rows_loaded for t in small.tables):,} changes: floe mysql_cdc "
              f"{cdc_seconds:.2f} s vs reloading the table with write_mode: replace "
              f"{reload_seconds:.2f} s: {cdc_seconds / reload_seconds:.2f}x (goal <= 0.2x)")
        run(root, db.url, "cdc")
        print(f"   a run with nothing new: {RUN_SECONDS[-1]:.2f} s (what any run costs: checks, "
              "positions, the binlog's end, each table's state)")

        verify_vs_read(root, db)


def verify_vs_read(root: Path, db: MariaDB) -> None:
    from floe.runtime.verify import verify_source

    artifacts = compile_project(CompileRequest(
        floe_file=root / "floe.yaml", output_dir=root / "target", environ={"MY_URL": db.url}))
    catalog = open_catalog(artifacts.environment, root)
    name, read, _ = fastest_read(db)
    verify_source(artifacts.source("cdc"), catalog, root, environ={"MY_URL": db.url})  # warm
    started = time.perf_counter()
    [report] = verify_source(artifacts.source("cdc"), catalog, root,
                             environ={"MY_URL": db.url})
    seconds = time.perf_counter() - started
    assert report.status == "match", report
    print(f"4. floe verify of {report.source_rows:,} rows ({report.status}): {seconds:.2f} s vs "
          f"{name} read alone {read:.2f} s: {seconds / read:.2f}x (goal <= 1.7x; in-process)")


if __name__ == "__main__":
    main()
