"""merge_strategy scd2 (#20), at the commit (in-process, imports done), ratios against
baselines measured in the same run.

1. 10k changed keys into a history table of 1M current + 200k closed versions, against the
   same 10k as an upsert merge into a 1M-row table (goal <= 1.5x), and against dlt's own
   ``scd2`` strategy into its embedded duckdb destination (dlt's only scd2 path here; its
   Iceberg path has none) fed the same three loads (goal: faster).
2. reading a deep history as of an instant (``versions_at``: what ``floe show --as-of`` and
   ``floe.as_of`` read), against one full scan of it: ``--keys`` keys changed ``--depth``
   times (10M versions by default, as the issue measures), read as of the middle.  Goal <= 0.5x.
3. 1M binlog changes (60% updates, 20% inserts, 20% deletes) on a 1M-row MariaDB table into a
   ``mysql_cdc`` history table, against the same changes into a plain ``mysql_cdc`` table,
   each a ``floe run`` in a child process (its peak RSS measured alone).  Goals <= 1.5x,
   peak RSS < 1.2 GB.

    .venv/bin/python bench/history.py [--rows 1000000] [--closed 200000] [--changed 10000]
                                      [--cdc-rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from floe.artifacts import HistoryConfig
from floe.logs import configure_logging
from floe.runtime.as_of import versions_at
from floe.runtime.iceberg.commit import TableLoad, commit_table_load

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def rows(ids: np.ndarray, version: int) -> pa.Table:
    """Customers ``ids`` at their ``version``-th state, valid from ``version`` days in."""
    count = len(ids)
    at = int((START + dt.timedelta(days=version)).timestamp() * 1_000_000)
    return pa.table({"id": ids, "email": pa.array([f"c{i}v{version}@x" for i in ids]),
                     "city": pa.array(np.full(count, f"city{version}")),
                     "updated_at": pa.array(np.full(count, at), pa.timestamp("us", "UTC"))})


def load(catalog: Catalog, root: Path, table: str, data: pa.Table, history: bool,
         number: int) -> float:
    path = root / f"{table}-{number}.parquet"
    pq.write_table(data, path)
    started = time.perf_counter()
    commit_table_load(catalog, TableLoad(
        identifier=("b", table), files=[str(path)], write_mode="merge",
        merge_strategy="scd2" if history else "upsert", primary_key=("id",),
        schema_contract="evolve", state=None, load_id=f"load-{number}",
        history=HistoryConfig(valid_from_column="updated_at") if history else None))
    return time.perf_counter() - started


def dlt_scd2(root: Path, loads: list[pa.Table]) -> float:
    """dlt's ``scd2`` merge into duckdb: the loads one after another (absent rows kept, as
    floe's default); the seconds of the last ``pipeline.run``."""
    import os

    import dlt

    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"] = "true"  # scd2 hashes rows
    pipeline = dlt.pipeline("history_bench", pipelines_dir=str(root / "dlt"),
                            destination=dlt.destinations.duckdb(str(root / "dlt.duckdb")),
                            dataset_name="bench")
    seconds = 0.0
    for data in loads:
        @dlt.resource(name="customers", merge_key="id", write_disposition={
            "disposition": "merge", "strategy": "scd2", "retire_absent_rows": False})
        def customers(data: pa.Table = data) -> Iterator[pa.Table]:
            yield data

        started = time.perf_counter()
        pipeline.run(customers())
        seconds = time.perf_counter() - started
    return seconds


CDC_YAML = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: bench, version: 1.0.0}
sources:
  - name: plain
    source_type: mysql_cdc
    destination_table: plain
    source_config: {credentials: "{{ secret('MY_URL') }}", tables: [events]}
  - name: history
    source_type: mysql_cdc
    merge_strategy: scd2
    destination_table: history
    source_config: {credentials: "{{ secret('MY_URL') }}", tables: [events]}
