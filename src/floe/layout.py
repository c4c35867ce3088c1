"""``partition_by`` and ``sort_by`` as written in floe.yaml, parsed once for both halves.

``day(updated_at)``, ``bucket(16, id)``, ``identity(region)``, ``truncate(4, sku)``, ``year``,
``month``, ``hour``, or a bare column (identity).  The result is pyiceberg's transform notation
(``day``, ``bucket[16]``), so the runtime can hand it over as it is.  No heavy imports: the
compiler validates with the same parser.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_UNARY = re.compile(r"^\s*(identity|year|month|day|hour)\(\s*([A-Za-z_]\w*)\s*\)\s*$")
_WITH_WIDTH = re.compile(r"^\s*(bucket|truncate)\(\s*(\d+)\s*,\s*([A-Za-z_]\w*)\s*\)\s*$")
_COLUMN = re.compile(r"^\s*([A-Za-z_]\w*)\s*$")
_SORT = re.compile(r"^\s*([A-Za-z_]\w*)(?:\s+(asc|desc))?\s*$", re.IGNORECASE)
FORMS = "identity(col), year(col), month(col), day(col), hour(col), bucket(N, col), " \
        "truncate(N, col) or a column name"


class PartitionField(NamedTuple):
    column: str
    transform: str  # pyiceberg notation: identity, day, bucket[16], truncate[4]

    @property
    def name(self) -> str:
        """The partition field's name, as Spark would call it (``updated_at_day``)."""
        kind = self.transform.split("[")[0]
        width = self.transform[len(kind) + 1:-1] if "[" in self.transform else ""
        return self.column if kind == "identity" else f"{self.column}_{kind}{width}"


def rejoin(items: list[str]) -> list[tuple[int, str]]:
    """YAML's flow style splits ``[day(ts), bucket(16, id)]`` at the comma inside the
    parentheses (three items: ``bucket(16`` and ``id)``); put such pieces back together.
    Returns (index of the first piece, text)."""
    joined: list[tuple[int, str]] = []
    depth = 0
    for index, item in enumerate(items):
        text = str(item)
        if depth > 0:
            start, before = joined.pop()
            joined.append((start, f"{before}, {text.strip()}"))
        else:
            joined.append((index, text))
        depth += text.count("(") - text.count(")")
    return joined


def parse_partition(text: str) -> PartitionField | None:
    """None when ``text`` is none of the forms in ``FORMS``."""
    if match := _UNARY.match(text):
        return PartitionField(match.group(2), match.group(1))
    if match := _WITH_WIDTH.match(text):
        if int(match.group(2)) < 1:
            return None
        return PartitionField(match.group(3), f"{match.group(1)}[{int(match.group(2))}]")
    if match := _COLUMN.match(text):
        return PartitionField(match.group(1), "identity")
    return None


def parse_sort(text: str) -> tuple[str, bool] | None:
    """(column, descending), or None when ``text`` is not ``col``, ``col asc`` or
    ``col desc``."""
    match = _SORT.match(text)
    if match is None:
        return None
    return match.group(1), (match.group(2) or "").lower() == "desc"
