"""``floe plan``: what a new compile changes compared with the last artifacts.

Changes that can lose or duplicate data on the next run are flagged as risky, so a reviewer
sees them before they land (like ``terraform plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from floe.artifacts import CompiledArtifacts, CompiledSource

_RISKY_WRITE_MODES = {
    ("append", "replace"): "replace overwrites the whole table on the next run",
    ("merge", "replace"): "replace overwrites the whole table on the next run",
    ("merge", "append"): "append no longer deduplicates on the primary key: re-sent rows "
                         "become duplicates",
}
_IGNORED = {"source_config"}


@dataclass(frozen=True)
class Change:
    source: str
    kind: str  # added | removed | changed | environment
    field: str = ""
    before: Any = None
    after: Any = None
    risk: str | None = None


def _risk(field: str, before: Any, after: Any, new: CompiledSource) -> str | None:
    if field == "write_mode":
        return _RISKY_WRITE_MODES.get((before, after))
    if field == "schema_contract" and after == "freeze":
        return "freeze rejects the next load if the source schema changed since the last run"
    if field == "primary_key" and new.write_mode == "merge":
        return "rows are matched on different columns from now on"
    if field in {"destination_table", "namespace", "table"}:
        return "data lands in a different table; the old one is kept but no longer loaded"
    if field == "cursor_field":
        return "the incremental cursor changes: run with --full-refresh to reload consistently"
    if field == "merge_strategy" and "scd2" in (before, after):
        return ("history turns " + ("on" if after == "scd2" else "off") + ": the table's rows "
                "change meaning (every version vs one per key); the next run refuses to mix "
                "them: run floe run --full-refresh")
    if field == "merge_strategy" and before and after:
        return "delete-insert and upsert treat duplicate keys in a load differently"
    return None


_REPLICATION_RISKS = {
    "tables": "tables added are copied on the next run; tables removed leave the "
              "publication and are no longer replicated (their Bronze tables are kept)",
    "schema": "a different schema's tables are replicated: every table is copied again",
    "slot_name": "a new replication slot: every table is copied again on the next run; drop "
                 "the old slot (SELECT pg_drop_replication_slot(...)) or PostgreSQL keeps its "
                 "WAL forever",
    "publication_name": "a new publication is created; drop the old one when nothing uses it",
}
_BINLOG_RISKS = {
    "tables": "tables added are copied on the next run, then follow the binlog; tables "
              "removed are no longer replicated (their Bronze tables are kept)",
    "server_id": "the binlog is read under another replica id (nothing is copied again); "
                 "make sure no other replica uses it",
    "credentials": "another server or account: if it is another server, its binlog "
                   "positions differ: floe run --full-refresh copies the tables again",
}
_RISKS = {"postgres_cdc": _REPLICATION_RISKS, "mysql_cdc": _BINLOG_RISKS}


def _replication_changes(old: CompiledSource, new: CompiledSource) -> list[Change]:
    """CDC sources: the parts of source_config that move where the stream is read from (the
    slot or the publication; the binlog replica), each with what it means."""
    return [Change(new.name, "changed", f"source_config.{key}", old.source_config.get(key),
                   new.source_config.get(key), risk)
            for key, risk in _RISKS[new.source_type].items()
            if old.source_config.get(key) != new.source_config.get(key)]


_MEANING = "Bronze's meaning changes: rows loaded before keep the old shape; floe run " \
    "--full-refresh reshapes every row"


def _transform_changes(old: CompiledSource, new: CompiledSource) -> list[Change]:
    """``transform:`` changes, one per column, rename, drop and filter: each changes what
    Bronze's rows mean from the next run on (a warning, with what it does to old rows)."""
    before = old.transform.model_dump(mode="json") if old.transform else {}
    after = new.transform.model_dump(mode="json") if new.transform else {}
    old_columns = {c["name"]: c for c in before.get("columns", [])}
    new_columns = {c["name"]: c for c in after.get("columns", [])}
    changes = []
    for name in dict.fromkeys([*old_columns, *new_columns]):
        was, now = old_columns.get(name), new_columns.get(name)
        if was == now:
            continue
        if was and now and was.get("salt") != now.get("salt"):
            risk = "a new salt: new hashes no longer match those already in Bronze"
        elif now is None:
            risk = "no longer computed: the Bronze column stays, and is null from now on"
        else:
            risk = _MEANING
        changes.append(Change(new.name, "changed", f"transform.columns.{name}",
                              was and (was.get("expression") or was["kind"]),
                              now and (now.get("expression") or now["kind"]), risk))
    for key in ("rename", "drop", "where"):
        if before.get(key) != after.get(key):
            changes.append(Change(new.name, "changed", f"transform.{key}", before.get(key),
                                  after.get(key), _MEANING))
    return changes


_WHERE = {"destination_table", "namespace", "table", "resources"}


def landing_tables(source: CompiledSource) -> set[str]:
    """The Iceberg tables a source lands in, by their resolved names (``bronze.customers``
    whether floe.yaml wrote ``bronze.customers`` or ``bronze`` with ``tables: [customers]``)."""
    return {f"{source.namespace}.{source.table_for(r)}" for r in source.resources}


def _source_changes(old: CompiledSource, new: CompiledSource) -> list[Change]:
    before = old.model_dump(mode="json")
    after = new.model_dump(mode="json")
    changes = []
    same_tables = bool(new.resources) and landing_tables(old) == landing_tables(new)
    for field, value in after.items():
        if field in _WHERE and same_tables:  # written differently, the same tables
            continue
        if field == "source_config" and new.source_type in _RISKS and (
                new.source_type == old.source_type):
            changes += _replication_changes(old, new)
            continue
        if field == "transform":
            changes += _transform_changes(old, new)
            continue
        if before.get(field) != value:
            risk = None if field in _IGNORED else _risk(field, before.get(field), value, new)
            changes.append(Change(new.name, "changed", field, before.get(field), value, risk))
    return changes


def plan(old: CompiledArtifacts | None, new: CompiledArtifacts) -> list[Change]:
    """Changes from ``old`` to ``new``; with no previous artifacts every source is added."""
    if old is None:
        return [Change(s.name, "added") for s in new.sources]
    changes: list[Change] = []
    if old.environment != new.environment:
        changes.append(Change("", "environment", "environment", old.environment.name,
                              new.environment.name,
                              "tables are read from and written to a different catalog"))
    old_sources = {s.name: s for s in old.sources}
    new_sources = {s.name: s for s in new.sources}
    for name, source in new_sources.items():
        if name not in old_sources:
            changes.append(Change(name, "added"))
        else:
            changes += _source_changes(old_sources[name], source)
    for name in old_sources:
        if name not in new_sources:
            changes.append(Change(name, "removed", risk="no longer loaded; its tables are kept"))
    return changes
