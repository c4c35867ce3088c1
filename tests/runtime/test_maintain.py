"""floe maintain: small files compacted, old snapshots expired; cursors, fencing and changes
consumers keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import floe
from tests.runtime.harness import Project

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: events
    source_type: filesystem
    destination_table: bronze.events
    source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
"""


def _drop(root: Path, index: int) -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    rows = [{"id": index * 10 + i, "batch": index} for i in range(10)]
    (folder / f"{index:02}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_maintain(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(PROJECT)
    artifacts = project.root / "target" / "compiled_artifacts.json"
    for index in range(6):
        _drop(tmp_path, index)
        assert project.run("events").success
        if index == 2:  # a downstream job has read up to here
            assert len(floe.changes("bronze.events", consumer="silver",
                                    artifacts=artifacts)) == 30
    table = project.catalog().load_table(("bronze", "events"))
    assert sum(1 for _ in table.scan().plan_files()) == 6
    snapshots = len(table.snapshots())
    floe_bin = str(Path(sys.executable).parent / "floe")
    done = subprocess.run([floe_bin, "maintain", "--older-than", "0s", "--retain-last", "1"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 small files compacted" in done.stdout
    table = project.catalog().load_table(("bronze", "events"))
    assert sum(1 for _ in table.scan().plan_files()) == 1
    assert len(table.snapshots()) < snapshots
    assert sorted(r["id"] for r in project.read("bronze.events")) == list(range(60))
    # the cursor survived: nothing is loaded twice, a new file loads once
    assert project.run("events").rows_loaded == 0
    _drop(tmp_path, 6)
    assert project.run("events").rows_loaded == 10
    assert len(project.read("bronze.events")) == 70
    # the consumer's position survived too; compaction itself reports no change
    changed = floe.changes("bronze.events", consumer="silver", artifacts=artifacts)
    assert sorted(changed["id"].to_pylist()) == list(range(30, 70))
    assert set(changed["_change_type"].to_pylist()) == {"insert"}
