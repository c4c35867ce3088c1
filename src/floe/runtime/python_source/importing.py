"""Import the ``module:function`` a python source names, the way a data engineer expects.

The project folder (the one holding floe.yaml) is importable first, like dbt's and Dagster's
project roots, so ``sources/stripe.py`` next to floe.yaml just works; installed packages come
after it.  Every way this can go wrong is said in the user's terms (FR-009): a module that is
not there, a package it imports that is not installed (with what to ``pip install``), a name the
module does not define (did you mean), a name that is not callable.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from floe.artifacts import CompiledSource
from floe.runtime.ingestion.errors import MissingSourceDependencyError, about, config_error
from floe.runtime.python_source.frames import user_error

# import names whose pip package is called something else
_PIP_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "bs4": "beautifulsoup4",
              "dateutil": "python-dateutil", "google": "google-cloud-...",
              "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient", "jwt": "pyjwt"}


def importable_project(project_root: Path) -> None:
    """Put the project folder first on ``sys.path`` (once), where the run imports from."""
    folder = str(project_root.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


def import_function(source: CompiledSource, project_root: Path) -> Callable[..., Any]:
    reference = str(source.source_config["function"])
    module_name, _, name = reference.partition(":")
    importable_project(project_root)
    _forget_other_projects(module_name, project_root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise config_error(
                source, f"function {reference}: module {module_name} not found in "
                f"{project_root} or the installed packages (put {module_name.replace('.', '/')}"
                ".py next to floe.yaml, or pip install the package that provides it)") from None
        top = missing.split(".")[0]
        raise MissingSourceDependencyError(
            f"function {reference}: module {module_name} imports {missing}, which is not "
            f"installed: pip install {_PIP_NAMES.get(top, top)}", **about(source)) from None
    except Exception as exc:  # the module itself raised (or does not parse) on import
        raise user_error(exc, f"function {reference}: importing {module_name}", source,
                         project_root) from exc
    found = getattr(module, name, None)
    if found is None:
        names = [n for n in vars(module) if not n.startswith("_")]
        close = difflib.get_close_matches(name, names, n=1)
        raise config_error(source, f"function {reference}: module {module_name} defines no "
                            f"{name}" + (f" — did you mean {module_name}:{close[0]}?"
                                         if close else ""))
    if not callable(found):
        raise config_error(source, f"function {reference}: {name} is a "
                            f"{type(found).__name__}, not a function that returns a dlt source "
                            "or resource")
    return found  # type: ignore[no-any-return]


def _forget_other_projects(module_name: str, project_root: Path) -> None:
    """A package of the same name imported earlier in this process from another folder (a
    second project in one Dagster code server, a test suite) is not this project's: drop it
    from ``sys.modules`` so the import finds the one next to this floe.yaml."""
    top = module_name.split(".")[0]
    mine = project_root.resolve()
    if not ((mine / top).is_dir() or (mine / f"{top}.py").is_file()):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        origin = getattr(sys.modules[name], "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(mine):
            del sys.modules[name]
    importlib.invalidate_caches()
