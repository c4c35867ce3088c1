"""merge_strategy scd2: every version of every row, read back with its validity (#20)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from tests.runtime.harness import Project

FILES = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: people
    source_type: filesystem
    destination_table: bronze.people
    write_mode: merge
    merge_strategy: scd2
    primary_key: id
    delete_column: deleted
    history:
      valid_from_column: updated_at
      track_columns: [email]
    source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
"""


def _drop(root: Path, name: str, rows: list[dict[str, Any]]) -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps({"deleted": False, **r}) + "\n"
                                       for r in rows))


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _timeline(project: Project, key: int) -> list[tuple[Any, ...]]:
    rows = [r for r in project.read("bronze.people") if r["id"] == key]
    return sorted((r["email"], r["_floe_valid_from"], r["_floe_valid_to"], r["_floe_is_current"])
                  for r in rows)


def test_versions_open_close_skip_unchanged_land_late_data_in_place_and_return(
        tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(FILES)
    _drop(tmp_path, "1.jsonl", [
        {"id": 1, "email": "a@x", "name": "Ada", "updated_at": "2024-01-01T00:00:00"},
        {"id": 2, "email": "b@x", "name": "Bob", "updated_at": "2024-01-01T00:00:00"}])
    first = project.run("people")
    assert first.success, first.errors
    assert _timeline(project, 1) == [("a@x", _t("2024-01-01"), None, True)]
    # a change, and an untracked change (name) with the same email: no new version for 2
    _drop(tmp_path, "2.jsonl", [
        {"id": 1, "email": "a2@x", "name": "Ada", "updated_at": "2024-02-01T00:00:00"},
        {"id": 2, "email": "b@x", "name": "Robert", "updated_at": "2024-02-01T00:00:00"}])
    assert project.run("people").success
    assert _timeline(project, 1) == [("a2@x", _t("2024-02-01"), None, True),
                                     ("a@x", _t("2024-01-01"), _t("2024-02-01"), False)]
    assert _timeline(project, 2) == [("b@x", _t("2024-01-01"), None, True)]
    # three versions of one key in one load; late data for 2, before its first version
    _drop(tmp_path, "3.jsonl", [
        {"id": 1, "email": "a3@x", "name": "Ada", "updated_at": "2024-03-01T00:00:00"},
        {"id": 1, "email": "a4@x", "name": "Ada", "updated_at": "2024-03-02T00:00:00"},
        {"id": 1, "email": "a5@x", "name": "Ada", "updated_at": "2024-03-03T00:00:00"},
        {"id": 2, "email": "z@x", "name": "Bob", "updated_at": "2023-12-01T00:00:00"}])
    third = project.run("people")
    assert third.success, third.errors
    assert [v[0] for v in sorted(_timeline(project, 1), key=lambda v: v[1])] == [
        "a@x", "a2@x", "a3@x", "a4@x", "a5@x"]
    assert _timeline(project, 2) == [("b@x", _t("2024-01-01"), None, True),
                                     ("z@x", _t("2023-12-01"), _t("2024-01-01"), False)]
    # a delete closes the open version; the key comes back with a new one
    _drop(tmp_path, "4.jsonl", [{"id": 1, "email": "a5@x", "name": "Ada", "deleted": True,
                                 "updated_at": "2024-04-01T00:00:00"}])
    assert project.run("people").success
    assert not any(v[3] for v in _timeline(project, 1))
    assert max(v[2] for v in _timeline(project, 1)) == _t("2024-04-01")
    _drop(tmp_path, "5.jsonl", [{"id": 1, "email": "back@x", "name": "Ada",
                                 "updated_at": "2024-05-01T00:00:00"}])
    assert project.run("people").success
    timeline = sorted(_timeline(project, 1), key=lambda v: v[1])
    assert [(v[0], v[2], v[3]) for v in timeline[-2:]] == [
        ("a5@x", _t("2024-04-01"), False), ("back@x", None, True)]
    assert timeline[-1][1] == _t("2024-05-01")
    snapshot = project.catalog().load_table(("bronze", "people")).current_snapshot()
    assert snapshot.summary["floe.history.versions-opened"] == "1"


SQLITE = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: accounts
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    merge_strategy: scd2
    primary_key: id
    history: {retire_absent: true}
    source_config:
      credentials: sqlite:///crm.db
      tables: [accounts]
"""


def test_a_full_extract_retires_the_keys_it_no_longer_sends(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "crm.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, plan TEXT)")
        db.executemany("INSERT INTO accounts VALUES (?, ?)", [(1, "free"), (2, "pro"), (3, "pro")])
    project = Project(tmp_path)
    project.write(SQLITE)
    assert project.run("accounts").success
    assert project.run("accounts").success  # re-sent unchanged: nothing new
    assert len(project.read("bronze.accounts")) == 3
    with sqlite3.connect(tmp_path / "crm.db") as db:
        db.execute("DELETE FROM accounts WHERE id = 2")
        db.execute("UPDATE accounts SET plan = 'team' WHERE id = 3")
    result = project.run("accounts")
    assert result.success, result.errors
    rows = project.read("bronze.accounts")
    current = sorted((r["id"], r["plan"]) for r in rows if r["_floe_is_current"])
    closed = sorted((r["id"], r["plan"]) for r in rows if not r["_floe_is_current"])
    assert current == [(1, "free"), (3, "team")]
    assert closed == [(2, "pro"), (3, "pro")]
    assert all(r["_floe_valid_to"] is not None for r in rows if not r["_floe_is_current"])
    assert [t.versions_closed for t in result.tables] == [2]
    assert [t.versions_opened for t in result.tables] == [1]
    # floe verify and checks look at the current versions (the closed ones were checked)
    from floe.artifacts import RowCountCheck, UniqueCheck
    from floe.runtime.quality import evaluate
    from floe.runtime.verify import verify_source

    [report] = verify_source(project.compile().source("accounts"), project.catalog(),
                             project.root)
    assert (report.status, report.source_rows, report.bronze_rows) == ("match", 2, 2), report
    table = project.catalog().load_table(("bronze", "accounts"))
    assert evaluate(table, UniqueCheck(columns=("id",))).passed
    assert evaluate(table, RowCountCheck(min=2, max=2)).passed


def test_as_of_reads_the_versions_valid_at_a_source_time(tmp_path: Path) -> None:
    import floe
    from floe.errors import FloeError

    project = Project(tmp_path)
    project.write(FILES)
    _drop(tmp_path, "1.jsonl", [
        {"id": 1, "email": "a@x", "updated_at": "2024-01-01T00:00:00"},
        {"id": 2, "email": "b@x", "updated_at": "2024-01-15T00:00:00"}])
    assert project.run("people").success
    _drop(tmp_path, "2.jsonl", [
        {"id": 1, "email": "a2@x", "updated_at": "2024-02-01T00:00:00"},
        {"id": 2, "email": "b@x", "deleted": True, "updated_at": "2024-03-01T00:00:00"}])
    assert project.run("people").success
    artifacts = project.root / "target" / "compiled_artifacts.json"

    def at(instant: str) -> list[tuple[int, str]]:
        rows = floe.as_of("bronze.people", instant, artifacts=artifacts).to_pylist()
        return sorted((r["id"], r["email"]) for r in rows)

    assert at("2023-12-31T00:00:00Z") == []
    assert at("2024-01-20T00:00:00Z") == [(1, "a@x"), (2, "b@x")]
    assert at("2024-02-01T00:00:00+00:00") == [(1, "a2@x"), (2, "b@x")]  # from is inclusive
    assert at("2024-03-01T00:00:00") == [(1, "a2@x")]  # the delete's instant: gone
    from tests.examples.test_first_hour_cli import floe as floe_cli

    shown = floe_cli("show", "bronze.people", "--as-of", "2024-01-20T00:00:00Z",
                     cwd=project.root)
    assert shown.returncode == 0, shown.stderr
    assert "rows valid at 2024-01-20T00:00:00Z" in shown.stdout
    assert "a@x" in shown.stdout and "b@x" in shown.stdout and "a2@x" not in shown.stdout
    try:
        floe.as_of("bronze.people", "March", artifacts=artifacts)
    except FloeError as exc:
        assert str(exc) == "--as-of 'March' is not an ISO time, e.g. 2024-03-31T23:59:59Z"
    else:
        raise AssertionError("a bad time must be refused")


def test_switching_history_on_or_off_needs_a_full_refresh(tmp_path: Path) -> None:
    import sqlite3

    from floe.compiler.plan import plan

    with sqlite3.connect(tmp_path / "crm.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, plan TEXT)")
        db.executemany("INSERT INTO accounts VALUES (?, ?)", [(1, "free"), (2, "pro")])
    project = Project(tmp_path)
    upsert = SQLITE.replace("    merge_strategy: scd2\n", "").replace(
        "    history: {retire_absent: true}\n", "")
    project.write(upsert)
    before = project.compile()
    assert project.run("accounts").success
    project.write(SQLITE)
    [change] = [c for c in plan(before, project.compile()) if c.field == "merge_strategy"]
    assert "history turns on" in str(change.risk) and "--full-refresh" in str(change.risk)
    refused = project.run("accounts")
    assert not refused.success and refused.error_category == "CONFIGURATION"
    assert "bronze.accounts holds one row per key (loaded without history): merge_strategy " \
        "scd2 starts its history with floe run --full-refresh" in refused.errors[0]
    assert len(project.read("bronze.accounts")) == 2  # untouched
    assert project.run("accounts", full_refresh=True).success
    assert all(r["_floe_is_current"] for r in project.read("bronze.accounts"))
    project.write(upsert)  # and back: refused until a full refresh
    back = project.run("accounts")
    assert not back.success and "keeps history (merge_strategy scd2)" in back.errors[0]
    assert project.run("accounts", full_refresh=True).success
    assert "_floe_is_current" not in project.catalog().load_table(
        ("bronze", "accounts")).schema().column_names


def test_a_valid_from_column_the_load_cannot_use_is_named_and_nothing_commits(
        tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(FILES)
    _drop(tmp_path, "1.jsonl", [{"id": 1, "email": "a@x", "updated_at": "2024-01-01T00:00:00"}])
    assert project.run("people").success
    snapshots = len(project.catalog().load_table(("bronze", "people")).snapshots())
    _drop(tmp_path, "2.jsonl", [{"id": 1, "email": "b@x", "updated_at": None},
                                {"id": 2, "email": "c@x", "updated_at": "2024-02-01T00:00:00"}])
    nulls = project.run("people")
    assert not nulls.success and nulls.error_category == "CONFIGURATION"
    assert nulls.errors[0].startswith(
        "history.valid_from_column updated_at: 1 row(s) of bronze.people have no updated_at: "
        "a version needs the time it became valid"), nulls.errors
    project.write(FILES.replace("track_columns: [email]", "track_columns: [mail]"))
    tracked = project.run("people")
    assert not tracked.success and tracked.error_category == "CONFIGURATION"
    assert tracked.errors[0].startswith(
        "history.track_columns: bronze.people has no column mail; its columns: deleted, id, "
        "email, updated_at"), tracked.errors
    project.write(FILES.replace("valid_from_column: updated_at", "valid_from_column: email"))
    text = project.run("people")
    assert not text.success
    assert "history.valid_from_column email: bronze.people.email is string, not a timestamp " \
        "or date" in text.errors[0], text.errors
    assert len(project.catalog().load_table(("bronze", "people")).snapshots()) == snapshots


def test_a_partitioned_history_table_keeps_its_versions_in_its_partitions(
        tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(FILES.replace("    primary_key: id\n",
                                "    primary_key: id\n    partition_by: [bucket(4, id)]\n"))
    _drop(tmp_path, "1.jsonl", [{"id": i, "email": f"{i}@x", "updated_at": "2024-01-01T00:00:00"}
                                for i in range(1, 9)])
    assert project.run("people").success
    _drop(tmp_path, "2.jsonl", [{"id": i, "email": f"{i}@y", "updated_at": "2024-02-01T00:00:00"}
                                for i in (2, 5)])
    assert project.run("people").success
    table = project.catalog().load_table(("bronze", "people"))
    assert [f.transform.__class__.__name__ for f in table.spec().fields] == ["BucketTransform"]
    rows = project.read("bronze.people")
    assert len(rows) == 10
    assert sorted(r["id"] for r in rows if not r["_floe_is_current"]) == [2, 5]
    assert _timeline(project, 5) == [("5@x", _t("2024-01-01"), _t("2024-02-01"), False),
                                     ("5@y", _t("2024-02-01"), None, True)]


def test_two_history_runs_overlapping_are_fenced(tmp_path: Path, monkeypatch: Any) -> None:
    """Run B reads, then run A (started later) commits first: B writes nothing, so no version
    is closed twice or opened twice."""
    import sqlite3

    from floe.runtime.iceberg import commit as commit_module
    from floe.runtime.ingestion import runner

    with sqlite3.connect(tmp_path / "crm.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, plan TEXT)")
        db.executemany("INSERT INTO accounts VALUES (?, ?)", [(1, "free"), (2, "pro")])
    project = Project(tmp_path)
    project.write(SQLITE)
    assert project.run("accounts").success
    with sqlite3.connect(tmp_path / "crm.db") as db:
        db.execute("UPDATE accounts SET plan = 'team' WHERE id = 1")
    real = commit_module.commit_table_load
    raced: list[bool] = []

    def other_run_commits_first(catalog: Any, load: Any, attempts: int = 5) -> Any:
        if not raced:
            raced.append(True)
            monkeypatch.setattr(runner, "commit_table_load", real)
            assert project.run("accounts").success
        return real(catalog, load, attempts)

    monkeypatch.setattr(runner, "commit_table_load", other_run_commits_first)
    loser = project.run("accounts")
    assert not loser.success
    assert "another run of this source committed to bronze.accounts first" in loser.errors[0]
    rows = project.read("bronze.accounts")
    assert sorted((r["id"], r["plan"], r["_floe_is_current"]) for r in rows) == [
        (1, "free", False), (1, "team", True), (2, "pro", True)]


def test_floe_changes_tells_versions_opened_and_closed(tmp_path: Path) -> None:
    import floe

    project = Project(tmp_path)
    project.write(FILES)
    _drop(tmp_path, "1.jsonl", [{"id": 1, "email": "a@x", "updated_at": "2024-01-01T00:00:00"},
                                {"id": 2, "email": "b@x", "updated_at": "2024-01-01T00:00:00"}])
    assert project.run("people").success
    before = project.catalog().load_table(("bronze", "people")).current_snapshot()
    _drop(tmp_path, "2.jsonl", [{"id": 1, "email": "a2@x", "updated_at": "2024-02-01T00:00:00"},
                                {"id": 3, "email": "c@x", "updated_at": "2024-02-01T00:00:00"}])
    assert project.run("people").success
    found = floe.changes("bronze.people", since=before.snapshot_id,
                         artifacts=project.root / "target" / "compiled_artifacts.json")
    assert sorted((r["_change_type"], r["id"], r["email"], r["_floe_valid_to"] is None)
                  for r in found.to_pylist()) == [
        ("closed", 1, "a@x", False), ("opened", 1, "a2@x", True), ("opened", 3, "c@x", True)]


def test_maintain_keeps_every_version_and_dagster_shows_them(
        tmp_path: Path, monkeypatch: Any) -> None:
    """floe maintain compacts a history table's files and deletes, never its versions; a
    Dagster materialization carries the versions a load opened and closed."""
    import datetime as dt
    import sqlite3

    import dagster as dg

    from floe.runtime.dagster import build_definitions
    from floe.runtime.maintain import maintain_source

    with sqlite3.connect(tmp_path / "crm.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, plan TEXT)")
        db.executemany("INSERT INTO accounts VALUES (?, ?)", [(1, "free"), (2, "pro")])
    project = Project(tmp_path)
    project.write(SQLITE)
    artifacts = project.compile()
    monkeypatch.chdir(tmp_path)
    defs = build_definitions(project.root / "target" / "compiled_artifacts.json")
    [assets] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert dg.materialize([assets]).success
    for plan in ("team", "enterprise"):
        with sqlite3.connect(tmp_path / "crm.db") as db:
            db.execute("UPDATE accounts SET plan = ? WHERE id = 1", (plan,))
        run = dg.materialize([assets])
        assert run.success
    [event] = run.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert (metadata["versions_opened"].value, metadata["versions_closed"].value) == (1, 1)
    before = sorted((r["id"], r["plan"], r["_floe_valid_from"], r["_floe_valid_to"])
                    for r in project.read("bronze.accounts"))
    assert len(before) == 4
    catalog = project.catalog()
    maintain_source(catalog, artifacts.source("accounts"), dt.timedelta(0), 1)
    after = sorted((r["id"], r["plan"], r["_floe_valid_from"], r["_floe_valid_to"])
                   for r in project.read("bronze.accounts"))
    assert after == before
