"""transform: on every source type, as users write it: the same people land with a computed
column, a hashed email, a masked IBAN, a rename, a drop and a filter, read back with pyiceberg.
Mistakes the compiler cannot see (a column the source lacks, a name already taken, a filter
that is not a condition, a missing salt) fail before anything commits, in the user's terms;
the salt never shows up in the artifact, a log line or an error."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from floe.runtime.verify import verify_source
from tests.runtime.harness import Project
from tests.servers import MariaDB, Postgres

SALT = "s3cr3t-salt-value"
ENV = {"PII_SALT": SALT}

TRANSFORM = """\
    transform:
      columns:
        full_name: "first_name || ' ' || last_name"
        email: {hash: sha256, salt: "{{ secret('PII_SALT') }}"}
        iban: {mask: "****{last 4}"}
      rename: {status: state}
      drop: [password_hash]
      where: "status <> 'test'"
"""

PEOPLE = [
    {"id": 1, "first_name": "Ada", "last_name": "Lovelace", "email": "ada@x.org",
     "iban": "DE89370400440532013000", "password_hash": "h1", "status": "ok"},
    {"id": 2, "first_name": "Tess", "last_name": "Ter", "email": "t@x.org",
     "iban": "GB00", "password_hash": "h2", "status": "test"},
    {"id": 3, "first_name": "Alan", "last_name": "Turing", "email": None,
     "iban": None, "password_hash": "h3", "status": "ok"},
]


def digest(value: str) -> str:
    return hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


def project_for(tmp_path: Path, source: str, transform: str = TRANSFORM) -> Project:
    project = Project(tmp_path)
    project.write("apiVersion: floe.dev/v1\nkind: DataProduct\n"
                  "metadata: {name: shop, version: 1.0.0}\nsources:\n"
                  + textwrap.indent(textwrap.dedent(source), "  ") + transform)
    return project


def verified(project: Project, environ: dict[str, str] | None = None) -> list[str]:
    """floe verify applies the transform to the source side: Bronze matches it."""
    env = {**ENV, **(environ or {})}
    artifacts = project.compile(env)
    reports = verify_source(artifacts.sources[0], project.catalog(), project.root,
                            environ=env)
    return [f"{r.status} {r.details()}".strip() for r in reports]


def assert_people_shaped(project: Project, table: str = "bronze.people") -> None:
    rows = {r["id"]: r for r in project.read(table)}
    assert set(rows) == {1, 3}
    ada = rows[1]
    assert ada["full_name"] == "Ada Lovelace"
    assert ada["email"] == digest("ada@x.org")
    assert ada["iban"] == "****3000"
    assert ada["state"] == "ok"
    assert "password_hash" not in ada and "status" not in ada
    assert rows[3]["email"] is None and rows[3]["iban"] is None
    assert rows[3]["full_name"] == "Alan Turing"


def run(project: Project, environ: dict[str, str] | None = None) -> Any:
    env = {**ENV, **(environ or {})}
    result = project.run(project.compile(env).sources[0].name, environ=env)
    assert result.success, result.errors
    return result


PG_SCHEMA = """
DROP TABLE IF EXISTS people;
CREATE TABLE people (id int PRIMARY KEY, first_name text, last_name text, email text,
                     iban text, password_hash text, status text);
INSERT INTO people VALUES
  (1, 'Ada', 'Lovelace', 'ada@x.org', 'DE89370400440532013000', 'h1', 'ok'),
  (2, 'Tess', 'Ter', 't@x.org', 'GB00', 'h2', 'test'),
  (3, 'Alan', 'Turing', NULL, NULL, 'h3', 'ok');
