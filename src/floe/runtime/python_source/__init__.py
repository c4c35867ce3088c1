"""``source_type: python``: any dlt source a user writes or installs, loaded with floe's
exactly-once Iceberg commits, checks and Dagster assets.

The shape of ``cdc/``: this package only turns the user's function into a dlt source and
reads its resources' hints (``build``), importing it from the project folder first
(``importing``) and reporting its errors as the user's (``frames``); extraction, state and
the Iceberg commit are the shared ones below (``ingestion/runner.py``, ``iceberg/``).
"""

from floe.runtime.python_source.build import LoadHints, python_source, resource_hints

__all__ = ["LoadHints", "python_source", "resource_hints"]
