"""Run a benchmark step in a child process and report that child's own peak RSS.

Neither ``getrusage`` figure works here: ``RUSAGE_CHILDREN`` is the largest of every child the
bench ever waited for (initdb, pg_ctl, psql...), and even ``wait4`` on the one child reports at
least the parent's RSS when it forked: Linux carries the high-water mark of the memory a process
had before ``exec`` (here, a copy of the bench process, which may already hold a million rows)
into ``ru_maxrss``.  ``VmHWM`` in ``/proc/PID/status`` belongs to the memory the child's own
program mapped after ``exec``; it only grows, so the last reading before the child exits is its
peak (read every 10 ms)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path


def _high_water_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone (or not Linux)
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None  # a zombie has no memory lines


def run_measured(command: Sequence[str]) -> tuple[str, float]:
    """The child's stdout and its peak RSS in MB; raises if it fails."""
    child = subprocess.Popen(list(command), stdout=subprocess.PIPE, text=True)
    peak = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.01):
            reading = _high_water_mb(child.pid)
            if reading is not None:
                peak = max(peak, reading)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert child.stdout is not None
    output = child.stdout.read()  # EOF: the child is exiting; its memory was read until now
    done.set()
    watcher.join()
    if child.wait():
        raise subprocess.CalledProcessError(child.returncode, list(command), output)
    return output, peak
