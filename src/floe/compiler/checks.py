"""Stage 4, check: rules a JSON Schema cannot express.

The checks read the rendered dicts defensively (never assuming the schema passed), so a run
reports schema errors and semantic errors together.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from croniter import croniter

from floe.artifacts import CDC_SOURCE_TYPES
from floe.compiler.graph import check_dependencies
from floe.compiler.positions import SourceMap
from floe.compiler.python_ref import check_reference, probe_functions
from floe.compiler.render import check_template_syntax
from floe.compiler.transform_checks import check_transform
from floe.errors import Diagnostic, KeyPath
from floe.layout import FORMS, parse_partition, parse_sort, rejoin
from floe.secrets import has_secret_ref

_CREDENTIAL_KEY = re.compile(
    r"^(?:.*[_-])?(password|passwd|pwd|token|secret|credentials?|api_key|apikey|"
    r"private_key|access_key_id|secret_access_key|client_secret)$",
    re.IGNORECASE,
)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s:]*:([^/@\s]+)@", re.IGNORECASE)
_CRON_ALIASES = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}

_SOURCE_CONFIG_KEYS: dict[str, dict[str, str]] = {
    "rest_api": {"client": "mapping", "resource_defaults": "mapping", "resources": "list"},
    "sql_database": {
        "credentials": "string or mapping", "schema": "string", "tables": "list",
        "backend": "string", "chunk_size": "integer", "reflection_level": "string",
        "include_views": "boolean",
    },
    "filesystem": {
        "bucket_url": "string", "file_glob": "string", "format": "string",
        "credentials": "mapping", "encoding": "string", "delimiter": "string",
    },
    "python": {"function": "string (module:function)", "args": "mapping",
               "resources": "list"},
    "postgres_cdc": {
        "credentials": "string", "schema": "string", "tables": "list",
        "slot_name": "string", "publication_name": "string",
    },
    "mysql_cdc": {"credentials": "string", "tables": "list", "server_id": "integer"},
}
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_SQL_BACKENDS = ("adbc", "sqlalchemy", "pyarrow", "connectorx", "pandas")
_FILE_FORMATS = ("csv", "jsonl", "parquet")
_REFLECTION_LEVELS = ("minimal", "full", "full_with_precision")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_project(
    floe: dict[str, Any], floe_map: SourceMap,
    platform: dict[str, Any] | None, platform_map: SourceMap | None,
) -> list[Diagnostic]:
    """Every semantic problem in the rendered project."""
    found: list[Diagnostic] = []
    defaults = _dict(floe.get("defaults"))
    found += _check_schedule(defaults, ("defaults",), floe_map)
    seen: dict[str, int] = {}
    for index, source in enumerate(_list(floe.get("sources"))):
        if not isinstance(source, dict):
            continue
        path: KeyPath = ("sources", index)
        name = source.get("name")
        if isinstance(name, str):
            if name in seen:
                found.append(floe_map.diagnostic(
                    (*path, "name"), f"duplicate source name '{name}'",
                    f"sources[{seen[name]}] already uses it; names must be unique"))
            else:
                seen[name] = index
        found += _check_write_mode(source, defaults, path, floe_map)
        found += _check_schedule(source, path, floe_map)
        found += _check_source_config(source, path, floe_map)
        found += _check_checks(source, path, floe_map)
        found += _check_layout(source, path, floe_map)
        found += _check_bad_rows(source, path, floe_map)
        found += check_transform(source, (*path, "transform"), floe_map)
    sources = _list(floe.get("sources"))
    resources = {s["name"]: resource_names(s.get("source_type"), _dict(s.get("source_config")))
                 for s in sources if isinstance(s, dict) and isinstance(s.get("name"), str)}
    found += check_dependencies(sources, resources, floe_map)
    for index, note in enumerate(_list(floe.get("notifications"))):
        found += _check_notification(_dict(note), ("notifications", index), floe_map)
    found += _check_literal_credentials(floe, (), floe_map)
    if platform is not None and platform_map is not None:
        found += _check_platform(platform, platform_map)
        found += _check_literal_credentials(platform, (), platform_map)
    return found


_CHANNELS = ("webhook", "slack", "teams", "email", "telegram")


def _check_notification(note: dict[str, Any], path: KeyPath, where: SourceMap
                        ) -> Iterator[Diagnostic]:
    channels = [c for c in _CHANNELS if c in note]
    if len(channels) != 1:
        yield where.diagnostic(
            path, "a notification needs exactly one of webhook, slack, teams, email, telegram"
            + (f" (it has {', '.join(channels)})" if channels else ""),
            "e.g. `slack: \"{{ secret('SLACK_WEBHOOK') }}\"`")
    for key, value in (("template", note.get("template")),
                       ("email.subject", _dict(note.get("email")).get("subject"))):
        if isinstance(value, str) and (problem := check_template_syntax(value)):
            yield where.diagnostic((*path, *key.split(".")), problem)
    for channel in ("slack", "teams"):
        value = note.get(channel)
        if isinstance(value, str) and not has_secret_ref(value):
            yield where.diagnostic(
                (*path, channel), f"the {channel} webhook URL is a credential: anyone with it "
                "can post to your channel", f"use `{channel}: \"{{{{ secret('"
                f"{channel.upper()}_WEBHOOK') }}}}\"`")
    smtp = _dict(note.get("email")).get("smtp")
    if isinstance(smtp, str) and not has_secret_ref(smtp) and _URL_WITH_PASSWORD.match(smtp):
        yield where.diagnostic((*path, "email", "smtp"), "the smtp URL holds a password",
                               "use `smtp: \"{{ secret('SMTP_URL') }}\"`")


def _check_layout(source: dict[str, Any], path: KeyPath, where: SourceMap
                  ) -> Iterator[Diagnostic]:
    items = [str(t) for t in _list(source.get("partition_by")) if isinstance(t, str)]
    for index, text in rejoin(items):
        if parse_partition(text) is None:
            yield where.diagnostic((*path, "partition_by", index),
                                   f"'{text}' is not a partition transform", f"use {FORMS}")
    for index, text in enumerate(_list(source.get("sort_by"))):
        if isinstance(text, str) and parse_sort(text) is None:
            yield where.diagnostic((*path, "sort_by", index),
                                   f"'{text}' is not a column to sort by",
                                   "a column name, optionally followed by asc or desc")


def _check_bad_rows(source: dict[str, Any], path: KeyPath, where: SourceMap
                    ) -> Iterator[Diagnostic]:
    """Bad rows are rows a file parser refuses: only landing files have them."""
    if "bad_rows" in source and source.get("source_type") != "filesystem":
        yield where.diagnostic(
            (*path, "bad_rows"), f"bad_rows applies to filesystem sources (csv, jsonl), not "
            f"{source.get('source_type')}", "remove bad_rows")


def _check_write_mode(
    source: dict[str, Any], defaults: dict[str, Any], path: KeyPath, where: SourceMap
) -> Iterator[Diagnostic]:
    primary_key = source.get("primary_key")
    source_type = source.get("source_type")
    yield from _check_history(source, defaults, path, where)
    if source_type in CDC_SOURCE_TYPES:
        if "write_mode" in source and source["write_mode"] != "merge":
            yield where.diagnostic(
                (*path, "write_mode"), f"{source_type} always merges; write_mode "
                f"{source['write_mode']} cannot apply",
                "remove write_mode: changes are upserted by primary key and deletes remove rows")
        if "delete_column" in source:
            yield where.diagnostic(
                (*path, "delete_column"), f"{source_type} knows deletes from the replication "
                "stream; delete_column does not apply", "remove delete_column")
        return
    mode = source.get("write_mode", defaults.get("write_mode", "append"))
    mode_path = (*path, "write_mode") if "write_mode" in source else (*path, "name")
    if "delete_column" in source and mode != "merge":
        yield where.diagnostic(
            (*path, "delete_column"), f"delete_column only applies to write_mode merge, but "
            f"this source uses {mode}",
            "set `write_mode: merge` with a primary_key, or remove delete_column")
    if source.get("deletes") == "soft" and "delete_column" not in source:
        yield where.diagnostic(
            (*path, "deletes"), "deletes: soft needs a delete_column on this source type",
            "add `delete_column: is_deleted` (soft keeps the row with its marker)")
    python = source.get("source_type") == "python"  # its resources may name their own key
    if mode == "merge" and primary_key in (None, "", []) and not python:
        yield where.diagnostic(
            mode_path, "write_mode merge needs a primary_key",
            "add `primary_key: id` (or a list of columns) so rows can be matched")
    if "merge_strategy" in source and mode != "merge":
        yield where.diagnostic(
            (*path, "merge_strategy"), f"merge_strategy only applies to write_mode merge, "
            f"but this source uses {mode}",
            "remove merge_strategy, or set `write_mode: merge`")
    if mode == "replace" and source.get("cursor_field") not in (None, ""):
        yield where.diagnostic(
            (*path, "cursor_field"), "cursor_field cannot be used with write_mode replace: "
            "each run would replace the table with only the rows newer than the cursor",
            "use `write_mode: append` (keep every new row) or `write_mode: merge` with a "
            "primary_key (keep the newest version of each row); or drop cursor_field to "
            "reload everything")
    if isinstance(primary_key, list) and len(set(map(str, primary_key))) != len(primary_key):
        yield where.diagnostic((*path, "primary_key"), "primary_key lists a column twice")


def _check_history(source: dict[str, Any], defaults: dict[str, Any], path: KeyPath,
                   where: SourceMap) -> Iterator[Diagnostic]:
    """``history:`` belongs to ``merge_strategy: scd2``; a full-extract rule cannot meet an
    incremental cursor."""
    strategy = source.get("merge_strategy", defaults.get("merge_strategy"))
    history = source.get("history")
    if history is not None and strategy != "scd2":
        yield where.diagnostic(
            (*path, "history"), "history applies to merge_strategy scd2, which this source "
            "does not use", "add `merge_strategy: scd2` (with write_mode merge), or remove "
            "history", at_key=True)
        return
    if not isinstance(history, dict):
        return
    if source.get("source_type") in CDC_SOURCE_TYPES:
        for key in ("valid_from_column", "retire_absent"):
            if key in history:
                yield where.diagnostic(
                    (*path, "history", key), f"{source.get('source_type')} history is valid "
                    f"from each change's commit time and knows deletes from the stream; {key} "
                    "does not apply", f"remove {key}", at_key=True)
        return
    if history.get("retire_absent") is True and source.get("cursor_field") not in (None, ""):
        yield where.diagnostic(
            (*path, "history", "retire_absent"), "retire_absent closes every key a load does "
            "not send, but with cursor_field each load sends only the rows changed since the "
            "last: every other row would be retired",
            "remove cursor_field (a full extract each run), or set retire_absent: false")


def _check_schedule(node: dict[str, Any], path: KeyPath, where: SourceMap) -> Iterator[Diagnostic]:
    schedule = node.get("schedule")
    if isinstance(schedule, str):
        fields = schedule.split()
        valid = schedule.strip() in _CRON_ALIASES or (
            len(fields) == 5 and croniter.is_valid(schedule))
        if not valid:
            yield where.diagnostic(
                (*path, "schedule"), f"'{schedule}' is not a valid cron expression",
                "five fields: minute hour day-of-month month day-of-week, e.g. '0 * * * *' "
                "(hourly) or '30 2 * * *' (daily at 02:30); or @hourly, @daily, @weekly")
    timezone = node.get("timezone")
    if isinstance(timezone, str):
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            yield where.diagnostic((*path, "timezone"), f"unknown timezone '{timezone}'",
                                   "use an IANA name such as UTC or Europe/Berlin")


def resource_names(source_type: Any, config: dict[str, Any]) -> list[str]:
    """dlt resource names known before connecting (empty: only known at run time)."""
    if source_type == "rest_api":
        names = []
        for resource in _list(config.get("resources")):
            name = resource if isinstance(resource, str) else _dict(resource).get("name")
            if isinstance(name, str):
                names.append(name)
        return names
    if source_type in ("sql_database", *CDC_SOURCE_TYPES):
        return [t for t in _list(config.get("tables")) if isinstance(t, str)]
    if source_type == "python":
        return [r for r in _list(config.get("resources")) if isinstance(r, str)]
    return []


def _check_source_config(
    source: dict[str, Any], path: KeyPath, where: SourceMap
) -> Iterator[Diagnostic]:
    source_type = source.get("source_type")
    config = source.get("source_config")
    allowed = _SOURCE_CONFIG_KEYS.get(str(source_type))
    if not isinstance(config, dict) or allowed is None:
        return
    config_path = (*path, "source_config")
    for key in config:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
            yield where.diagnostic(
                (*config_path, key), f"unknown {source_type} source_config key '{key}'",
                f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed),
                at_key=True)
    if source_type == "rest_api":
        yield from _check_rest_api(config, config_path, where)
    elif source_type == "sql_database":
        yield from _check_sql_database(config, config_path, where)
    elif source_type == "postgres_cdc":
        yield from _check_postgres_cdc(config, config_path, where)
    elif source_type == "mysql_cdc":
        yield from _check_mysql_cdc(config, config_path, where)
    elif source_type == "python":
        yield from _check_python(config, config_path, where)
    else:
        yield from _check_filesystem(config, config_path, where)
    destination = source.get("destination_table")
    names = resource_names(source_type, config)
    many = len(names) > 1 or (
        source_type == "sql_database" and not names and bool(config.get("schema")))
    if many and isinstance(destination, str) and "." in destination:
        listed = ", ".join(names) if names else "every table of the schema"
        yield where.diagnostic(
            (*path, "destination_table"),
            f"this source has several resources ({listed}) but destination_table names one "
            "table",
            f"use a bare namespace such as '{destination.split('.')[0]}' to land each resource "
            "in its own table")


def _require(config: dict[str, Any], key: str, path: KeyPath, where: SourceMap,
             source_type: str, hint: str) -> Iterator[Diagnostic]:
    if config.get(key) in (None, "", [], {}):
        yield where.diagnostic(path, f"{source_type} source_config needs '{key}'", hint)


def _check_rest_api(config: dict[str, Any], path: KeyPath, where: SourceMap
                    ) -> Iterator[Diagnostic]:
    client = config.get("client")
    if not isinstance(client, dict) or not client.get("base_url"):
        yield where.diagnostic(
            (*path, "client") if isinstance(client, dict) else path,
            "rest_api source_config needs 'client.base_url'",
            "client: {base_url: 'https://api.example.com'}")
    yield from _require(config, "resources", path, where, "rest_api",
                        "resources: [{name: orders, endpoint: {path: /orders}}]")
    for index, resource in enumerate(_list(config.get("resources"))):
        if isinstance(resource, dict) and not isinstance(resource.get("name"), str):
            yield where.diagnostic((*path, "resources", index), "a resource needs a 'name'")
        elif not isinstance(resource, dict | str):
            yield where.diagnostic((*path, "resources", index),
                                   "a resource is a name or a mapping with 'name' and 'endpoint'")


def _check_sql_database(config: dict[str, Any], path: KeyPath, where: SourceMap
                        ) -> Iterator[Diagnostic]:
    yield from _require(config, "credentials", path, where, "sql_database",
                        "credentials: \"{{ secret('DB_URL') }}\" (a SQLAlchemy URL)")
    if not config.get("tables") and not config.get("schema"):
        yield where.diagnostic(path, "sql_database source_config needs 'tables' or 'schema'",
                               "tables: [customers, invoices] or schema: public")
    tables = config.get("tables")
    if tables is not None and (not isinstance(tables, list)
                               or not all(isinstance(t, str) and t for t in tables)):
        yield where.diagnostic((*path, "tables"), "tables must be a list of table names")
    for key, choices in (("backend", _SQL_BACKENDS), ("reflection_level", _REFLECTION_LEVELS)):
        if key in config and config[key] not in choices:
            yield where.diagnostic((*path, key), f"{config[key]!r} is not one of "
                                   + ", ".join(choices))
    chunk = config.get("chunk_size")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        yield where.diagnostic((*path, "chunk_size"), "chunk_size must be a positive integer")


def _check_postgres_cdc(config: dict[str, Any], path: KeyPath, where: SourceMap
                        ) -> Iterator[Diagnostic]:
    yield from _require(config, "credentials", path, where, "postgres_cdc",
                        "credentials: \"{{ secret('DB_URL') }}\" (postgresql://...)")
    yield from _require(config, "tables", path, where, "postgres_cdc",
                        "tables: [customers, orders] (the tables to replicate)")
    for key in ("slot_name", "publication_name"):
        name = config.get(key)
        if isinstance(name, str) and not _SLOT_NAME.match(name):
            yield where.diagnostic(
                (*path, key), f"'{name}' is not a valid PostgreSQL {key.replace('_', ' ')}",
                "lowercase letters, digits and underscores, at most 63")


def _check_mysql_cdc(config: dict[str, Any], path: KeyPath, where: SourceMap
                     ) -> Iterator[Diagnostic]:
    yield from _require(config, "credentials", path, where, "mysql_cdc",
                        "credentials: \"{{ secret('DB_URL') }}\" (mysql://... or mariadb://...)")
    yield from _require(config, "tables", path, where, "mysql_cdc",
                        "tables: [customers, orders] (the tables to replicate)")
    tables = config.get("tables")
    if tables is not None and (not isinstance(tables, list)
                               or not all(isinstance(t, str) and t for t in tables)):
        yield where.diagnostic((*path, "tables"), "tables must be a list of table names")
    server_id = config.get("server_id")
    if server_id is not None and (not isinstance(server_id, int) or isinstance(server_id, bool)
                                  or not 1 <= server_id < 2**32):
        yield where.diagnostic((*path, "server_id"),
                               "server_id must be an integer from 1 to 4294967295",
                               "a number no MySQL server or replica of this source uses")


def _check_python(config: dict[str, Any], path: KeyPath, where: SourceMap
                  ) -> Iterator[Diagnostic]:
    """The shape of a python source (where its function lives: ``check_python_functions``)."""
    yield from _require(config, "function", path, where, "python",
                        "function: sources.stripe:stripe_source (module:function)")
    if "args" in config and not isinstance(config["args"], dict):
        yield where.diagnostic((*path, "args"), "args must be a mapping of keyword arguments",
                               "args: {start_date: '2024-01-01'}")
    resources = config.get("resources")
    if resources is not None and (not isinstance(resources, list) or not resources
                                  or not all(isinstance(r, str) and r for r in resources)):
        yield where.diagnostic((*path, "resources"), "resources must be a list of resource names",
                               "resources: [customers, charges]")


def _python_sources(floe: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any],
                                                             dict[str, Any]]]:
    """(index, source, source_config) of each python source."""
    for index, source in enumerate(_list(floe.get("sources"))):
        if isinstance(source, dict) and source.get("source_type") == "python":
            yield index, source, _dict(source.get("source_config"))


def check_python_functions(floe: dict[str, Any], where: SourceMap, project_dir: Path
                           ) -> list[Diagnostic]:
    """Each python source's ``function``: found where the run will import it from, by
    reading (never running) the project's modules."""
    found = []
    for index, _, config in _python_sources(floe):
        reference = config.get("function")
        if not isinstance(reference, str) or not reference:
            continue
        problem = check_reference(reference, project_dir)
        if problem is not None:
            found.append(where.diagnostic(("sources", index, "source_config", "function"),
                                          problem.message, problem.hint))
    return found


