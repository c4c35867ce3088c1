"""floe's user-facing error types.

Every mistake a user can make in their YAML or on the command line ends up as a ``FloeError``
carrying one or more ``Diagnostic``s, so the CLI can print them all at once and exit 1 instead of
showing a traceback.  Anything else escaping to the CLI is a bug in floe (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]


def format_key_path(path: KeyPath) -> str:
    """``("sources", 0, "write_mode")`` -> ``sources[0].write_mode`` (what users see in errors)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem, located as precisely as we can: file, line, column (1-based) and key path."""

    file: str
    line: int
    column: int
    key_path: str
    message: str
    hint: str = ""
    severity: str = "error"

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        what = f"{self.key_path}: {self.message}" if self.key_path else self.message
        text = f"{where}: {what}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class FloeError(Exception):
    """A problem the user can fix; rendered without a traceback and exit code 1."""

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics))

    def render(self) -> str:
        if not self.diagnostics:
            return self.message
        lines = [d.render() for d in self.diagnostics]
        count = len(self.diagnostics)
        lines.append(f"{count} error{'s' if count != 1 else ''} found; nothing was written.")
        return "\n".join(lines)


class CompileError(FloeError):
    """floe.yaml or platform.yaml is invalid."""

    @classmethod
    def from_diagnostics(cls, diagnostics: Iterable[Diagnostic]) -> CompileError:
        found = list(diagnostics)
        return cls(f"{len(found)} error(s) in the project", found)


class ArtifactError(FloeError):
    """The compiled artifact is missing, unreadable or of a version this floe cannot read."""
