"""How identifiers print in the CLI's tables: whole, whatever the terminal's width.

A snapshot id is copied into ``floe changes --since`` and a table name into ``floe show``; rich
would otherwise shrink their columns on an 80-column terminal and cut them with "…".
"""

from __future__ import annotations

from typing import Any

from rich.table import Column

# never wrapped or cut (the other columns wrap instead); 19 characters hold any 64-bit id
ID_COLUMN: dict[str, Any] = {"no_wrap": True, "min_width": 19, "overflow": "ignore"}


def name_column(header: str = "table") -> Column:
    """A table name: folded onto a second line when it must be, never cut."""
    return Column(header, overflow="fold")
