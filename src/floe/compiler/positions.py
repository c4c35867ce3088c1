"""Where each value of a YAML document was written, so any later stage can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field

from floe.errors import Diagnostic, KeyPath, format_key_path


@dataclass
class SourceMap:
    """Line/column (1-based) of every key and value of one YAML file, by key path."""

    file: str
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    styles: dict[KeyPath, str] = field(default_factory=dict)  # ', ", | or > scalars

    def locate(self, path: KeyPath, *, at_key: bool = False) -> tuple[int, int]:
        """Position of ``path``; falls back to the nearest ancestor that was written."""
        probe = path
        while True:
            table = self.keys if at_key and probe == path else self.values
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]

    def locate_in(self, path: KeyPath, text: str, offset: int) -> tuple[int, int]:
        """Position of the ``offset``-th character of the string value at ``path`` (an
        expression's error points into it): after an opening quote, or, in a block scalar,
        on the line it falls on, indented under its key."""
        line, column = self.locate(path)
        style = self.styles.get(path)
        if style in ("|", ">"):
            before = text[:offset]
            _, key_column = self.locate(path, at_key=True)
            return (line + 1 + before.count("\n"),
                    key_column + 2 + len(before) - (before.rfind("\n") + 1))
        return line, column + offset + (1 if style in ("'", '"') else 0)

    def diagnostic(
        self, path: KeyPath, message: str, hint: str = "", *, at_key: bool = False
    ) -> Diagnostic:
        line, column = self.locate(path, at_key=at_key)
        return Diagnostic(self.file, line, column, format_key_path(path), message, hint)
