"""``depends_on``: which sources wait for which, checked at compile time.

An entry names a source, or one resource of it (``source.resource``).  Unknown names get a
"did you mean"; a cycle is reported at the ``depends_on`` of a source on it, with the whole
path (``a -> b -> c -> a``), because a cycle without its path is a puzzle.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from floe.compiler.positions import SourceMap
from floe.errors import Diagnostic


def check_dependencies(sources: Sequence[Any], resources: Mapping[str, Sequence[str]],
                       where: SourceMap) -> Iterator[Diagnostic]:
    """Unknown names and cycles among ``sources`` (the rendered floe.yaml entries)."""
    names: dict[str, int] = {str(s["name"]): i for i, s in enumerate(sources)
                             if isinstance(s, dict) and isinstance(s.get("name"), str)}
    edges: dict[str, list[str]] = {}
    for name, index in names.items():
        entries = sources[index].get("depends_on")
        if not isinstance(entries, list):
            continue
        edges[name] = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, str):
                continue
            path = ("sources", index, "depends_on", position)
            source, _, resource = entry.partition(".")
            if source not in names:
                close = difflib.get_close_matches(source, list(names), n=1, cutoff=0.6)
                yield where.diagnostic(path, f"depends_on names no source '{source}'",
                                       f"did you mean '{close[0]}'?" if close else
                                       "sources: " + ", ".join(names))
                continue
            known: Sequence[str] = resources.get(source) or ()
            if resource and known and resource not in known:
                close = difflib.get_close_matches(resource, list(known), n=1, cutoff=0.6)
                yield where.diagnostic(path, f"source '{source}' has no resource "
                                       f"'{resource}'",
                                       f"did you mean '{source}.{close[0]}'?" if close else
                                       f"its resources: {', '.join(known)}")
                continue
            if source == name:
                yield where.diagnostic(path, f"source '{name}' depends on itself")
                continue
            edges[name].append(source)
    cycle = find_cycle(edges)
    if cycle:
        index = names[cycle[0]]
        yield where.diagnostic(("sources", index, "depends_on"),
                               f"depends_on makes a cycle: {' -> '.join(cycle)}",
                               "remove one of these dependencies")


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None (depth-first, stable order)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None