"""


@pytest.mark.parametrize("backend", ["adbc", "pyarrow"])
def test_sql_database(tmp_path: Path, postgres: Postgres, backend: str) -> None:
    """ADBC (floe's loader: shaped as extracted) and dlt's pyarrow backend (its reflected
    column hints type the rows: shaped from the normalized files)."""
    postgres.execute(PG_SCHEMA)
    project = project_for(tmp_path, """\
        - name: people
          source_type: sql_database
          destination_table: bronze.people
          source_config: {credentials: "{{ secret('PG_URL') }}", tables: [people],
                          backend: BACKEND}
        """.replace("BACKEND", backend))
    result = run(project, {"PG_URL": postgres.url})
    assert_people_shaped(project)
    assert result.rows_loaded == 2  # what landed, not what was read
    assert verified(project, {"PG_URL": postgres.url}) == ["match"]
    postgres.execute("UPDATE people SET email = 'other@x.org' WHERE id = 1")
    [report] = verified(project, {"PG_URL": postgres.url})
    assert report.startswith("mismatch missing in Bronze: row ")  # append: rows as a multiset


def test_filesystem_merge_deletes_a_row_updated_out_of_the_filter(tmp_path: Path) -> None:
    data = tmp_path / "landing"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PEOPLE))
    project = project_for(tmp_path, """\
        - name: people
          source_type: filesystem
          destination_table: bronze.people
          write_mode: merge
          primary_key: id
          source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
        """)
    run(project)
    assert_people_shaped(project)
    (data / "b.jsonl").write_text(json.dumps({**PEOPLE[0], "status": "test"}) + "\n"
                                  + json.dumps({**PEOPLE[1], "status": "ok"}) + "\n")
    run(project)
    rows = {r["id"]: r for r in project.read("bronze.people")}
    assert set(rows) == {2, 3}
    assert rows[2]["email"] == digest("t@x.org") and rows[2]["iban"] == "GB00"[-4:].rjust(8, "*")
    assert verified(project) == ["match"]
    # one load, two files: the last row of a key decides (as the merge keeps the last row)
    (data / "c.jsonl").write_text(json.dumps({**PEOPLE[2], "status": "ok", "id": 7}) + "\n"
                                  + json.dumps({**PEOPLE[1], "status": "ok"}) + "\n")
    (data / "d.jsonl").write_text(json.dumps({**PEOPLE[2], "status": "test", "id": 7}) + "\n"
                                  + json.dumps({**PEOPLE[0], "status": "ok"}) + "\n")
    run(project)
    assert sorted(r["id"] for r in project.read("bronze.people")) == [1, 2, 3]
    assert verified(project) == ["match"]


def test_rest_api_names_as_the_api_sends_them(tmp_path: Path, httpserver: HTTPServer) -> None:
    """A JSON key "e-mail address" arrives as dlt's e_mail_address: floe.yaml may name it
    either way."""
    people = [{**p, "e-mail address": p["email"]} for p in PEOPLE]
    httpserver.expect_request("/people").respond_with_json({"data": people})
    project = project_for(tmp_path, f"""\
        - name: people
          source_type: rest_api
          destination_table: bronze.people
          source_config:
            client: {{base_url: "{httpserver.url_for('/')}"}}
            resources:
              - name: people
                endpoint: {{path: /people, data_selector: data, paginator: single_page}}
        """, TRANSFORM.replace("rename: {status: state}",
                               'rename: {status: state, "e-mail address": email_raw}'))
    run(project)
    assert_people_shaped(project)
    assert {r["id"]: r["email_raw"] for r in project.read("bronze.people")} == {
        1: "ada@x.org", 3: None}


def test_python_source_next_to_floe_yaml(tmp_path: Path) -> None:
    (tmp_path / "people_source.py").write_text(textwrap.dedent(f"""\
        import dlt

        @dlt.resource(name="people")
        def people():
            yield {PEOPLE!r}
        """))
    project = project_for(tmp_path, """\
        - name: people
          source_type: python
          destination_table: bronze.people
          source_config: {function: "people_source:people"}
        """)
    run(project)
    assert_people_shaped(project)


def test_mysql_cdc(tmp_path: Path, mariadb: MariaDB) -> None:
    database = "tx_people"
    mariadb.execute(f"""DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database};
        USE {database};
        CREATE TABLE people (id int PRIMARY KEY, first_name text, last_name text, email text,
                             iban text, password_hash text, status text);
        INSERT INTO people VALUES
          (1, 'Ada', 'Lovelace', 'ada@x.org', 'DE89370400440532013000', 'h1', 'ok'),
          (2, 'Tess', 'Ter', 't@x.org', 'GB00', 'h2', 'test'),
          (3, 'Alan', 'Turing', NULL, NULL, 'h3', 'ok');""")
    url = mariadb.url.rsplit("/", 1)[0] + f"/{database}"
    project = project_for(tmp_path, """\
        - name: people
          source_type: mysql_cdc
          destination_table: bronze
          source_config: {credentials: "{{ secret('MYSQL_URL') }}", tables: [people]}
        """)
    run(project, {"MYSQL_URL": url})
    assert_people_shaped(project)
    mariadb.execute(f"USE {database}; UPDATE people SET status = 'test' WHERE id = 1; "
                    "UPDATE people SET status = 'ok' WHERE id = 2;")
    run(project, {"MYSQL_URL": url})
    rows = {r["id"]: r for r in project.read("bronze.people")}
    assert set(rows) == {2, 3} and rows[2]["full_name"] == "Tess Ter"
    assert verified(project, {"MYSQL_URL": url}) == ["match"]


# mistakes only the rows can show: named, and nothing commits -------------------------------

def _filesystem(tmp_path: Path, transform: str) -> Project:
    data = tmp_path / "landing"
    data.mkdir(exist_ok=True)
    (data / "a.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PEOPLE))
    return project_for(tmp_path, """\
        - name: people
          source_type: filesystem
          destination_table: bronze.people
          source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
        """, transform)


@pytest.mark.parametrize(("transform", "message"), [
    ("""    transform: {columns: {full_name: "frist_name || last_name"}}\n""",
     "transform.columns.full_name 'frist_name || last_name' reads column 'frist_name', "
     "which bronze.people does not "
     "have (did you mean 'first_name'?); its columns: id, first_name, last_name, email, iban, "
     "password_hash, status"),
    ("""    transform: {columns: {status: "upper(status)"}}\n""",
     "transform.columns.status: 'status' is already a column of bronze.people; add "
     "`replace: true` to overwrite it, or choose another name"),
    ("""    transform: {where: "last_name"}\n""",
     "transform.where 'last_name' gives string values, not true/false: write a condition, "
     "e.g. \"status <> 'test'\""),
    ("""    transform: {columns: {n: "CAST(iban AS BIGINT)"}}\n""",
     "transform.columns.n 'CAST(iban AS BIGINT)' failed on bronze.people at row 1: "
     "Conversion Error: Could not convert string 'DE89370400440532013000' to INT64"),
    ("""    transform: {columns: {email: {hash: sha256, salt: "{{ secret('NO_SALT') }}"}}}\n""",
     "transform.columns.email: secret 'NO_SALT' is not set"),
])
def test_mistakes_fail_before_the_commit(tmp_path: Path, transform: str, message: str) -> None:
    project = _filesystem(tmp_path, transform)
    result = project.run("people", environ=ENV)
    assert not result.success
    assert message in result.errors[0]
    catalog = project.catalog()
    assert not [t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)]


def test_replace_overwrites_and_the_table_and_cursor_stay_when_a_later_run_fails(
        tmp_path: Path) -> None:
    project = _filesystem(tmp_path, """\
    transform: {columns: {status: {expr: "upper(status)", replace: true}}}
