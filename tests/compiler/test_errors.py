"""Every kind of user mistake gives a located message, all of them in one run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from floe.compiler.loader import MAX_FILE_BYTES
from floe.errors import CompileError
from tests.compiler.helpers import VALID, compile_text, errors_of, hints_of, write


def test_valid_project_compiles(tmp_path: Path) -> None:
    artifacts = compile_text(tmp_path, VALID)
    assert [s.name for s in artifacts.sources] == ["orders"]


def test_yaml_syntax_error_points_at_the_bad_line(tmp_path: Path) -> None:
    text = VALID.replace("      file_glob: \"*.csv\"", "      file_glob: \"*.csv")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("13:1: YAML syntax error")


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         "    wirte_mode: append")
    assert errors_of(tmp_path, text) == ["9:5: sources[0].wirte_mode: unknown key 'wirte_mode'"]
    assert hints_of(tmp_path, text) == ["did you mean 'write_mode'?"]


def test_wrong_type(tmp_path: Path) -> None:
    text = VALID.replace("version: 1.0.0", "version: 1.0")
    assert errors_of(tmp_path, text) == [
        "5:12: metadata.version: expected a string, got a number (1.0)"]


def test_bad_enum_value_explains_merge(tmp_path: Path) -> None:
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         "    write_mode: upsert")
    assert errors_of(tmp_path, text) == [
        '9:17: sources[0].write_mode: "upsert" is not one of append, replace, merge']
    assert "merge_strategy: upsert" in hints_of(tmp_path, text)[0]


def test_duplicate_source_names(tmp_path: Path) -> None:
    second = VALID.split("sources:\n")[1]
    errors = errors_of(tmp_path, VALID + second)
    assert errors == ["13:11: sources[1].name: duplicate source name 'orders'"]


def test_merge_without_primary_key(tmp_path: Path) -> None:
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         "    write_mode: merge")
    assert errors_of(tmp_path, text) == [
        "9:17: sources[0].write_mode: write_mode merge needs a primary_key"]


def test_merge_from_defaults_without_primary_key_points_at_the_source(tmp_path: Path) -> None:
    text = VALID.replace("sources:", "defaults:\n  write_mode: merge\nsources:")
    assert errors_of(tmp_path, text) == [
        "9:11: sources[0].name: write_mode merge needs a primary_key"]


def test_merge_strategy_without_merge(tmp_path: Path) -> None:
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         "    merge_strategy: upsert")
    assert errors_of(tmp_path, text) == [
        "9:21: sources[0].merge_strategy: merge_strategy only applies to write_mode merge, but "
        "this source uses append"]


def test_replace_with_a_cursor_is_an_error_with_a_hint(tmp_path: Path) -> None:
    """The second run would replace the whole table by the rows newer than the cursor."""
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         "    write_mode: replace\n    cursor_field: updated_at")
    assert errors_of(tmp_path, text) == [
        "10:19: sources[0].cursor_field: cursor_field cannot be used with write_mode replace: "
        "each run would replace the table with only the rows newer than the cursor"]
    assert "write_mode: append" in hints_of(tmp_path, text)[0]


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "every hour", "0 0 * * * *"])
def test_bad_cron(tmp_path: Path, cron: str) -> None:
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         f"    schedule: \"{cron}\"")
    assert errors_of(tmp_path, text) == [
        f"9:15: sources[0].schedule: '{cron}' is not a valid cron expression"]


def test_good_cron_becomes_a_schedule(tmp_path: Path) -> None:
    text = VALID.replace("    source_type: filesystem", "    source_type: filesystem\n"
                         "    schedule: \"0 * * * *\"\n    timezone: Europe/Berlin")
    source = compile_text(tmp_path, text).sources[0]
    assert source.schedule is not None
    assert (source.schedule.cron, source.schedule.timezone) == ("0 * * * *", "Europe/Berlin")


@pytest.mark.parametrize("table", ["Bronze.orders", "bronze.orders.x", "1bronze", "bronze.or-ders"])
def test_bad_destination_table(tmp_path: Path, table: str) -> None:
    text = VALID.replace("destination_table: bronze.orders", f"destination_table: {table}")
    errors = errors_of(tmp_path, text)
    assert errors == [f'9:24: sources[0].destination_table: "{table}" must be namespace.table or '
                      "a bare namespace: lowercase letters, digits and underscores, starting "
                      "with a letter or underscore (e.g. bronze.orders)"]


def test_unknown_source_type(tmp_path: Path) -> None:
    text = VALID.replace("source_type: filesystem", "source_type: kafka")
    assert errors_of(tmp_path, text) == [
        '8:18: sources[0].source_type: "kafka" is not one of rest_api, sql_database, '
        'filesystem, postgres_cdc, mysql_cdc, python']


def test_rest_api_needs_base_url_and_resources(tmp_path: Path) -> None:
    text = VALID.replace("source_type: filesystem", "source_type: rest_api").replace(
        "      bucket_url: data\n      file_glob: \"*.csv\"\n", "      client: {}\n")
    assert errors_of(tmp_path, text) == [
        "11:7: sources[0].source_config: rest_api source_config needs 'resources'",
        "11:15: sources[0].source_config.client: rest_api source_config needs 'client.base_url'",
    ]


def test_sql_database_needs_credentials_and_tables(tmp_path: Path) -> None:
    text = VALID.replace("source_type: filesystem", "source_type: sql_database").replace(
        "      bucket_url: data\n      file_glob: \"*.csv\"\n", "      backend: pyarrow\n")
    assert errors_of(tmp_path, text) == [
        "11:7: sources[0].source_config: sql_database source_config needs 'credentials'",
        "11:7: sources[0].source_config: sql_database source_config needs 'tables' or 'schema'",
    ]


def test_filesystem_needs_bucket_url(tmp_path: Path) -> None:
    text = VALID.replace("      bucket_url: data\n", "")
    assert errors_of(tmp_path, text) == [
        "11:7: sources[0].source_config: filesystem source_config needs 'bucket_url'"]


def test_unset_env_var_without_default(tmp_path: Path) -> None:
    text = VALID.replace("bucket_url: data", "bucket_url: \"{{ env_var('LANDING_DIR') }}\"")
    assert errors_of(tmp_path, text) == [
        "11:19: sources[0].source_config.bucket_url: environment variable 'LANDING_DIR' is not "
        "set and env_var() has no default"]
    artifacts = compile_text(tmp_path, text, environ={"LANDING_DIR": "landing"})
    assert artifacts.sources[0].source_config["bucket_url"] == "landing"


def test_undefined_var(tmp_path: Path) -> None:
    text = VALID.replace("bucket_url: data", "bucket_url: \"{{ var('landing') }}\"")
    assert errors_of(tmp_path, text) == [
        "11:19: sources[0].source_config.bucket_url: var 'landing' is not defined "
        "(defined vars: none)"]


def test_vars_override_from_the_command_line(tmp_path: Path) -> None:
    text = VALID.replace("sources:", "vars:\n  landing: data\n  size: 5\nsources:").replace(
        "bucket_url: data", "bucket_url: \"{{ var('landing') }}\"")
    assert compile_text(tmp_path, text).sources[0].source_config["bucket_url"] == "data"
    overridden = compile_text(tmp_path, text, vars_override={"landing": "other"})
    assert overridden.sources[0].source_config["bucket_url"] == "other"


def test_jinja_syntax_error(tmp_path: Path) -> None:
    text = VALID.replace("bucket_url: data", "bucket_url: \"{{ var('x' }}\"")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("11:19: sources[0].source_config.bucket_url: template syntax error")


def test_sandbox_refuses_python_escapes(tmp_path: Path) -> None:
    text = VALID.replace("bucket_url: data",
                         "bucket_url: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"")
    assert errors_of(tmp_path, text) == [
        "11:19: sources[0].source_config.bucket_url: unsafe template refused: access to "
        "attribute '__class__' of 'str' object is unsafe."]


@pytest.mark.parametrize(("key", "value"), [
    ("password", "hunter2"), ("token", "abc123"), ("api_key", "k-123"),
    ("client_secret", "s3cr3t"),
])
def test_literal_credentials_are_refused(tmp_path: Path, key: str, value: str) -> None:
    text = VALID.replace("file_glob: \"*.csv\"",
                         f"file_glob: \"*.csv\"\n      credentials:\n        {key}: {value}")
    errors = errors_of(tmp_path, text)
    assert errors == [f"14:{11 + len(key)}: sources[0].source_config.credentials.{key}: "
                      f"'{key}' holds a literal credential"]
    assert "secret(" in hints_of(tmp_path, text)[0]


def test_password_inside_a_connection_url_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("source_type: filesystem", "source_type: sql_database").replace(
        "      bucket_url: data\n      file_glob: \"*.csv\"\n",
        "      credentials: postgresql://loader:hunter2@db/shop\n      tables: [orders]\n")
    assert errors_of(tmp_path, text) == [
        "11:20: sources[0].source_config.credentials: 'credentials' holds a literal credential"]


def test_passwordless_database_url_is_fine(tmp_path: Path) -> None:
    text = VALID.replace("source_type: filesystem", "source_type: sql_database").replace(
        "      bucket_url: data\n      file_glob: \"*.csv\"\n",
        "      credentials: sqlite:///shop.db\n      tables: [orders]\n")
    assert compile_text(tmp_path, text).sources[0].source_config["credentials"] == (
        "sqlite:///shop.db")


def test_unknown_env(tmp_path: Path) -> None:
    write(tmp_path, """\
        apiVersion: floe.dev/v1
        kind: Platform
        environments:
          dev:
            catalog: {type: sql, uri: "sqlite:///c.db", warehouse: wh}
        """, "platform.yaml")
    text = VALID.replace("sources:", "platform: platform.yaml\nsources:")
    errors = errors_of(tmp_path, text, env="prod")
    assert errors == ["3:1: environments: unknown environment 'prod' (defined: dev)"]


def test_env_without_platform_file(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, VALID, env="prod")
    assert errors == ["1:1: platform: --env prod: this project has no platform.yaml, so only the "
                      "embedded 'dev' environment exists"]


def test_empty_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "# nothing yet\n") == ["1:1: file is empty"]


def test_file_that_is_a_list(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "- name: orders\n- name: customers\n") == [
        "1:1: the document is a list; it must be a mapping of keys such as apiVersion, kind, "
        "metadata"]


def test_ten_megabyte_file_is_rejected_without_parsing(tmp_path: Path) -> None:
    padding = "# " + "x" * 1021 + "\n"  # 1 KiB a line
    text = VALID + padding * (10 * 1024)
    errors = errors_of(tmp_path, text)
    assert errors == [f"1:1: file is 10.0 MiB, larger than the {MAX_FILE_BYTES // 2**20} MiB "
                      "limit"]


def test_billion_laughs_is_rejected_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    text = VALID.replace("sources:", "vars:\n  " + "\n  ".join(lines) + "\nsources:")
    started = time.perf_counter()
    errors = errors_of(tmp_path, text)
    assert time.perf_counter() - started < 10.0, "alias expansion must be bounded, not exhausted"
    assert len(errors) == 1
    assert "document expands to more than 500,000 values" in errors[0]


def test_duplicate_yaml_keys(tmp_path: Path) -> None:
    text = VALID.replace("  version: 1.0.0", "  version: 1.0.0\n  version: 2.0.0")
    assert errors_of(tmp_path, text) == ["6:3: metadata.version: duplicate key 'version'"]


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = (VALID.replace("name: shop", "name: Shop")
            .replace("source_type: filesystem", "source_type: filesystem\n    write_mode: upsert")
            .replace("bucket_url: data", "bucket_url: \"{{ var('nope') }}\""))
    errors = errors_of(tmp_path, text)
    assert [e.split(":")[0] for e in errors] == ["4", "9", "12"]


def test_compile_error_renders_file_line_column_key_and_hint(tmp_path: Path) -> None:
    text = VALID.replace("source_type: filesystem", "source_type: filesystem\n    wirte_mode: x")
    with pytest.raises(CompileError) as info:
        compile_text(tmp_path, text)
    rendered = info.value.render()
    assert rendered.splitlines()[0] == (
        "floe.yaml:9:5: sources[0].wirte_mode: unknown key 'wirte_mode'") or rendered.splitlines(
        )[0].endswith("floe.yaml:9:5: sources[0].wirte_mode: unknown key 'wirte_mode'")
    assert rendered.splitlines()[1] == "    hint: did you mean 'write_mode'?"
    assert rendered.splitlines()[-1] == "1 error found; nothing was written."


def test_reconcile_needs_a_source_that_can_be_re_read(tmp_path: Path) -> None:
    text = VALID + "    checks:\n      - reconcile: {max_lag: 1h}\n"
    assert compile_text(tmp_path, text).sources[0].checks  # a landing folder: yes
    api = text.replace("source_type: filesystem", "source_type: rest_api").replace(
        "      bucket_url: data\n      file_glob: \"*.csv\"\n",
        "      client: {base_url: \"https://api.example.com\"}\n      resources: [orders]\n")
    assert errors_of(tmp_path, api) == [
        "14:20: sources[0].checks[0].reconcile: reconcile compares Bronze with its source; an "
        "API cannot be re-read as it was loaded"]


def test_platform_maintenance_block(tmp_path: Path) -> None:
    """platform.yaml maintenance: compiles to the environment (durations in seconds); a bad
    cron, timezone or duration is named where it is written."""
    write(tmp_path, """\
        apiVersion: floe.dev/v1
        kind: Platform
        environments:
          dev:
            catalog: {type: sql, uri: "sqlite:///c.db", warehouse: wh}
            maintenance: {schedule: "0 3 * * *", older_than: 2d}
        """, "platform.yaml")
    text = VALID.replace("sources:", "platform: platform.yaml\nsources:")
    maintenance = compile_text(tmp_path, text).environment.maintenance
    assert maintenance is not None
    assert (maintenance.schedule.cron, maintenance.schedule.timezone,
            maintenance.older_than_seconds,
            maintenance.retain_last) == ("0 3 * * *", "UTC", 172800, 10)
    write(tmp_path, """\
        apiVersion: floe.dev/v1
        kind: Platform
        environments:
          dev:
            catalog: {type: sql, uri: "sqlite:///c.db", warehouse: wh}
            maintenance:
              schedule: "every night"
              timezone: Mars/Olympus
              older_than: a week
        """, "platform.yaml")
    errors = errors_of(tmp_path, text)
    assert errors == [
        "7:17: environments.dev.maintenance.schedule: 'every night' is not a valid cron "
        "expression",
        "8:17: environments.dev.maintenance.timezone: unknown timezone 'Mars/Olympus'",
        "9:19: environments.dev.maintenance.older_than: \"a week\" must be a duration such as "
        "12h, 7d or 2w (units s, m, h, d, w)"]
