"""python sources and landing files against their floors (#18), ratios from one run.

1. arrow: a Python resource yielding N rows as Arrow batches -> Bronze, in-process.
   Baselines: the same batches + one pyiceberg ``append`` (the floor), and plain
   ``dlt.pipeline(destination="filesystem", table_format="iceberg")``.  Goal <= 1.3x the floor.
2. dicts: the same rows yielded as dicts.  Baseline: plain dlt extract + normalize to parquet
   (dlt's normalizer is the floor for dicts).  Goal <= 1.2x.
3. files: an N-row landing file (csv, jsonl, parquet) through a filesystem source, as whole
   processes (`floe run`, imports included) against a process that reads it with pyarrow and
   appends it with pyiceberg, and the same two in-process (imports excluded).  Goal <= 1.3x
   each.  Then a CSV of --big-csv-gb GB (goal: 5 GB with a peak RSS < 1 GB), as a child
   process whose own peak RSS is read (bench/child.py).
4. code location: 200 python sources that list their resources against 200 rest_api sources
   (definitions built in-process, best of 3).  Goal <= 1.1x.

    .venv/bin/python bench/python_source.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dlt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog

from floe.artifacts import write_artifacts
from floe.compiler import CompileRequest, compile_project
from floe.logs import configure_logging
from floe.runtime.iceberg.catalog import open_catalog
from floe.runtime.ingestion.runner import run_source

BATCH = 100_000

MODULE = '''\
import dlt
import pyarrow as pa

def _batch(start, size):
    ids = pa.array(range(start, start + size), pa.int64())
    return pa.table({"id": ids, "amount": pa.compute.multiply(ids, 1.25),
                     "status": pa.array(["new", "paid", "shipped", "cancelled"] * (size // 4)),
                     "customer_id": pa.compute.bit_wise_and(ids, 4095)})

@dlt.resource
def arrow_rows(rows: int, batch: int):
    for start in range(0, rows, batch):
        yield _batch(start, batch)

@dlt.resource
def dict_rows(rows: int, batch: int):
    for start in range(0, rows, batch):
        yield _batch(start, batch).to_pylist()
'''


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _project(root: Path, yaml: str) -> Any:
    (root / "floe.yaml").write_text(textwrap.dedent(yaml))
    artifacts = compile_project(CompileRequest(floe_file=root / "floe.yaml",
                                               output_dir=root / "target"))
    write_artifacts(artifacts, root / "target" / "compiled_artifacts.json")
    return artifacts


def bench_python(root: Path, rows: int) -> None:
    sys.path.insert(0, str(root))
    (root / "bench_rows.py").write_text(MODULE)
    import bench_rows  # type: ignore[import-not-found]

    for kind in ("arrow_rows", "dict_rows"):
        _bench_resource(root / kind, kind, rows, bench_rows)


def _bench_resource(folder: Path, kind: str, rows: int, bench_rows: Any) -> None:
    folder.mkdir()
    artifacts = _project(folder, f"""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {{name: bench, version: 1.0.0}}
        sources:
          - name: rows
            source_type: python
            destination_table: bronze.rows
            source_config: {{function: "bench_rows:{kind}",
                             args: {{rows: {rows}, batch: {BATCH}}}}}
        """)
    catalog = open_catalog(artifacts.environment, folder)

    def fresh() -> None:  # untimed: every measured load lands in a new table
        if catalog.table_exists(("bronze", "rows")):
            catalog.drop_table(("bronze", "rows"))

    def floe_run() -> None:
        result = run_source(artifacts.source("rows"), catalog, folder)
        assert result.success and result.rows_loaded == rows, result.errors

    def floor() -> None:  # the batches + one pyiceberg append
        data = pa.concat_tables(list(bench_rows.arrow_rows(rows, BATCH)))
        base = SqlCatalog("b", uri=f"sqlite:///{folder}/floor.db",
                          warehouse=f"file://{folder}/floor")
        base.create_namespace_if_not_exists("b")
        if base.table_exists(("b", "rows")):
            base.drop_table(("b", "rows"))
        base.create_table(("b", "rows"), schema=data.schema).append(data)

    def plain_dlt(table_format: str | None) -> None:
        pipeline = dlt.pipeline(pipeline_name=f"plain_{kind}_{time.time_ns()}",
                                pipelines_dir=str(folder / "dlt"),
                                destination=dlt.destinations.filesystem(
                                    f"file://{folder}/dlt_out"),
                                dataset_name="plain")
        resource = getattr(bench_rows, kind)(rows, BATCH)
        if table_format is None:  # dict floor: extract + normalize to parquet
            pipeline.extract(resource, loader_file_format="parquet")
            pipeline.normalize()
        else:
            pipeline.run(resource, table_format=table_format,  # type: ignore[arg-type]
                         loader_file_format="parquet")

    floe_run()  # warm: imports
    ours = min((fresh(), timed(floe_run))[1] for _ in range(3))
    if kind == "arrow_rows":
        floor_s = min(timed(floor) for _ in range(3))
        dlt_s = timed(lambda: plain_dlt("iceberg"))
        print(f"arrow {rows:,} rows: floe {ours:.2f} s = {ours / floor_s:.2f}x pyarrow + "
              f"append ({floor_s:.2f} s; goal <= 1.3x); plain dlt iceberg {dlt_s:.2f} s = "
              f"{dlt_s / floor_s:.2f}x (in-process)")
    else:
        normalize_s = min(timed(lambda: plain_dlt(None)) for _ in range(2))
        print(f"dicts {rows:,} rows: floe {ours:.2f} s = {ours / normalize_s:.2f}x plain "
              f"dlt extract + normalize to parquet ({normalize_s:.2f} s; goal <= 1.2x) "
              "(in-process)")


READ_AND_APPEND = """\
import sys, pyarrow.csv, pyarrow.json, pyarrow.parquet
from pyiceberg.catalog.sql import SqlCatalog
path, fmt, root = sys.argv[1:4]
data = {"csv": pyarrow.csv.read_csv, "jsonl": pyarrow.json.read_json,
        "parquet": pyarrow.parquet.read_table}[fmt](path)
