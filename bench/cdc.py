"""postgres_cdc end to end on a real PostgreSQL 15 (wal_level=logical), ratios printed in one run.

1. 1M changes (60% updates, 20% inserts, 20% deletes) on a 1M-row table: changes/s of one
   `floe run` (in a child process, so its peak RSS is measured alone).  Goals: >= 50k
   changes/s, peak RSS < 1 GB.
2. 10k changes on the same table against reloading it with `write_mode: replace` (a
   `sql_database` source on the same table, run in this process): goal <= 0.2x.

    .venv/bin/python bench/cdc.py [--rows 1000000] [--small 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.child import run_measured
from bench.runs import timed_run
from tests.servers import Postgres, postgres_server

from floe.logs import configure_logging
from floe.runtime.ingestion.result import IngestionResult

FLOE_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: bench, version: 1.0.0}
sources:
  - name: cdc
    source_type: postgres_cdc
    destination_table: bronze
    source_config: {credentials: "{{ secret('PG_URL') }}", tables: [events]}
  - name: reload
    source_type: sql_database
    destination_table: reload
    write_mode: replace
    source_config: {credentials: "{{ secret('PG_URL') }}", tables: [events]}
"""

COLUMNS = """g AS id, (g % 5000)::int AS customer_id, ((g % 997) * 1.25)::numeric(12,2) AS amount,
    (ARRAY['new','paid','shipped','cancelled'])[g % 4 + 1] AS status,
    timestamptz '2024-01-01' + g * interval '1 second' AS updated_at"""


def run(root: Path, url: str, source: str) -> IngestionResult:
    return timed_run(root, source, {"PG_URL": url})[0]


def changes(pg: Postgres, rows: int, count: int, offset: int, deleted: int) -> None:
    """60% updates, 20% inserts, 20% deletes (ids ``deleted`` mod 5), spread over the table."""
    step = rows // count * 5 or 1
    pg.execute(f"""
        UPDATE events SET status = 'changed', amount = amount + 1
            WHERE id % {step} IN (1, 2, 3) AND id <= {rows};
        DELETE FROM events WHERE id % {step} = {deleted} AND id <= {rows};
        INSERT INTO events SELECT {COLUMNS} FROM generate_series({offset + 1},
            {offset + count // 5}) g;
    """)


def profiled(variable: str, action: Callable[[], IngestionResult]) -> IngestionResult:
    """Run ``action``, under cProfile (stats to the file $variable names) when it is set."""
    if not os.environ.get(variable):
        return action()
    import cProfile

    with cProfile.Profile() as profile:
        result = action()
    profile.dump_stats(os.environ[variable])
    return result


def child(root: Path, port: int) -> None:
    pg = Postgres(port=port)
    started = time.perf_counter()
    result = profiled("FLOE_BENCH_PROFILE", lambda: run(root, pg.url, "cdc"))
    elapsed = time.perf_counter() - started
    print(f"{sum(t.rows_loaded for t in result.tables)} {elapsed:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--small-only", action="store_true", help="skip the 1M-change run")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pg-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("warning")
    if args.child:
        child(args.child, args.pg_port)
        return
    rows = args.rows
    with postgres_server() as pg, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "floe.yaml").write_text(FLOE_YAML)
        pg.execute(f"DROP TABLE IF EXISTS events; CREATE TABLE events AS SELECT {COLUMNS} "
                   f"FROM generate_series(1, {rows}) g; ALTER TABLE events ADD PRIMARY KEY (id)")
        started = time.perf_counter()
        run(root, pg.url, "cdc")
        copy = time.perf_counter() - started
        print(f"first run (copy of {rows:,} rows + replay): {copy:.1f} s "
              f"({rows / copy:,.0f} rows/s)")

        if not args.small_only:
            big(root, pg, rows)
        changes(pg, rows, args.small, 20 * rows, deleted=0)
        started = time.perf_counter()
        small = profiled("FLOE_BENCH_PROFILE_SMALL", lambda: run(root, pg.url, "cdc"))
        cdc_seconds = time.perf_counter() - started
        started = time.perf_counter()
        run(root, pg.url, "reload")
        reload_seconds = time.perf_counter() - started
        print(f"2. {sum(t.rows_loaded for t in small.tables):,} changes: floe postgres_cdc "
              f"{cdc_seconds:.2f} s vs reloading the table with write_mode: replace "
              f"{reload_seconds:.2f} s: {cdc_seconds / reload_seconds:.2f}x (goal <= 0.2x)")


def big(root: Path, pg: Postgres, rows: int) -> None:
    """1M changes in one transaction, applied by one ``floe run`` in a child process."""
    changes(pg, rows, rows, 10 * rows, deleted=4)
    # a scheduled run starts a while after the transaction; by then PostgreSQL has logged
    # its running transactions (every 15 s), which lets the slot's restart point move past
    # this big transaction when the run confirms it.  A run within 15 s of its commit leaves
    # the restart point behind it, and the next run decodes it once more (~1.5 s here).
    time.sleep(16)
    wall = time.perf_counter()
    output, peak_mb = run_measured([sys.executable, __file__, "--child", str(root),
                                    "--pg-port", str(pg.port)])
    wall = time.perf_counter() - wall
    applied, elapsed = output.split()[-2:]
    print(f"1. {int(applied):,} changes (60% updates, 20% inserts, 20% deletes) on "
          f"{rows:,} rows: {float(elapsed):.1f} s in-process ({wall:.1f} s process wall, "
          "imports included), "
          f"{int(applied) / float(elapsed):,.0f} changes/s (goal >= 50,000); peak RSS "
          f"{peak_mb:,.0f} MB (goal < 1,024)")


if __name__ == "__main__":
    main()
