"""How long `floe compile` takes as a project grows: 10, 100, 1,000 and 5,000 sources.

Target (issue #2): 1,000 sources in under 1.0 s in-process, growth close to linear.  The table
also shows the per-source cost, which stays flat when growth is linear, and one cold
`floe compile` subprocess (interpreter start + imports included).

    .venv/bin/python bench/compile.py [--sizes 10,100,1000,5000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from floe.artifacts import write_artifacts
from floe.compiler import CompileRequest, compile_project

HEADER = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: bench, version: 1.0.0}
vars: {start: "2024-01-01"}
defaults: {write_mode: append, schema_contract: evolve, retry: {max_retries: 3}}
sources:
"""

SOURCE_KINDS = [
    """\
  - name: api_{i}
    source_type: rest_api
    destination_table: bronze.orders_{i}
    write_mode: merge
    primary_key: id
    cursor_field: updated_at
    cursor_initial_value: "{{{{ var('start') }}}}"
    schedule: "0 * * * *"
    source_config:
      client:
        base_url: "{{{{ env_var('API_URL', 'http://localhost:8000') }}}}"
        auth: {{type: bearer, token: "{{{{ secret('API_TOKEN') }}}}"}}
      resources:
        - name: orders
          endpoint: {{path: /orders, data_selector: data}}
    checks:
      - row_count: {{min: 1}}
      - not_null: [id]
      - unique: [id]
""",
    """\
  - name: db_{i}
    source_type: sql_database
    destination_table: bronze_{i}
    source_config:
      credentials: "{{{{ secret('DB_URL') }}}}"
      tables: [customers, invoices]
      backend: pyarrow
""",
    """\
  - name: files_{i}
    source_type: filesystem
    destination_table: bronze.events_{i}
    source_config: {{bucket_url: landing, file_glob: "*.jsonl", format: jsonl}}
""",
]


def project_text(sources: int) -> str:
    parts = [HEADER]
    parts += [SOURCE_KINDS[i % len(SOURCE_KINDS)].format(i=i) for i in range(sources)]
    return "".join(parts)


def time_in_process(folder: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        artifacts = compile_project(CompileRequest(
            floe_file=folder / "floe.yaml", output_dir=folder / "target", environ={}))
        write_artifacts(artifacts, folder / "target" / "compiled_artifacts.json")
        best = min(best, time.perf_counter() - started)
    return best


def time_subprocess(folder: Path) -> float:
    floe = Path(sys.executable).with_name("floe")
    started = time.perf_counter()
    subprocess.run([str(floe), "compile"], cwd=folder, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'sources':>8} {'yaml KB':>8} {'in-process s':>13} {'ms/source':>10} "
          f"{'cold CLI s':>11}")
    at_1000: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = Path(tmp) / f"p{size}"
            folder.mkdir()
            text = project_text(size)
            (folder / "floe.yaml").write_text(text)
            warm = time_in_process(folder, repeats=3 if size <= 1000 else 1)
            cold = time_subprocess(folder)
            print(f"{size:>8} {len(text) / 1024:>8.0f} {warm:>13.3f} "
                  f"{warm / size * 1000:>10.3f} {cold:>11.3f}")
            if size == 1000:
                at_1000 = warm
    if at_1000 is not None:
        verdict = "met" if at_1000 < 1.0 else "MISSED"
        print(f"target 1,000 sources < 1.0 s in-process: {verdict} ({at_1000:.3f} s)")


if __name__ == "__main__":
    main()
