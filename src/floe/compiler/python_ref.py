"""``source_type: python``: the ``function: module:function`` reference, checked without running
the user's code.

The compiler imports no dlt and executes nothing of the project: the module is located with
``importlib.machinery.PathFinder`` (which reads directories, never imports; the project folder
first, as at run time), and its source is parsed with ``ast`` for a top-level ``def``, class,
assignment or import of that name.  What cannot be known that way (a compiled extension, a
module that builds its names dynamically) is left to the run, which imports it for real
(``floe validate --deep`` does the same in a child process).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
SHAPE = "module:function, e.g. sources.stripe:stripe_source"


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str = ""


def check_reference(reference: str, project_dir: Path) -> Problem | None:
    """The reason ``reference`` cannot name a function, or None (found, or not knowable)."""
    if not _REFERENCE.match(reference):
        if ":" not in reference:
            return Problem(f"function '{reference}' names no function: use {SHAPE}",
                           f"e.g. '{reference}:my_source'" if reference else "")
        return Problem(f"function '{reference}' is not of the form {SHAPE}")
    module, function = reference.split(":")
    spec = locate(module, project_dir)
    if spec is None:
        top = module.split(".")[0]
        near = _near_modules(top, project_dir)
        return Problem(
            f"module {module} not found (in {project_dir} or the installed packages)",
            f"did you mean {near}?" if near else
            f"put {module.replace('.', '/')}.py next to floe.yaml, or pip install the package "
            "that provides it")
    names = _top_level_names(spec)
    if names is None or function in names:
        return None
    close = difflib.get_close_matches(function, sorted(names), n=1)
    return Problem(f"module {module} ({_where(spec)}) defines no {function}",
                   f"did you mean {module}:{close[0]}?" if close else
                   "its top-level names: " + (", ".join(sorted(names)) or "none"))


def locate(module: str, project_dir: Path) -> ModuleSpec | None:
    """The module's spec, found the way the import system would, importing nothing (a dotted
    name's parents are looked up as folders, not imported)."""
    search: list[str] | None = [str(project_dir), *sys.path]
    spec: ModuleSpec | None = None
    for part in module.split("."):
        if search is None:
            return None
        spec = PathFinder.find_spec(part, search)
        if spec is None:
            return None
        locations = spec.submodule_search_locations
        search = list(locations) if locations is not None else None
    return spec


def _where(spec: ModuleSpec) -> str:
    return spec.origin or "namespace package"


def _top_level_names(spec: ModuleSpec) -> set[str] | None:
    """Names a module's source binds at top level; None when its source cannot tell."""
    origin = spec.origin
    if not origin or not origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None  # the run reports a broken module with its own traceback
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    # a module-level __getattr__ (PEP 562) makes any name possible
    return None if "__getattr__" in names else names


def _near_modules(name: str, project_dir: Path) -> str | None:
    try:
        here = [p.stem for p in project_dir.iterdir()
                if (p.suffix == ".py" or (p.is_dir() and not p.name.startswith(".")))]
    except OSError:
        return None
    close = difflib.get_close_matches(name, here, n=1)
    return close[0] if close else None


def probe_functions(sources: list[tuple[int, str, str, dict[str, object]]], project_dir: Path,
                    timeout: float = 120) -> dict[int, str]:
    """``floe validate --deep``: (index, name, function, args) of each python source, imported
    and checked in a child process (``floe.runtime.python_source.probe``); index -> problem.
    Secret references in ``args`` stay references: binding checks names, never values."""
    if not sources:
        return {}
    request = {"project": str(project_dir), "sources": [
        {"index": i, "name": name, "function": function, "args": args}
        for i, name, function, args in sources]}
    try:
        done = subprocess.run([sys.executable, "-m", "floe.runtime.python_source.probe"],
                              input=json.dumps(request), capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=project_dir)
    except subprocess.TimeoutExpired:
        return {sources[0][0]: f"importing the python sources took over {timeout:.0f} s "
                               "(a module that does work at import?)"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {sources[0][0]: f"importing the python sources failed: {last}"}
    return {int(found["index"]): str(found["problem"]) for found in json.loads(done.stdout)}
