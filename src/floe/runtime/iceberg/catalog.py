"""Open the artifact's Iceberg catalog with ``pyiceberg.catalog.load_catalog``.

The artifact holds relative paths (relative to the project) and secret references; this is the
one place where they become absolute paths and real credentials, right before pyiceberg needs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog

from floe.artifacts import EnvironmentConfig
from floe.errors import FloeError
from floe.logs import mask, register_secret_value
from floe.runtime.ingestion.errors import SourceConnectionError
from floe.runtime.project import RuntimeProject
from floe.secrets import resolve_secrets

# dlt writes nanosecond timestamps for some sources; Iceberg v2 stores microseconds.
os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")


def _local_path(value: str, project_root: Path) -> Path:
    path = Path(value.removeprefix("file://"))
    return path if path.is_absolute() else project_root / path


def _sqlite_uri(uri: str, project_root: Path) -> str:
    """``sqlite:///.floe/catalog.db`` is relative to the project; make it absolute."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith(prefix + "/"):
        return uri
    database = project_root / uri.removeprefix(prefix)
    database.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(database.resolve())


def catalog_properties(
    environment: EnvironmentConfig, project_root: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The properties ``load_catalog`` takes, with secrets resolved (never log the result)."""
    env = os.environ if environ is None else environ
    catalog = environment.catalog
    props: dict[str, str] = {"type": catalog.type}
    if catalog.uri and catalog.type == "glue":
        props["glue.endpoint"] = catalog.uri  # an AWS-compatible endpoint instead of AWS's own
    elif catalog.uri:
        props["uri"] = _sqlite_uri(catalog.uri, project_root) if catalog.type == "sql" else (
            catalog.uri)
    if catalog.warehouse:
        warehouse = catalog.warehouse
        if "://" not in warehouse and catalog.type == "sql":
            folder = _local_path(warehouse, project_root)
            folder.mkdir(parents=True, exist_ok=True)
            warehouse = folder.resolve().as_uri()
        props["warehouse"] = warehouse
    for key in ("credential", "token", "scope"):
        value = getattr(catalog, key)
        if value:
            props[key] = value
    if catalog.type == "rest":
        # pyiceberg asks every REST catalog for vended credentials unless told otherwise; an
        # empty header asks for no delegation, so the platform.yaml storage keys are used.
        props["header.X-Iceberg-Access-Delegation"] = (
            "vended-credentials" if catalog.vended_credentials else "")
    storage = environment.storage
    if storage is not None and storage.type == "s3":
        s3 = {
            "s3.endpoint": storage.endpoint, "s3.region": storage.region,
            "s3.access-key-id": storage.access_key_id,
            "s3.secret-access-key": storage.secret_access_key,
        }
        props.update({k: v for k, v in s3.items() if v})
        if catalog.type == "glue":  # Glue and S3 share the account unless properties say not
            glue = {"glue.region": storage.region, "glue.access-key-id": storage.access_key_id,
                    "glue.secret-access-key": storage.secret_access_key}
            props.update({k: v for k, v in glue.items() if v})
        if storage.path_style:
            props["s3.force-virtual-addressing"] = "false"
    props.update(catalog.properties)
    resolved: dict[str, str] = resolve_secrets(props, env)
    for key, value in resolved.items():
        if value != props[key]:
            register_secret_value(value)
    return resolved


def open_catalog(
    environment: EnvironmentConfig, project_root: Path, environ: Mapping[str, str] | None = None
) -> Catalog:
    """Load the catalog; pyiceberg connects lazily for REST only when first used.

    An embedded catalog creates its own tables the first time it is opened: two processes
    opening a new one at once (a schedule and a manual run) both try, and the loser gets
    SQLite's "table iceberg_tables already exists". Opening again finds the winner's tables.
    """
    props = catalog_properties(environment, project_root, environ)
    for attempt in range(5):  # it creates two tables: a racer may lose either, more than once
        try:
            return load_catalog(environment.catalog.name, **props)
        except Exception as exc:
            if environment.catalog.type != "sql" or "already exists" not in str(exc) \
                    or attempt == 4:
                raise
    raise AssertionError("unreachable")


def connect_catalog(environment: EnvironmentConfig, project_root: Path) -> Catalog:
    """Open the catalog and make one cheap call, so an unreachable one fails here, by name."""
    try:
        catalog = open_catalog(environment, project_root)
        catalog.list_namespaces()
        return catalog
    except Exception as exc:
        raise SourceConnectionError(
            f"Iceberg catalog {environment.catalog.uri or environment.catalog.type} is not "
            f"reachable: {type(exc).__name__}: {mask(str(exc))}") from exc


def connect(project: RuntimeProject) -> Catalog:
    """The project's catalog for a command (show, tables, changes, verify, maintain): an
    unreachable one is the user's error, named with its environment."""
    env = project.artifacts.environment
    try:
        return connect_catalog(env, project.root)
    except SourceConnectionError as exc:
        raise FloeError(f"environment '{env.name}': {exc.message}") from None
