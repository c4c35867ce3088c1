"""``dagster dev -m floe.runtime.dagster.definitions`` loads ``defs`` from here.

The artifact path comes from ``FLOE_ARTIFACTS`` (default ``target/compiled_artifacts.json``).
"""

from floe.runtime.dagster import build_definitions

defs = build_definitions()
