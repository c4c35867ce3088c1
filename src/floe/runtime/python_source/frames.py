"""Where in the user's code an error was raised: their file and line, not floe's or dlt's.

A python source's error is the user's: the run shows it with the innermost frame of *their*
code (``sources/stripe.py:42, in charges``), which is the line they will open, instead of the
frames of dlt's extraction loop or floe's runner around it.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path

from floe.artifacts import CompiledSource
from floe.logs import mask
from floe.runtime.ingestion.errors import IngestionError, about, categorize_error

_LIBRARIES = tuple(
    str(Path(p).resolve()) + os.sep for p in
    {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
     sysconfig.get_paths()["stdlib"], str(Path(__file__).resolve().parents[2])})


def user_frame(error: BaseException, project_root: Path) -> str | None:
    """``path:line, in function`` of the innermost frame outside the libraries (the project's
    own modules first), or None when the error never passed through the user's code."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{_shown(error.filename, project_root)}:{error.lineno}"
    root = str(project_root.resolve()) + os.sep
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename.startswith("<"):  # <frozen ...>, <string>
            continue
        path = str(Path(frame.filename).resolve())
        if path.startswith(root) or not path.startswith(_LIBRARIES):
            found = f"{_shown(frame.filename, project_root)}:{frame.lineno}, in {frame.name}"
    return found


def _shown(filename: str, project_root: Path) -> str:
    path = Path(filename).resolve()
    try:
        return path.relative_to(project_root.resolve()).as_posix()
    except ValueError:
        return str(path)


def user_error(error: BaseException, what: str, source: CompiledSource, project_root: Path
               ) -> IngestionError:
    """The user's exception, shown as theirs: type, message and their own frame.  Its
    category still comes from the exception (dlt's terminal/transient markers, HTTP status,
    DB-API classes)."""
    where = user_frame(error, project_root)
    return IngestionError(
        f"{what} raised {type(error).__name__}: {mask(str(error))}"
        + (f" (at {where})" if where else ""), category=categorize_error(error),
        **about(source))
