"""The last failure of each source, kept as a property of its Bronze namespace.

``floe status`` reads state from the catalog alone (no extra store), and a failed load
commits nothing to its tables: so a failure is written where no data snapshot is, as the
namespace property ``floe.failure.<source>`` (time, category, message without secrets).
Every catalog floe supports has namespace properties; writing them never fails a load.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchNamespaceError

from floe.artifacts import CompiledSource
from floe.logs import get_logger, mask

PREFIX = "floe.failure."
_MAX_MESSAGE = 500
log = get_logger("floe.status")


@dataclass(frozen=True)
class Failure:
    at: float  # epoch seconds
    category: str
    error: str


def record_failure(catalog: Catalog, source: CompiledSource, error: str, category: str,
                   now: float | None = None) -> None:
    record = json.dumps({"at": round(now if now is not None else time.time(), 3),
                         "category": category, "error": mask(error)[:_MAX_MESSAGE]})
    key = PREFIX + source.name
    try:
        try:
            catalog.update_namespace_properties((source.namespace,), updates={key: record})
        except NoSuchNamespaceError:
            try:
                catalog.create_namespace((source.namespace,), {key: record})
            except NamespaceAlreadyExistsError:
                catalog.update_namespace_properties((source.namespace,),
                                                    updates={key: record})
    except Exception as exc:  # status loses one record; the load's own failure stands
        log.warning("status.failure_not_recorded", source=source.name,
                    error=mask(f"{type(exc).__name__}: {exc}"))


def failures(properties: dict[str, Any]) -> dict[str, Failure]:
    """The failure records among a namespace's properties, by source name."""
    found = {}
    for key, value in properties.items():
        if not key.startswith(PREFIX):
            continue
        try:
            record = json.loads(value)
            found[key.removeprefix(PREFIX)] = Failure(float(record["at"]),
                                                      str(record["category"]),
                                                      str(record["error"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found
