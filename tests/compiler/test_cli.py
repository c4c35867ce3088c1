"""The floe command: exit codes, messages and the commands a newcomer runs first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compiler.helpers import VALID


def floe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "floe.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def test_init_creates_a_project_that_compiles(tmp_path: Path) -> None:
    created = floe("init", "my_project", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "my_project"
    compiled = floe("compile", cwd=project)
    assert compiled.returncode == 0, compiled.stderr
    assert "Compiled my_project 0.1.0: 1 source(s), environment dev" in compiled.stdout
    data = json.loads((project / "target" / "compiled_artifacts.json").read_text())
    assert data["sources"][0]["destination_table"] == "bronze.orders"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID)
    result = floe("init", cwd=tmp_path)
    assert result.returncode == 1
    assert "already exists; not overwriting it" in result.stderr
    assert (tmp_path / "floe.yaml").read_text() == VALID


def test_user_error_exits_1_with_located_messages_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID.replace("source_type: filesystem",
                                                      "source_type: filesystem\n    wirte_mode: x"))
    result = floe("compile", cwd=tmp_path)
    assert result.returncode == 1
    assert "floe.yaml:9:5: sources[0].wirte_mode: unknown key 'wirte_mode'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "target").exists()


def test_missing_floe_yaml_is_one_clear_line(tmp_path: Path) -> None:
    result = floe("compile", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"floe.yaml not found in {tmp_path}: run `floe init` to create a project, or pass -f "
        "PATH"]


def test_validate_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID)
    result = floe("validate", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "floe.yaml is valid: 1 source(s), environment dev"
    assert not (tmp_path / "target").exists()


def test_vars_option(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID.replace("bucket_url: data",
                                                      "bucket_url: \"{{ var('d') }}\""))
    result = floe("compile", "--vars", "{d: landing}", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out" / "compiled_artifacts.json").read_text())
    assert data["sources"][0]["source_config"]["bucket_url"] == "landing"


def test_bad_option_is_a_user_error(tmp_path: Path) -> None:
    result = floe("compile", "--no-such-flag", cwd=tmp_path)
    assert result.returncode == 1
    assert "No such option: --no-such-flag" in result.stderr


def test_typo_in_command_suggests_the_command(tmp_path: Path) -> None:
    result = floe("compil", cwd=tmp_path)
    assert result.returncode == 1
    assert "No such command 'compil'" in result.stderr
    assert "compile" in result.stderr.split("No such command 'compil'")[1]


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = floe("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("init", "validate", "compile", "plan"):
        assert command in result.stdout


def test_plan_without_previous_artifacts_lists_added_sources(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID)
    result = floe("plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["+ orders  added", "1 change(s), 0 risky."]


def test_plan_flags_risky_changes_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID)
    assert floe("compile", cwd=tmp_path).returncode == 0
    before = (tmp_path / "target" / "compiled_artifacts.json").read_bytes()
    second = VALID.split("sources:\n")[1].replace("name: orders", "name: customers")
    (tmp_path / "floe.yaml").write_text(
        VALID.replace("source_type: filesystem", "source_type: filesystem\n    write_mode: replace")
        + second)
    result = floe("plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "~ orders  write_mode: append -> replace  [risky: replace overwrites the whole table on "
        "the next run]",
        "+ customers  added",
        "2 change(s), 1 risky.",
    ]
    assert (tmp_path / "target" / "compiled_artifacts.json").read_bytes() == before


def test_compile_does_not_import_the_runtime(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(VALID)
    code = (
        "import sys\n"
        "from floe.cli import main\n"
        "try:\n    main(['compile'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'dlt', 'dagster', 'dagster_dlt', 'pyiceberg', 'pyarrow'}"
        " or m.startswith('floe.runtime'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_readme_five_line_project_compiles(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## A five-line project", 1)[1]
    yaml_text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert len(yaml_text.strip().splitlines()) == 5
    (tmp_path / "floe.yaml").write_text(yaml_text)
    result = floe("compile", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "target" / "compiled_artifacts.json").read_text())
    assert data["sources"][0]["source_config"] == {"bucket_url": "data", "format": "csv"}


@pytest.mark.parametrize("command", [["run"], ["tables"], ["show", "bronze.orders"],
                                     ["changes", "bronze.orders"], ["verify"]])
def test_a_missing_artifact_is_said_before_the_runtime_loads(tmp_path: Path,
                                                             command: list[str]) -> None:
    """`floe run` before `floe compile` answers at once: no dlt, pyiceberg or pyarrow import."""
    code = (
        "import sys\n"
        "from floe.cli import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit as e:\n    assert e.code == 1, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'dlt', 'dagster', 'pyiceberg', 'pyarrow'})\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "not found: run `floe compile` first" in result.stderr + result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_an_unset_secret_is_said_before_the_runtime_loads(tmp_path: Path) -> None:
    """Every selected source needs a secret that is not set: answered at once, named; a
    selection where some source can run still runs (that one fails on its own)."""
    (tmp_path / "floe.yaml").write_text(
        "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: a, version: 1.0.0}\n"
        "sources:\n  - name: crm\n    source_type: sql_database\n    destination_table: crm\n"
        "    source_config: {credentials: \"{{ secret('UNSET_CRM_URL') }}\", tables: [t]}\n")
    assert floe("compile", cwd=tmp_path).returncode == 0
    code = (
        "import sys\n"
        "from floe.cli import main\n"
        "try:\n    main(['run'])\nexcept SystemExit as e:\n    assert e.code == 1, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'dlt', 'dagster', 'pyiceberg', 'pyarrow'})\n"
        "print(heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "UNSET_CRM_URL"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert "source crm: secret 'UNSET_CRM_URL' is not set: export the environment variable " \
           "UNSET_CRM_URL" in result.stderr + result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
