"""The mistakes a newcomer makes first: each gets one clear line and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLOE = str(Path(sys.executable).with_name("floe"))


def floe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOE, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, check=False)


def test_no_floe_yaml_here(tmp_path: Path) -> None:
    result = floe("compile", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"floe.yaml not found in {tmp_path}: run `floe init` to "
                                     "create a project, or pass -f PATH")


def test_run_before_compile(tmp_path: Path) -> None:
    result = floe("run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"{tmp_path}/target/compiled_artifacts.json not found: "
                                     "run `floe compile` first")


def test_tables_before_any_run(tmp_path: Path) -> None:
    assert floe("init", "shop", cwd=tmp_path).returncode == 0
    assert floe("compile", cwd=tmp_path / "shop").returncode == 0
    result = floe("tables", cwd=tmp_path / "shop")
    assert result.returncode == 0
    assert result.stdout.strip() == ("no tables yet in catalog floe "
                                     "(sqlite:///.floe/catalog.db): run `floe run` first")


def test_typo_in_a_command_suggests_the_right_one(tmp_path: Path) -> None:
    result = floe("complie", cwd=tmp_path)
    assert result.returncode == 1
    assert "No such command 'complie'. Did you mean 'compile'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_project_compiles_and_runs(tmp_path: Path) -> None:
    assert floe("init", "my_project", cwd=tmp_path).returncode == 0
    project = tmp_path / "my_project"
    assert floe("compile", cwd=project).returncode == 0
    ran = floe("run", cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "bronze.orders" in ran.stdout and "FAIL" not in ran.stdout


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = floe("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("init", "validate", "compile", "plan", "run", "tables", "show", "dev"):
        assert f" {command} " in result.stdout, command


def test_run_for_another_environment_than_compiled(tmp_path: Path) -> None:
    assert floe("init", "shop", cwd=tmp_path).returncode == 0
    assert floe("compile", cwd=tmp_path / "shop").returncode == 0
    result = floe("run", "--env", "prod", cwd=tmp_path / "shop")
    assert result.returncode == 1
    assert result.stderr.strip() == ("the artifact was compiled for environment 'dev', not "
                                     "'prod': run `floe compile --env prod` first")
