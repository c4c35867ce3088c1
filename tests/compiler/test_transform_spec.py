"""transform: in floe.yaml: compiled into the artifact without secrets, every mistake at its
line and column (inside an expression too), and floe.expressions' grammar: what it accepts
prints SQL DuckDB runs; what it refuses (files, environment, subqueries) it refuses by name."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from floe.expressions import FUNCTIONS, ExpressionError, parse, parse_mask
from tests.compiler.helpers import compile_text, errors_of

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: people
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    primary_key: id
    source_config: {credentials: "sqlite:///crm.db", tables: [people]}
    transform:
      columns:
        full_name: "first_name || ' ' || last_name"
        region: {expr: "upper(country)", replace: true}
        email: {hash: sha256, salt: "{{ secret('PII_SALT') }}"}
        iban: {mask: "****{last 4}"}
        phone: {mask: null}
      rename: {"e-mail address": email_raw}
      drop: [password_hash]
      where: "status <> 'test'"
"""


def test_the_artifact_holds_each_transform_and_no_secret(tmp_path: Path) -> None:
    [source] = compile_text(tmp_path, PROJECT, environ={"PII_SALT": "do-not-store"}).sources
    transform = source.transform
    assert transform is not None
    by_name = {c.name: c for c in transform.columns}
    assert by_name["full_name"].kind == "expression"
    assert by_name["full_name"].reads == ("first_name", "last_name")
    assert by_name["region"].replace and by_name["region"].reads == ("country",)
    assert (by_name["email"].kind, by_name["email"].salt, by_name["email"].replace) == (
        "hash", "${secret:PII_SALT}", True)
    assert (by_name["iban"].mask, by_name["phone"].mask) == ("****{last 4}", None)
    assert transform.rename == {"e-mail address": "email_raw"}
    assert transform.drop == ("password_hash",)
    assert (transform.where, transform.where_reads) == ("status <> 'test'", ("status",))
    assert "do-not-store" not in compile_text(tmp_path, PROJECT).to_json()


def _with(transform: str) -> str:
    head = PROJECT.split("    transform:\n")[0]
    return head + "    transform:\n" + transform


@pytest.mark.parametrize(("transform", "expected"), [
    ('      columns: {x: "first_name ||"}\n',
     "12:34: sources[0].transform.columns.x: unexpected end of expression in 'first_name ||'"),
    ('      columns: {x: "getenv(\'HOME\')"}\n',
     "12:21: sources[0].transform.columns.x: function getenv() is not allowed in floe.yaml "
     "expressions in \"getenv('HOME')\""),
    ('      columns: {x: "read_csv(\'/etc/passwd\')"}\n',
     "12:21: sources[0].transform.columns.x: function read_csv() is not allowed in floe.yaml "
     "expressions in \"read_csv('/etc/passwd')\""),
    ('      where: "id IN (SELECT id FROM people)"\n',
     "12:22: sources[0].transform.where: subqueries are not allowed in "
     "'id IN (SELECT id FROM people)'"),
    ("      columns:\n        x: |\n          CASE WHEN a > 1\n"
     "            THEN current_setting('x') END\n",
     "15:18: sources[0].transform.columns.x: function current_setting() is not allowed in "
     "floe.yaml expressions in \"CASE WHEN a > 1\\n  THEN current_setting('x') END\\n\""),
    ('      columns: {email: {hash: sha256, salt: "abc"}}\n',
     "12:45: sources[0].transform.columns.email.salt: the salt is written literally: it would "
     "be stored in the artifact, and anyone who reads it can recompute every hash"),
    ('      columns: {iban: {mask: "****{last four}"}}\n',
     "12:35: sources[0].transform.columns.iban.mask: '{last four}' is not a mask placeholder"),
    ('      columns: {id: {hash: sha256, salt: "{{ secret(\'S\') }}"}}\n',
     "12:17: sources[0].transform.columns.id: 'id' is the primary key: hashing it in place "
     "would break matching rows and deletes"),
    ('      columns: {id: {expr: "id + 1", replace: true}}\n',
     "12:38: sources[0].transform.columns.id.replace: 'id' is the primary key: rewriting it "
     "would break matching rows and deletes"),
    ("      rename: {id: person_id}\n",
     "12:16: sources[0].transform.rename.id: 'id' is the primary key: renaming it would break "
     "matching rows and deletes"),
    ("      drop: [id]\n",
     "12:14: sources[0].transform.drop[0]: 'id' is the primary key: dropping it would break "
     "matching rows and deletes"),
    ('      columns: {_floe_x: "1"}\n',
     "12:17: sources[0].transform.columns._floe_x: '_floe_x' starts with a prefix floe keeps "
     "for its own columns"),
])
def test_mistakes_are_located(tmp_path: Path, transform: str, expected: str) -> None:
    assert errors_of(tmp_path, _with(transform)) == [expected]


def test_a_computed_key_is_allowed(tmp_path: Path) -> None:
    """The key may itself be computed (a new column named as primary_key)."""
    text = _with('      columns: {person_key: "tenant || \'-\' || id"}\n').replace(
        "primary_key: id", "primary_key: person_key")
    [source] = compile_text(tmp_path, text).sources
    assert source.transform is not None and source.primary_key == ("person_key",)


# the grammar ---------------------------------------------------------------------------------

