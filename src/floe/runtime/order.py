"""Run sources in dependency order, several at once: ``floe run``'s small scheduler.

Scaling out is Dagster's job; this only lets one `floe run` load independent sources side by
side (``--threads``) and keep ``depends_on`` promises: a source starts when everything it
depends on (within the selection) has loaded, and a source whose dependency failed is reported
``skipped``, naming the failure, while everything independent still runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from floe.artifacts import CompiledSource
from floe.runtime.ingestion.result import IngestionResult


def _targets(entry: str) -> str:
    return entry.split(".", 1)[0]


def upstream(depends_on: Mapping[str, Sequence[str]], name: str) -> set[str]:
    """Every source ``name`` waits for, directly or not."""
    seen: set[str] = set()
    todo = [_targets(e) for e in depends_on.get(name, ())]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += [_targets(e) for e in depends_on.get(current, ())]
    return seen


def downstream(depends_on: Mapping[str, Sequence[str]], name: str) -> set[str]:
    """Every source that waits for ``name``, directly or not."""
    return {other for other in depends_on if name in upstream(depends_on, other)}


def dependencies(source: CompiledSource, selected: set[str]) -> set[str]:
    """The selected sources ``source`` waits for (others are taken as already loaded)."""
    return {_targets(entry) for entry in source.depends_on} & selected - {source.name}


def run_in_order(sources: Sequence[CompiledSource],
                 load: Callable[[CompiledSource], IngestionResult], threads: int
                 ) -> dict[str, IngestionResult]:
    """Every source's result.  With one thread, or when only one source can run, it runs in
    the calling thread (so its ``timeout_seconds`` can interrupt a blocking read)."""
    selected = {s.name for s in sources}
    waiting = {s.name: dependencies(s, selected) for s in sources}
    by_name = {s.name: s for s in sources}
    results: dict[str, IngestionResult] = {}

    def settle(name: str, result: IngestionResult) -> None:
        results[name] = result
        if result.success:
            return
        for other in [n for n, deps in waiting.items() if name in deps]:
            if other not in results:
                settle(other, IngestionResult(
                    source=other, success=False, status="skipped",
                    errors=(f"skipped: depends on {name}, which "
                            f"{'was skipped' if result.status == 'skipped' else 'failed'}",)))

    def ready() -> list[str]:
        return [n for n in by_name if n not in results and n not in running
                and waiting[n] <= {d for d, r in results.items() if r.success}]

    running: dict[str, Future[IngestionResult]] = {}
    if threads <= 1:
        while todo := ready():
            settle(todo[0], load(by_name[todo[0]]))
        return {s.name: results[s.name] for s in sources}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="floe-run") as pool:
        while True:
            startable = ready()
            if len(startable) == 1 and not running:
                # nothing else could start before it ends: run it here, in the main thread,
                # where its timeout_seconds can interrupt a blocking read
                settle(startable[0], load(by_name[startable[0]]))
                continue
            for name in startable[: threads - len(running)]:
                running[name] = pool.submit(load, by_name[name])
            if not running:
                break
            done, _ = wait(list(running.values()), return_when=FIRST_COMPLETED)
            for name, future in list(running.items()):
                if future in done:
                    del running[name]
                    settle(name, future.result())
    return {s.name: results[s.name] for s in sources}
