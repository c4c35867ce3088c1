"""transform: on postgres_cdc against the suite's PostgreSQL: computed, hashed, masked,
renamed and dropped columns read back with pyiceberg after every run; a row updated out of
``where`` leaves Bronze and comes back when it passes again; soft-deleted rows and unchanged
TOASTed values (already transformed in Bronze) are never transformed twice; history closes a
version that leaves the filter."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floe.runtime.verify import verify_source
from tests.runtime.harness import Project
from tests.servers import Postgres

SALT = "pepper-for-tests"

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: {name}
    source_type: postgres_cdc
    destination_table: bronze
    {extra}
    source_config:
      credentials: "{{{{ secret('SHOP_PG_URL') }}}}"
      tables: [people]
    transform:
      columns:
        full_name: "first_name || ' ' || last_name"
        region: "CASE WHEN country IN ('DE', 'FR') THEN 'EU' ELSE 'other' END"
        notes_length: "length(notes)"
        email: {{hash: sha256, salt: "{{{{ secret('PII_SALT') }}}}"}}
        iban: {{mask: "****{{last 4}}"}}
        bio: {{mask: "{{first 2}}…"}}
      rename: {{notes: note_text}}
      drop: [password_hash]
      where: "status <> 'test'"
"""

SCHEMA = """
DROP TABLE IF EXISTS people;
CREATE TABLE people (id int PRIMARY KEY, first_name text, last_name text, country text,
                     email text, iban text, password_hash text, status text, notes text,
                     bio text);
INSERT INTO people VALUES
  (1, 'Ada', 'Lovelace', 'DE', 'ada@x.org', 'DE89370400440532013000', 'h1', 'ok', 'short', NULL),
  (2, 'Tess', 'Ter', 'US', 'tess@x.org', 'US0000001234', 'h2', 'test', NULL, NULL),
  (3, 'Alan', 'Turing', 'GB', NULL, NULL, 'h3', 'ok', NULL, NULL);
"""


def digest(value: str) -> str:
    return hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def people(tmp_path: Path, postgres: Postgres, request: pytest.FixtureRequest
           ) -> Iterator[tuple[Project, dict[str, str]]]:
    name = "tx_" + request.node.name.split("[")[0].removeprefix("test_")[:40]
    postgres.execute(SCHEMA)
    project = Project(tmp_path)
    project.write(PROJECT.format(name=name, extra=getattr(request, "param", "")))
    yield project, {"SHOP_PG_URL": postgres.url, "PII_SALT": SALT}
    postgres.drop_slot(f"floe_shop_{name}", publication=True)


def run(project: Project, environ: dict[str, str]) -> None:
    source = project.compile(environ).sources[0].name
    result = project.run(source, environ=environ)
    assert result.success, result.errors


def bronze(project: Project, deleted: bool = False) -> dict[int, dict[str, Any]]:
    rows = project.read("bronze.people")
    return {r["id"]: r for r in rows if deleted or not r.get("_floe_deleted_at")}