ACCEPTED = [
    "first_name || ' ' || last_name",
    "CASE WHEN country IN ('DE', 'FR') THEN 'EU' ELSE 'other' END",
    "CASE country WHEN 'DE' THEN 1 WHEN 'FR' THEN 2 END",
    "amount * 1.19 + -fee / 2 % 3",
    "-amount::integer",
    "CAST(code AS DECIMAL(10, 2)) BETWEEN 1 AND 10 OR NOT status LIKE 't%'",
    "TRY_CAST(code AS BIGINT) IS NULL",
    "coalesce(nullif(trim(last_name), ''), 'n/a')",
    "status NOT IN ('x', 'y') AND status IS NOT NULL",
    "date_trunc('month', created::date) >= DATE '2024-01-01'",
    "\"e-mail address\" ILIKE '%@example.com'",
    "round(amount, 2) <> 0 AND flag IS TRUE",
    "regexp_replace(phone, '[^0-9]', '', 'g')",
    "if(amount > 100, 'big', 'small')",
]

REFUSED = [
    ("getenv('HOME')", "function getenv() is not allowed in floe.yaml expressions", 0),
    ("read_csv('x.csv')", "function read_csv() is not allowed in floe.yaml expressions", 0),
    ("read_text('/etc/passwd')", "function read_text() is not allowed in floe.yaml "
     "expressions", 0),
    ("current_setting('home_directory')", "function current_setting() is not allowed in "
     "floe.yaml expressions", 0),
    ("now()", "function now() is not allowed in floe.yaml expressions", 0),
    ("(SELECT 1)", "subqueries are not allowed", 1),
    ("x IN (SELECT y FROM t)", "subqueries are not allowed", 6),
    ("count(*)", "function count() is not allowed in floe.yaml expressions", 0),
    ("people.email", "qualified names are not allowed", 6),
    ("a; DROP TABLE t", "unexpected ';'", 1),
    ("'unclosed", "unclosed quote '", 0),
    ("CAST(x AS json)", "unknown type 'json'", 10),
    ("x @ y", "unexpected character '@'", 2),
    ("tags[1]", "subscripts are not allowed", 4),
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_expressions_print_sql_duckdb_runs(text: str) -> None:
    """Printed SQL means what it says: DuckDB runs it, and sqlglot reads the text too."""
    expression = parse(text)
    sqlglot.parse_one(text, read="duckdb")
    table = pa.table({name: pa.array([], pa.string()) for name in expression.columns})
    connection = duckdb.connect()
    connection.register("t", table)
    columns = ", ".join(f'TRY_CAST("{c}" AS DOUBLE) AS "{c}"' for c in expression.columns
                        if c in ("amount", "fee"))
    typed = f"SELECT * REPLACE ({columns}) FROM t" if columns else "SELECT * FROM t"
    connection.sql(f"SELECT {expression.sql()} FROM ({typed})").fetchall()


@pytest.mark.parametrize(("text", "message", "offset"), REFUSED)
def test_refused_expressions_say_why_and_where(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as refused:
        parse(text)
    assert (refused.value.message, refused.value.offset) == (message, offset)


def test_operators_bind_as_in_postgresql() -> None:
    assert parse("a || b + c").sql() == '("a" || ("b" + "c"))'
    assert parse("NOT a = b AND c OR d").sql() == '(((NOT ("a" = "b")) AND "c") OR "d")'
    assert parse("-a::int").sql() == '(-CAST("a" AS INTEGER))'


def test_every_allowed_function_exists_in_the_engine() -> None:
    """The allowlist names DuckDB functions: none is a typo that would fail at run time."""
    known = {name for (name,) in duckdb.connect().sql(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_type IN ('scalar', 'macro')"
    ).fetchall()} | {"if", "coalesce", "nullif", "ifnull"}
    assert sorted(FUNCTIONS - known) == []


def test_mask_patterns() -> None:
    assert parse_mask("****{last 4}") == ["****", ("last", 4)]
    assert parse_mask("{first 2}…{last 1}") == [("first", 2), "…", ("last", 1)]
    with pytest.raises(ExpressionError):
        parse_mask("{middle 3}")


def test_plan_warns_that_a_transform_change_changes_bronze(tmp_path: Path) -> None:
    from floe.compiler.plan import plan

    old = compile_text(tmp_path, PROJECT)
    new = compile_text(tmp_path, PROJECT.replace("upper(country)", "lower(country)")
                       .replace("PII_SALT", "PII_SALT_2").replace("status <> 'test'",
                                                                  "status = 'live'")
                       .replace("        phone: {mask: null}\n", ""))
    changes = {c.field: c for c in plan(old, new)}
    assert sorted(changes) == ["transform.columns.email", "transform.columns.phone",
                               "transform.columns.region", "transform.where"]
    region = changes["transform.columns.region"]
    assert (region.before, region.after) == ("upper(country)", "lower(country)")
    assert "Bronze's meaning changes" in str(region.risk)
    assert "new hashes no longer match" in str(changes["transform.columns.email"].risk)
    assert "null from now on" in str(changes["transform.columns.phone"].risk)
    assert changes["transform.where"].after == "status = 'live'"
    assert "--full-refresh" in str(changes["transform.where"].risk)


@pytest.mark.parametrize(("column", "expected"), [
    ("{expr: \"1\", mask: null}",
     "12:17: sources[0].transform.columns.x: a transform column has exactly one of expr, "
     "hash, mask (it has expr, mask)"),
    ("{hash: sha256}", "12:17: sources[0].transform.columns.x: hash needs a salt"),
    ("{mask: null, replace: true}",
     "12:33: sources[0].transform.columns.x.replace: replace applies to expr, not to mask"),
    ("{expr: \"1\", column: y}",
     "12:32: sources[0].transform.columns.x.column: column applies to hash and mask; an "
     "expression names the columns it reads itself"),
    ("{mask: null, colour: y}",
     "12:33: sources[0].transform.columns.x.colour: unknown key 'colour'"),
])
def test_column_mappings_are_checked(tmp_path: Path, column: str, expected: str) -> None:
    assert errors_of(tmp_path, _with(f"      columns: {{x: {column}}}\n")) == [expected]
