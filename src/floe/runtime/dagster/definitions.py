"""``dagster dev -m floe.runtime.dagster.definitions`` loads ``defs`` from here.

The artifact path comes from ``FLOE_ARTIFACTS`` (default ``target/compiled_artifacts.json``).
A missing or unreadable artifact is the user's to fix: Dagster shows floe's one-line message
(``... not found: run `floe compile` first``) with this one frame, not floe's internals.
"""

from floe.errors import FloeError
from floe.runtime.dagster import build_definitions

try:
    defs = build_definitions()
except FloeError as error:
    raise error.with_traceback(None) from None