""")
    run(project)
    assert [r["status"] for r in project.read("bronze.people")] == ["OK", "TEST", "OK"]
    before, snapshots = project.read("bronze.people"), project.snapshots("bronze.people")
    (tmp_path / "landing" / "b.jsonl").write_text(json.dumps({**PEOPLE[0], "id": 4}) + "\n")
    text = (tmp_path / "floe.yaml").read_text()
    (tmp_path / "floe.yaml").write_text(text.replace("upper(status)", "upper(statu)"))
    assert not project.run("people", environ=ENV).success
    assert project.read("bronze.people") == before
    assert project.snapshots("bronze.people") == snapshots
    (tmp_path / "floe.yaml").write_text(text)
    run(project)  # the file the failed run read is read again: the cursor had not moved
    assert [r["id"] for r in project.read("bronze.people")] == [1, 2, 3, 4]


def test_the_salt_is_never_in_the_artifact_logs_or_errors(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
        ) -> None:
    project = _filesystem(tmp_path, TRANSFORM.replace('"first_name', '"fist_name'))
    artifacts = project.compile(ENV)
    text = artifacts.to_json()
    assert SALT not in text and "${secret:PII_SALT}" in text
    with caplog.at_level(logging.DEBUG):
        result = project.run("people", environ=ENV)
    assert not result.success
    shown = caplog.text + capsys.readouterr().err + "".join(result.errors)
    assert "fist_name" in shown and SALT not in shown


def test_hashes_are_the_same_in_another_process(tmp_path: Path) -> None:
    """Deterministic across runs and machines: a second process hashes to the same values."""
    project = _filesystem(tmp_path, TRANSFORM)
    run(project)
    here = {r["id"]: r["email"] for r in project.read("bronze.people")}
    code = textwrap.dedent(f"""\
        import json, pyarrow as pa
        from floe.artifacts import TransformColumn, TransformConfig
        from floe.runtime.transforms import TableTransform
        config = TransformConfig(columns=(TransformColumn(
            name="email", kind="hash", salt="${{secret:PII_SALT}}", reads=("email",),
            replace=True),))
        table = pa.table({{"id": [1, 3], "email": ["ada@x.org", None]}})
        rows = TableTransform(config, {{"PII_SALT": {SALT!r}}}, "test").apply(
            table, "t", ["id"]).rows
        print(json.dumps(dict(zip(rows["id"].to_pylist(), rows["email"].to_pylist()))))
        """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert {int(k): v for k, v in json.loads(out).items()} == here