catalog = SqlCatalog("b", uri=f"sqlite:///{root}/base.db", warehouse=f"file://{root}/base")
catalog.create_namespace_if_not_exists("b")
if catalog.table_exists(("b", "t")):
    catalog.drop_table(("b", "t"))
catalog.create_table(("b", "t"), schema=data.schema).append(data)
"""


def bench_files(root: Path, rows: int) -> None:
    ids = pa.array(range(rows), pa.int64())
    table = pa.table({"id": ids, "amount": pa.compute.multiply(ids, 1.25),
                      "status": pa.array(["new", "paid", "shipped", "cancelled"] * (rows // 4)),
                      "customer_id": pa.compute.bit_wise_and(ids, 4095)})
    for fmt in ("csv", "jsonl", "parquet"):
        _bench_file(root / f"files_{fmt}", fmt, table)


def _bench_file(folder: Path, fmt: str, table: pa.Table) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    floe = str(Path(sys.executable).parent / "floe")
    (folder / "landing").mkdir(parents=True)
    path = folder / "landing" / f"orders.{fmt}"
    if fmt == "csv":
        pa_csv.write_csv(table, path)
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        with path.open("w") as out:
            for batch in table.to_batches(100_000):
                out.writelines(f'{{"id": {r["id"]}, "amount": {r["amount"]}, '
                               f'"status": "{r["status"]}", '
                               f'"customer_id": {r["customer_id"]}}}\n'
                               for r in batch.to_pylist())
    _project(folder, f"""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {{name: bench, version: 1.0.0}}
        sources:
          - {{name: orders, source_type: filesystem, destination_table: bronze.orders,
              source_config: {{bucket_url: landing, format: {fmt}}}}}
        """)
    (folder / "base.py").write_text(READ_AND_APPEND)
    took: list[float] = []

    def floe_run() -> None:
        shutil.rmtree(folder / ".floe", ignore_errors=True)  # a first load, every time
        started = time.perf_counter()
        subprocess.run([floe, "run"], cwd=folder, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        took.append(time.perf_counter() - started)

    def base_run() -> None:
        subprocess.run([sys.executable, str(folder / "base.py"), str(path), fmt, str(folder)],
                       env=env, check=True)

    floe_run()
    base_run()
    took.clear()
    for _ in range(3):
        floe_run()
    ours = min(took)
    base = min(timed(base_run) for _ in range(3))
    inside, floor_inside = _in_process(folder, path, fmt)
    print(f"{fmt} file, {table.num_rows:,} rows: floe run {ours:.2f} s = {ours / base:.2f}x "
          f"pyarrow read + append ({base:.2f} s; goal <= 1.3x) (process wall); in-process "
          f"{inside:.2f} s = {inside / floor_inside:.2f}x ({floor_inside:.2f} s)")


def _in_process(folder: Path, path: Path, fmt: str) -> tuple[float, float]:
    """The same load without the process start and imports: floe's run_source on a new
    table, against pyarrow's read + one pyiceberg append."""
    import pyarrow.json as pa_json

    from floe.artifacts import load_artifacts

    artifacts = load_artifacts(folder / "target" / "compiled_artifacts.json")
    catalog = open_catalog(artifacts.environment, folder)
    base = SqlCatalog("b", uri=f"sqlite:///{folder}/inproc.db",
                      warehouse=f"file://{folder}/inproc")
    base.create_namespace_if_not_exists("b")
    read = {"csv": pa_csv.read_csv, "jsonl": pa_json.read_json, "parquet": pq.read_table}[fmt]
    ours, floor = [], []
    for _ in range(3):
        if catalog.table_exists(("bronze", "orders")):
            catalog.drop_table(("bronze", "orders"))
        if base.table_exists(("b", "t")):
            base.drop_table(("b", "t"))
        ours.append(timed(lambda: run_source(artifacts.source("orders"), catalog, folder)))

        def floor_load() -> None:
            data = read(path)
            base.create_table(("b", "t"), schema=data.schema).append(data)

        floor.append(timed(floor_load))
    return min(ours), min(floor)


