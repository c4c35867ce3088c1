"""What operating floe costs (issue #21), against baselines in the same run.

1. A nothing-new ``floe run`` (process wall, bytecode cached) with metrics pushed to a real
   Pushgateway, against the same project without metrics (goal: <= +0.05 s).
2. ``floe status`` of N sources on the Iceberg REST catalog (SeaweedFS), process wall and
   in-process (goal: < 3 s for 200).

    .venv/bin/python bench/metrics.py [--sources 200] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import monitoring_servers, pushing_platform_yaml, rest_catalog_server

FLOE = str(Path(sys.executable).with_name("floe"))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
SOURCE = """\
  - name: {name}
    source_type: filesystem
    destination_table: bronze.{name}
    freshness_sla: 1d
    source_config: {{bucket_url: landing, file_glob: "{name}.jsonl", format: jsonl}}
"""
HEADER = ("apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: bench, version: "
          "1.0.0}\n")


def floe(root: Path, *args: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run([FLOE, *args], cwd=root, env={**ENV, **(env or {})},
                          capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stdout + done.stderr)
    return time.perf_counter() - started


def project(root: Path, sources: int, platform: str = "") -> Path:
    (root / "landing").mkdir(parents=True)
    names = [f"s{i}" for i in range(sources)]
    for name in names:
        (root / "landing" / f"{name}.jsonl").write_text(json.dumps({"id": 1}) + "\n")
    (root / "floe.yaml").write_text(HEADER + ("platform: platform.yaml\n" if platform else "")
                                    + "sources:\n"
                                    + "".join(SOURCE.format(name=n) for n in names))
    if platform:
        (root / "platform.yaml").write_text(textwrap.dedent(platform))
    return root


def bench_push(root: Path, repeat: int) -> None:
    with monitoring_servers() as servers:
        plain = project(root / "plain", 1)
        pushed = project(root / "pushed", 1, pushing_platform_yaml(servers.pushgateway))
        for folder in (plain, pushed):
            floe(folder, "compile")
            floe(folder, "run")  # the first load; every later run finds nothing new
        best = {"plain": float("inf"), "pushed": float("inf")}
        for _ in range(repeat):
            for name, folder in (("plain", plain), ("pushed", pushed)):
                best[name] = min(best[name], floe(folder, "run"))
        assert servers.query("floe_loads_total"), "nothing reached Prometheus"
    print(f"\n1. nothing-new floe run, process wall (best of {repeat}, taking turns)")
    print(f"   without metrics                          {best['plain']:7.3f} s")
    print(f"   pushing to a Pushgateway                 {best['pushed']:7.3f} s"
          f"   {best['pushed'] - best['plain']:+.3f} s (goal <= +0.05 s)")


def bench_status(root: Path, sources: int, repeat: int) -> None:
    from floe.artifacts import load_artifacts
    from floe.runtime.iceberg.catalog import open_catalog
    from floe.runtime.ingestion.runner import run_source
    from floe.runtime.observe.status import statuses

    with rest_catalog_server() as rest:
        folder = project(root / "status", sources, rest.platform_yaml())
        env = dict(rest.secrets)
        floe(folder, "compile", "--env", rest.environment, env=env)
        artifacts = load_artifacts(folder / "target" / "compiled_artifacts.json")
        catalog = open_catalog(artifacts.environment, folder, env)
        for source in artifacts.sources:
            assert run_source(source, catalog, folder, environ=env).success
        wall = min(floe(folder, "status", "--no-lag", env=env) for _ in range(repeat))
        os.environ.update(env)
        started = time.perf_counter()
        found = statuses(catalog, artifacts.sources, lag=False)
        in_process = time.perf_counter() - started
        assert all(s.state == "fresh" for s in found), found[:3]
    print(f"\n2. floe status of {sources} sources on the REST catalog (SeaweedFS)")
    print(f"   process wall (best of {repeat})                {wall:7.2f} s   (goal < 3 s)")
    print(f"   in-process                               {in_process:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="floe-bench-") as tmp:
        bench_push(Path(tmp), args.repeat)
        bench_status(Path(tmp), args.sources, max(3, args.repeat // 2))


if __name__ == "__main__":
    main()