def probe_python_functions(floe: dict[str, Any], where: SourceMap, project_dir: Path
                           ) -> list[Diagnostic]:
    """``--deep``: each python source's function imported (in a child process) and its args
    bound to its signature; problems at the ``function`` line."""
    wanted = [(index, str(source.get("name")), config["function"], _dict(config.get("args")))
              for index, source, config in _python_sources(floe)
              if isinstance(config.get("function"), str) and ":" in config["function"]]
    problems = probe_functions(wanted, project_dir)
    return [where.diagnostic(("sources", index, "source_config", "function"), problem)
            for index, problem in sorted(problems.items())]


def _check_filesystem(config: dict[str, Any], path: KeyPath, where: SourceMap
                      ) -> Iterator[Diagnostic]:
    yield from _require(config, "bucket_url", path, where, "filesystem",
                        "bucket_url: data/landing (a local folder), file:// or s3:// URL")
    fmt = config.get("format")
    glob = str(config.get("file_glob", ""))
    if fmt is None:
        if not any(glob.endswith(ext) for ext in (".csv", ".jsonl", ".parquet")):
            yield where.diagnostic(path, "filesystem source_config needs 'format'",
                                   "format: csv | jsonl | parquet (or a file_glob ending in one)")
    elif fmt not in _FILE_FORMATS:
        yield where.diagnostic((*path, "format"), f"{fmt!r} is not one of "
                               + ", ".join(_FILE_FORMATS))