def test_columns_land_shaped_and_rows_follow_the_filter(
        people: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = people
    run(project, environ)
    rows = bronze(project)
    assert set(rows) == {1, 3}  # Tess is a test row
    ada = rows[1]
    assert ada["full_name"] == "Ada Lovelace" and ada["region"] == "EU"
    assert ada["email"] == digest("ada@x.org")
    assert ada["iban"] == "****3000"
    assert ada["note_text"] == "short" and ada["notes_length"] == 5
    assert "password_hash" not in ada and "notes" not in ada
    assert rows[3]["email"] is None and rows[3]["iban"] is None
    assert rows[3]["region"] == "other" and rows[3]["full_name"] == "Alan Turing"
    columns = project.columns("bronze.people")
    assert columns[:8] == ["id", "first_name", "last_name", "country", "email", "iban",
                           "status", "note_text"]
    assert {"full_name", "region", "notes_length"} <= set(columns)

    postgres.execute("""
        UPDATE people SET status = 'test' WHERE id = 1;            -- out of the filter
        UPDATE people SET status = 'ok', email = 'tess@y.org' WHERE id = 2;  -- into it
        INSERT INTO people VALUES (4, 'Grace', 'Hopper', 'FR', 'g@x.org', 'FR76300', 'h4',
                                   'ok', 'n', NULL);
        DELETE FROM people WHERE id = 3;
    """)
    run(project, environ)
    rows = bronze(project)
    assert set(rows) == {2, 4}
    assert rows[2]["email"] == digest("tess@y.org") and rows[2]["iban"] == "****1234"
    assert rows[4]["region"] == "EU" and rows[4]["iban"] == "****6300"

    postgres.execute("UPDATE people SET status = 'ok', last_name = 'King' WHERE id = 1;")
    run(project, environ)
    rows = bronze(project)
    assert set(rows) == {1, 2, 4}
    assert rows[1]["full_name"] == "Ada King" and rows[1]["email"] == digest("ada@x.org")
    artifacts = project.compile(environ)  # floe verify shapes the source side the same way
    [report] = verify_source(artifacts.sources[0], project.catalog(), project.root,
                             environ=environ)
    assert (report.status, report.source_rows, report.bronze_rows) == ("match", 3, 3)


def test_unchanged_toasted_values_keep_their_transformed_value(
        people: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    """PostgreSQL leaves an unchanged TOASTed value out of an update; Bronze holds it already
    renamed and measured, and keeps it so (never transformed twice, never null)."""
    project, environ = people
    big = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(6000))  # incompressible
    postgres.execute(f"UPDATE people SET notes = '{big}', bio = '{big}' WHERE id = 1;")
    run(project, environ)
    postgres.execute("UPDATE people SET country = 'FR', email = 'ada@y.org' WHERE id = 1;")
    run(project, environ)
    ada = bronze(project)[1]
    assert ada["note_text"] == big and ada["notes_length"] == len(big)
    assert ada["bio"] == big[:2] + "…"  # masked once, and kept although not sent again
    assert ada["region"] == "EU" and ada["email"] == digest("ada@y.org")


@pytest.mark.parametrize("people", ["deletes: soft"], indirect=True)
def test_soft_deleted_rows_keep_their_hash(
        people: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = people
    run(project, environ)
    postgres.execute("DELETE FROM people WHERE id = 1;")
    run(project, environ)
    ada = bronze(project, deleted=True)[1]
    assert ada["_floe_deleted_at"] is not None
    assert ada["email"] == digest("ada@x.org") and ada["iban"] == "****3000"
    assert ada["full_name"] == "Ada Lovelace"


@pytest.mark.parametrize("people", ["merge_strategy: scd2"], indirect=True)
def test_history_closes_a_version_that_leaves_the_filter(
        people: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = people
    run(project, environ)
    postgres.execute("UPDATE people SET last_name = 'L.' WHERE id = 1;")  # two commits
    postgres.execute("UPDATE people SET status = 'test' WHERE id = 1;")
    run(project, environ)
    versions = sorted((r for r in project.read("bronze.people") if r["id"] == 1),
                      key=lambda r: r["_floe_valid_from"])
    assert [v["full_name"] for v in versions] == ["Ada Lovelace", "Ada L."]
    assert all(v["email"] == digest("ada@x.org") for v in versions)
    assert not any(v["_floe_is_current"] for v in versions)  # closed when it left the filter
    assert versions[0]["_floe_valid_to"] == versions[1]["_floe_valid_from"]
    assert versions[1]["_floe_valid_to"] > versions[1]["_floe_valid_from"]
    postgres.execute("UPDATE people SET status = 'ok' WHERE id = 1;")  # back in: a version
    run(project, environ)
    current = [r for r in project.read("bronze.people") if r["id"] == 1 and r["_floe_is_current"]]
    assert [(r["full_name"], r["status"]) for r in current] == [("Ada L.", "ok")]


def test_a_transform_that_cannot_apply_commits_nothing(
        people: tuple[Project, dict[str, str]], postgres: Postgres) -> None:
    project, environ = people
    run(project, environ)
    before = project.read("bronze.people")
    snapshots = project.snapshots("bronze.people")
    text = (project.root / "floe.yaml").read_text()
    project.write(text.replace('notes_length: "length(notes)"',
                               'notes_length: "CAST(first_name AS INTEGER)"'))
    postgres.execute("UPDATE people SET first_name = 'Ada2' WHERE id = 1;")
    result = project.run(project.compile(environ).sources[0].name, environ=environ)
    assert not result.success
    assert ("transform.columns.notes_length 'CAST(first_name AS INTEGER)' failed on "
            "bronze.people at the row with id=1: Conversion Error") in result.errors[0]
    assert project.read("bronze.people") == before
    assert project.snapshots("bronze.people") == snapshots
    project.write(text)  # fixed: the same change lands (the slot kept it)
    run(project, environ)
    assert bronze(project)[1]["full_name"] == "Ada2 Lovelace"