def bench_big_csv(root: Path, gigabytes: float) -> None:
    """A CSV larger than memory would like: streamed in bounded batches, so the peak RSS of
    the whole `floe run` stays flat as the file grows."""
    from bench.child import run_measured

    folder = root / "big_csv"
    (folder / "landing").mkdir(parents=True)
    path = folder / "landing" / "big.csv"
    part = 5_000_000
    with pa_csv.CSVWriter(path, pa.schema([("id", pa.int64()), ("amount", pa.float64()),
                                           ("status", pa.string())])) as writer:
        start = 0
        while path.stat().st_size < gigabytes * 1e9:
            ids = pa.array(range(start, start + part), pa.int64())
            writer.write_table(pa.table({
                "id": ids, "amount": pa.compute.multiply(ids, 1.25),
                "status": pa.array(["new", "paid", "shipped", "cancelled"] * (part // 4))}))
            start += part
    _project(folder, """        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: bench, version: 1.0.0}
        sources:
          - {name: big, source_type: filesystem, destination_table: bronze.big,
             source_config: {bucket_url: landing, format: csv}}
        """)
    started = time.perf_counter()
    previous = Path.cwd()
    os.chdir(folder)
    try:
        _, peak = run_measured([sys.executable, "-m", "floe.cli", "run"])
    finally:
        os.chdir(previous)
    took = time.perf_counter() - started
    print(f"big csv: {path.stat().st_size / 1e9:.1f} GB, {start:,} rows in {took:.1f} s, "
          f"peak RSS {peak:.0f} MB (goal: 5 GB < 1 GB) (process wall, child's own VmHWM)")


def bench_code_location(root: Path) -> None:
    from floe.runtime.dagster import build_definitions

    def project(kind: str) -> Path:
        folder = root / f"location_{kind}"
        folder.mkdir()
        if kind == "python":
            config = '{function: "bench_rows:arrow_rows", args: {rows: 1, batch: 1}, ' \
                     'resources: [arrow_rows]}'
        else:
            config = '{client: {base_url: "http://127.0.0.1:9"}, resources: [orders]}'
        sources = "".join(
            f"  - {{name: s{i}, source_type: {'python' if kind == 'python' else 'rest_api'}, "
            f"destination_table: bronze_{i}, source_config: {config}}}\n" for i in range(200))
        _project(folder, "apiVersion: floe.dev/v1\nkind: DataProduct\n"
                 "metadata: {name: bench, version: 1.0.0}\nsources:\n" + sources)
        return folder / "target" / "compiled_artifacts.json"

    paths = {kind: project(kind) for kind in ("rest_api", "python")}
    best = {kind: min(timed(lambda p=path: build_definitions(p)) for _ in range(3))
            for kind, path in paths.items()}
    print(f"code location, 200 sources: python (resources listed) {best['python']:.2f} s = "
          f"{best['python'] / best['rest_api']:.2f}x rest_api ({best['rest_api']:.2f} s; "
          "goal <= 1.1x) (in-process)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-csv-gb", type=float, default=1.0)
    args = parser.parse_args()
    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="floe-bench-py-") as folder:
        root = Path(folder)
        bench_python(root, args.rows)
        bench_files(root, args.rows)
        bench_code_location(root)
        if args.big_csv_gb:
            bench_big_csv(root, args.big_csv_gb)


if __name__ == "__main__":
    main()
