"""How large a source's state can be before keeping it in the snapshot summary hurts.

A snapshot's summary is copied into every later metadata file (Iceberg keeps the snapshot log
there), so a state of S bytes costs S x snapshots in each commit's metadata write and each
table load.  Printed per state size: the 50th commit's time, the metadata file's size, and a
table load's time, against the same loop with an empty state (the baseline, same run).

    python bench/state_size.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

COMMITS = 50


def run(state_bytes: int, root: Path) -> tuple[float, int, float]:
    catalog = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db",
                         warehouse=f"file://{root}/warehouse")
    catalog.create_namespace_if_not_exists("b")
    rows = pa.table({"id": pa.array([1], pa.int64())})
    table = catalog.create_table(("b", f"s{state_bytes}"), schema=rows.schema)
    state = json.dumps({"offsets": "x" * state_bytes})
    last = 0.0
    for _ in range(COMMITS):
        started = time.perf_counter()
        table.append(rows, snapshot_properties={"floe.state.bench": state})
        last = time.perf_counter() - started
    size = Path(table.metadata_location.removeprefix("file://")).stat().st_size
    started = time.perf_counter()
    catalog.load_table(("b", f"s{state_bytes}"))
    return last, size, time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = run(0, Path(folder))
        print(f"{'state':>10} {'commit #50':>12} {'x base':>7} {'metadata':>10} "
              f"{'load':>8} {'x base':>7}")
        for size in (1, 1_024, 8_192, 32_768, 131_072, 524_288):
            commit, metadata, load = run(size, Path(folder))
            print(f"{size:>10,} {commit * 1000:>10.1f}ms {commit / base[0]:>6.2f}x "
                  f"{metadata / 1e6:>8.2f}MB {load * 1000:>6.1f}ms {load / base[2]:>6.2f}x")


if __name__ == "__main__":
    main()
