"""``floe validate --deep``: import each python source's function, in a child process.

The compiler never runs the user's code; ``--deep`` asks for it, so it happens here, in a
process of its own (a module that hangs, exits or pollutes ``sys.modules`` cannot hurt the
compile).  For each function: that it imports (a missing package named with what to install),
that the name is callable, and that ``args`` fit its signature.  Nothing is called.

Reads ``{"project": DIR, "sources": [{"index", "name", "function", "args"}]}`` as JSON on
stdin; writes ``[{"index", "problem"}]`` as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def probe(project: Path, entry: dict[str, Any]) -> str | None:
    """The problem with one source's function, checked as a run checks it (nothing called)."""
    from floe.artifacts import CompiledSource, RetryConfig
    from floe.runtime.ingestion.errors import IngestionError
    from floe.runtime.python_source.build import check_arguments
    from floe.runtime.python_source.importing import import_function

    source = CompiledSource(
        name=entry["name"], source_type="python", pipeline_name=entry["name"],
        destination_table="probe", namespace="probe", write_mode="append",
        schema_contract="evolve", retry=RetryConfig(),
        source_config={"function": entry["function"]})
    try:
        check_arguments(import_function(source, project), entry["args"], entry["function"],
                        source)
    except IngestionError as exc:
        return exc.message
    return None


def main() -> None:
    request = json.load(sys.stdin)
    project = Path(request["project"])
    found = []
    for entry in request["sources"]:
        problem = probe(project, entry)
        if problem is not None:
            found.append({"index": entry["index"], "problem": problem})
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