def _check_checks(source: dict[str, Any], path: KeyPath, where: SourceMap
                  ) -> Iterator[Diagnostic]:
    for index, check in enumerate(_list(source.get("checks"))):
        if "reconcile" in _dict(check) and source.get("source_type") == "rest_api":
            yield where.diagnostic(
                (*path, "checks", index, "reconcile"),
                "reconcile compares Bronze with its source; an API cannot be re-read as it "
                "was loaded",
                "use it on sql_database, postgres_cdc, mysql_cdc or filesystem sources")
        row_count = _dict(_dict(check).get("row_count"))
        low, high = row_count.get("min"), row_count.get("max")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield where.diagnostic((*path, "checks", index, "row_count"),
                                   f"min ({low}) is larger than max ({high})")


def _check_platform(platform: dict[str, Any], where: SourceMap) -> Iterator[Diagnostic]:
    for env_name, env in _dict(platform.get("environments")).items():
        catalog = _dict(_dict(env).get("catalog"))
        path: KeyPath = ("environments", env_name, "catalog")
        kind = catalog.get("type")
        if kind in {"sql", "rest"} and not catalog.get("uri"):
            yield where.diagnostic(path, f"a {kind} catalog needs 'uri'",
                                   "e.g. sqlite:///.floe/catalog.db (sql) or "
                                   "https://polaris.example/api/catalog (rest)")
        if kind == "sql" and not catalog.get("warehouse"):
            yield where.diagnostic(path, "a sql catalog needs 'warehouse'",
                                   "a folder such as .floe/warehouse, or s3://bucket/path")
        maintenance = _dict(env).get("maintenance")
        if isinstance(maintenance, dict):
            yield from _check_schedule(maintenance, ("environments", env_name, "maintenance"),
                                       where)


def _check_literal_credentials(node: Any, path: KeyPath, where: SourceMap
                               ) -> Iterator[Diagnostic]:
    """A credential written in clear text is refused: it would land in the artifact."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = (*path, key)
            if isinstance(value, str) and _CREDENTIAL_KEY.match(str(key)):
                if value and not has_secret_ref(value) and not _is_passwordless_url(key, value):
                    yield where.diagnostic(
                        child, f"'{key}' holds a literal credential",
                        f"use {{{{ secret('{_env_name(key)}') }}}} so the value is read from the "
                        "environment at run time and never stored")
            else:
                yield from _check_literal_credentials(value, child, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _check_literal_credentials(item, (*path, index), where)
    elif isinstance(node, str):
        match = _URL_WITH_PASSWORD.match(node)
        if match and not has_secret_ref(match.group(1)):
            yield where.diagnostic(path, "URL contains a literal password",
                                   "put the password in {{ secret('NAME') }}")


def _is_passwordless_url(key: str, value: str) -> bool:
    """``credentials: sqlite:///shop.db`` names a database, not a secret."""
    if key.lower() != "credentials" or "://" not in value:
        return False
    try:
        return urlsplit(value).password is None
    except ValueError:
        return False


def _env_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).upper()
