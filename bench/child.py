"""Run a benchmark step in a child process and report that child's own peak RSS.

``getrusage(RUSAGE_CHILDREN)`` is the largest of every child the bench ever waited for (initdb,
pg_ctl, psql...); ``wait4`` on the one child gives its own figure."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence


def run_measured(command: Sequence[str]) -> tuple[str, float]:
    """The child's stdout and its peak RSS in MB; raises if it fails."""
    child = subprocess.Popen(list(command), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, list(command), output)
    return output, usage.ru_maxrss / 1024