"""


def cdc_child(root: Path, port: int, source: str) -> None:
    from bench.runs import timed_run
    from tests.servers import MariaDB

    result, seconds = timed_run(root, source, {"MY_URL": MariaDB(port=port, socket="").url})
    print(f"{sum(t.rows_loaded for t in result.tables)} {seconds:.3f}")


def cdc_history(rows_count: int) -> None:
    from bench.cdc_mysql import COLUMNS, TABLE, changes
    from bench.child import run_measured
    from bench.runs import timed_run
    from tests.servers import mariadb_server

    with mariadb_server() as db, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "floe.yaml").write_text(CDC_YAML)
        db.execute(TABLE + f"INSERT INTO events SELECT {COLUMNS} FROM seq_1_to_{rows_count};")
        for source in ("plain", "history"):  # the first copies
            timed_run(root, source, {"MY_URL": db.url})
        changes(db, rows_count, rows_count, 10 * rows_count, deleted=4)
        measured = {}
        for source in ("plain", "history"):
            output, peak = run_measured([sys.executable, __file__, "--cdc-child", str(root),
                                         "--port", str(db.port), "--source", source])
            applied, seconds = output.split()[-2:]
            measured[source] = (int(applied), float(seconds), peak)
    (changed, plain, plain_mb), (_, history, history_mb) = measured["plain"], measured["history"]
    print(f"3. {changed:,} binlog changes into a mysql_cdc history table: {history:.1f} s "
          f"in-process, peak RSS {history_mb:,.0f} MB vs into a plain mysql_cdc table "
          f"{plain:.1f} s, {plain_mb:,.0f} MB: {history / plain:.2f}x (goals <= 1.5x, "
          "< 1,229 MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--closed", type=int, default=200_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--cdc-rows", type=int, default=1_000_000)
    parser.add_argument("--cdc-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("warning")
    if args.cdc_child:
        cdc_child(args.cdc_child, args.port, args.source)
        return
    chance = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog = SqlCatalog("bench", uri=f"sqlite:///{root}/c.db",
                             warehouse=(root / "w").as_uri())
        catalog.create_namespace("b")
        every = np.arange(args.rows, dtype=np.int64)
        first_closed = rows(np.sort(chance.choice(every, args.closed, False)), 1)
        for name, history in (("history", True), ("latest", False)):  # 1.
            load(catalog, root, name, rows(every, 0), history, 0)
            load(catalog, root, name, first_closed, history, 1)
        changed = np.sort(chance.choice(every, args.changed, replace=False))
        upsert = load(catalog, root, "latest", rows(changed, 2), False, 2)
        scd2 = load(catalog, root, "history", rows(changed, 2), True, 2)
        print(f"1. {args.changed:,} changed keys into a history table of {args.rows:,} current "
              f"+ {args.closed:,} closed versions: {scd2:.2f} s vs the same as an upsert merge "
              f"{upsert:.2f} s: {scd2 / upsert:.2f}x (goal <= 1.5x)")
        dlt_seconds = dlt_scd2(root, [rows(every, 0), first_closed, rows(changed, 2)])
        print(f"   dlt's scd2 into duckdb, the same three loads: the {args.changed:,}-key load "
              f"{dlt_seconds:.2f} s: floe {scd2 / dlt_seconds:.2f}x of it (goal: faster, < 1x)")
        keys = np.arange(args.keys, dtype=np.int64)
        for version in range(args.depth):
            load(catalog, root, "deep", rows(keys, version), True, 10 + version)
        table = catalog.load_table(("b", "deep"))
        versions = table.scan().count()
        started = time.perf_counter()
        whole = table.scan().to_arrow()
        scan = time.perf_counter() - started
        instant = START + dt.timedelta(days=args.depth // 2, hours=12)
        started = time.perf_counter()
        valid = versions_at(table, instant)
        as_of = time.perf_counter() - started
        assert valid.num_rows == args.keys, valid.num_rows
        print(f"2. as of {instant:%Y-%m-%d %H:%M} on {versions:,} versions ({args.keys:,} keys "
              f"x {args.depth}; {whole.num_rows:,} read by a full scan): {as_of:.2f} s vs the "
              f"full scan {scan:.2f} s: {as_of / scan:.2f}x (goal <= 0.5x)")
    cdc_history(args.cdc_rows)


if __name__ == "__main__":
    main()
