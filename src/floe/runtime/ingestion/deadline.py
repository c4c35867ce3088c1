"""``timeout_seconds``: stop a source that runs too long, before it commits anything.

Python cannot kill a thread, and a run in a subprocess would cost a second interpreter per
source.  In the main thread (``floe run``, and each Dagster step process) a real-time timer
interrupts the blocking call (HTTP read, database fetch) with ``SourceTimeoutError``, and keeps
re-firing every second in case a library swallows it.  The check before the commit applies
everywhere, so a late extract never commits; the commit itself is never interrupted, since a
commit the catalog accepted must be reported as committed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Deadline:
    def __init__(self, seconds: float | None, make_error: type[Exception],
                 context: dict[str, str] | None = None) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds if seconds else None
        self._make_error = make_error
        self._context = context or {}

    def error(self, stage: str) -> Exception:
        return self._make_error(
            f"timed out after {self.seconds:g} s (timeout_seconds) while {stage}; nothing was "
            "committed and the cursor is unchanged", **self._context)

    def check(self, stage: str) -> None:
        if self.at is not None and time.monotonic() >= self.at:
            raise self.error(stage)

    @contextmanager
    def interrupting(self, stage: str) -> Iterator[None]:
        """Raise the timeout inside whatever the main thread is blocked on."""
        usable = (self.at is not None and hasattr(signal, "setitimer")
                  and threading.current_thread() is threading.main_thread())
        if not usable:
            yield
            return
        assert self.at is not None

        def _expired(signum: int, frame: FrameType | None) -> None:
            raise self.error(stage)

        previous = signal.signal(signal.SIGALRM, _expired)
        signal.setitimer(signal.ITIMER_REAL, max(self.at - time.monotonic(), 0.001), 1.0)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
