"""A python source's function, called and turned into one dlt source floe can load.

``function`` may return a dlt source, a dlt resource or a list of resources, or be a
``@dlt.source`` / ``@dlt.resource`` itself; ``args`` (secrets resolved) are its keyword
arguments, checked against its signature before it runs.  ``resources:`` selects among the
source's resources.  The resources' own hints (write disposition, primary key, merge strategy)
are read here, for the keys floe.yaml leaves to them (``declared``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from floe.artifacts import CompiledSource, MergeStrategy, WriteMode
from floe.runtime.ingestion.errors import IngestionError, config_error
from floe.runtime.python_source.frames import user_error
from floe.runtime.python_source.importing import import_function


@dataclass(frozen=True)
class LoadHints:
    """How one resource's table is written: floe.yaml's keys, else the resource's own."""

    write_mode: WriteMode
    merge_strategy: MergeStrategy | None
    primary_key: tuple[str, ...]


def python_source(config: dict[str, Any], source: CompiledSource, project_root: Path
                  ) -> DltSource:
    function = import_function(source, project_root)
    args = dict(config.get("args") or {})
    reference = str(config["function"])
    check_arguments(function, args, reference, source)
    try:
        returned = function(**args)
    except IngestionError:
        raise
    except Exception as exc:  # the user's code failed before yielding anything
        raise user_error(exc, f"function {reference}", source, project_root) from exc
    dlt_source = _as_source(returned, reference, source)
    wanted = config.get("resources")
    if wanted:
        known = list(dlt_source.resources)
        for name in wanted:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                raise config_error(source, f"resources: {reference} has no resource {name}"
                                    + (f" — did you mean {close[0]}?" if close else "")
                                    + f"; its resources: {', '.join(known) or 'none'}")
        dlt_source = dlt_source.with_resources(*wanted)
    return dlt_source


def check_arguments(function: Callable[..., Any], args: dict[str, Any], reference: str,
                     source: CompiledSource) -> None:
    """Arguments the function does not take are named with its signature (never a value:
    an argument may be a secret)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**args)
    except TypeError as exc:
        name = reference.split(":")[1]
        raise config_error(source, f"args do not fit {name}{_without_defaults(signature)}: "
                            f"{exc}") from None


def _without_defaults(signature: inspect.Signature) -> str:
    """The signature with defaults left out: a default may be a secret's value too."""
    shown = [p.replace(default=inspect.Parameter.empty) if p.default is not p.empty else p
             for p in signature.parameters.values()]
    return str(signature.replace(parameters=shown, return_annotation=inspect.Signature.empty))


def _as_source(returned: Any, reference: str, source: CompiledSource) -> DltSource:
    if isinstance(returned, DltSource):
        return returned
    resources = [returned] if isinstance(returned, DltResource) else returned
    if (not isinstance(resources, list | tuple) or not resources
            or not all(isinstance(r, DltResource) for r in resources)):
        raise config_error(
            source, f"function {reference} returned {type(returned).__name__}, not a dlt "
            "source or resource: return a @dlt.source, a @dlt.resource or a list of "
            "resources (or decorate the function itself)")

    @dlt.source(name=source.name)
    def wrapped() -> Any:
        return list(resources)

    return wrapped()


def resource_hints(dlt_source: DltSource, source: CompiledSource) -> dict[str, LoadHints]:
    """Per resource: the write mode, merge strategy and key floe commits with."""
    hints: dict[str, LoadHints] = {}
    for name, resource in dlt_source.selected_resources.items():
        try:
            table = resource.compute_table_schema()
        except Exception:  # hints that need an item (dynamic): floe.yaml's, or append
            table = {}
        disposition = table.get("write_disposition") or "append"
        strategy = table.get("x-merge-strategy")
        keys = tuple(c for c, column in table.get("columns", {}).items()
                     if column.get("primary_key"))
        write_mode: Any = source.write_mode if "write_mode" in source.declared else (
            disposition if disposition in ("append", "replace", "merge") else "append")
        merge_strategy: Any = None
        if write_mode == "merge":
            merge_strategy = source.merge_strategy if "merge_strategy" in source.declared \
                else _strategy(strategy, name, source)
        primary_key = source.primary_key if "primary_key" in source.declared else keys
        if write_mode == "merge" and not primary_key:
            raise config_error(source, f"resource {name} is merged but has no primary key: "
                                "set primary_key in floe.yaml or on the resource")
        hints[name] = LoadHints(write_mode, merge_strategy, tuple(primary_key))
    return hints


def _strategy(strategy: Any, resource: str, source: CompiledSource) -> MergeStrategy:
    if strategy in (None, "delete-insert"):
        return "delete-insert"  # dlt's default merge strategy
    if strategy == "upsert":
        return "upsert"
    raise config_error(source, f"resource {resource} asks for dlt's merge strategy {strategy}, "
                        "which floe does not apply: set merge_strategy (upsert or "
                        "delete-insert) in floe.yaml")
