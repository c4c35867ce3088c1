"""A python source's own state (a queue offset in resource_state) survives kill -9: five runs
killed at random points, then one that finishes, and every message lands exactly once (#18)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.runtime.harness import Project

CONSUMER = '''\
import json
import time
from pathlib import Path

import dlt


@dlt.resource
def messages(queue: str, batch: int = 10, per_run: int = 60):
    """Reads a queue (a JSONL file) from the offset it committed last, at most per_run
    messages a run; a slow consumer."""
    lines = Path(queue).read_text().splitlines()
    state = dlt.current.resource_state()
    offset = state.get("offset", 0)
    stop = min(len(lines), offset + per_run)
    while offset < stop:
        rows = [json.loads(line) for line in lines[offset:offset + batch]]
        time.sleep(0.05)
        yield rows
        offset += len(rows)
        state["offset"] = offset
'''

MESSAGES = 300


def test_each_message_once_over_five_kills(tmp_path: Path) -> None:
    (tmp_path / "consumer.py").write_text(CONSUMER)
    (tmp_path / "queue.jsonl").write_text(
        "".join(json.dumps({"id": i, "body": f"m{i}"}) + "\n" for i in range(MESSAGES)))
    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: queue, version: 1.0.0}
        sources:
          - name: inbox
            source_type: python
            destination_table: bronze.messages
            source_config: {function: "consumer:messages", args: {queue: queue.jsonl}}
        """)
    project.compile()
    started = time.perf_counter()
    assert _floe_run(tmp_path).returncode == 0  # one whole run: 60 messages
    whole = time.perf_counter() - started
    chance = random.Random(7)
    interrupted = committed = 0
    for _ in range(5):
        before = _count(project)
        run = subprocess.Popen([sys.executable, "-m", "floe.cli", "run"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        time.sleep(chance.uniform(0.3, 2.0) * whole)  # anywhere in a run, or after it
        if run.poll() is None:
            interrupted += 1
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        committed += _count(project) > before
    # the kills hit runs mid-way, and runs did commit between them: not a vacuous test
    assert interrupted >= 2 and committed >= 1, (interrupted, committed)
    for _ in range(10):  # then runs until the queue is drained
        done = _floe_run(tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        if _count(project) >= MESSAGES:
            break
    ids = [r["id"] for r in project.catalog().load_table(("bronze", "messages"))
           .scan().to_arrow().to_pylist()]
    assert sorted(ids) == list(range(MESSAGES)), "each message exactly once"


def _floe_run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "floe.cli", "run"], cwd=root,
                          capture_output=True, text=True, check=False)


def _count(project: Project) -> int:
    catalog = project.catalog()
    if not catalog.table_exists(("bronze", "messages")):
        return 0
    return len(catalog.load_table(("bronze", "messages")).scan().to_arrow())
