"""The first hour at the command line (#24), as a user types it: a stale artifact, an alert that
cannot be delivered, ids at 80 columns, option defaults, plan and first-copy counts."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from floe.cli import app
from tests.servers import Postgres

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing, format: csv}
    checks:
      - row_count: {min: 5, severity: SEVERITY}
"""


def floe(*args: str, cwd: Path, columns: int = 200, **env: str
         ) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": str(columns), **env}
    return subprocess.run([sys.executable, "-m", "floe.cli", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, check=False)


def _project(root: Path, severity: str = "error", extra: str = "") -> None:
    (root / "landing").mkdir(exist_ok=True)
    (root / "landing" / "orders.csv").write_text("id,amount\n1,9.5\n2,20.0\n")
    (root / "floe.yaml").write_text(PROJECT.replace("SEVERITY", severity) + extra)


def test_a_stale_artifact_stops_the_run_and_compile_fixes_it(tmp_path: Path) -> None:
    _project(tmp_path)
    assert floe("compile", cwd=tmp_path).returncode == 0
    _project(tmp_path, severity="warn")  # the user's edit, not compiled yet
    stale = floe("run", cwd=tmp_path)
    assert stale.returncode == 1
    assert stale.stderr.strip() == ("floe.yaml changed since the last floe compile: run floe "
                                    "compile, or floe run --compile")
    assert not (tmp_path / ".floe").exists(), "nothing ran"
    fixed = floe("run", "--compile", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr  # the warn edit took effect
    assert "Compiled shop 1.0.0" in fixed.stdout
    assert "warn" in fixed.stdout


def test_run_compile_keeps_the_artifacts_vars_and_environment(tmp_path: Path) -> None:
    _project(tmp_path)
    text = (tmp_path / "floe.yaml").read_text().replace(
        "bucket_url: landing", "bucket_url: \"{{ var('folder') }}\"")
    (tmp_path / "floe.yaml").write_text("vars: {folder: nowhere}\n" + text)
    assert floe("compile", "--vars", "{folder: landing}", cwd=tmp_path).returncode == 0
    (tmp_path / "floe.yaml").write_text((tmp_path / "floe.yaml").read_text() + "\n")
    again = floe("run", "--compile", cwd=tmp_path)
    assert again.returncode == 1  # row_count min 5 fails: the load itself worked
    assert re.search(r"orders\s+│\s+bronze\.orders\s+│\s+2\s", again.stdout), again.stdout


def test_a_deployed_artifact_without_its_yaml_runs(tmp_path: Path) -> None:
    _project(tmp_path, severity="warn")
    assert floe("compile", cwd=tmp_path).returncode == 0
    (tmp_path / "floe.yaml").unlink()
    ran = floe("run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_undelivered_alert_is_a_line_in_the_run_output(tmp_path: Path) -> None:
    _project(tmp_path, extra="""\
notifications:
  - on: [check_failure]
    webhook: "{{ secret('HOOK') }}"
""")
    hook = f"http://127.0.0.1:{_closed_port()}/hooks/T0KEN-s3cret"
    assert floe("compile", cwd=tmp_path).returncode == 0
    ran = floe("run", cwd=tmp_path, HOOK=hook)
    assert ran.returncode == 1  # the row_count check failed
    lines = [line for line in ran.stdout.splitlines() if "alert not delivered" in line]
    assert len(lines) == 1, ran.stdout
    assert lines[0].startswith("alert not delivered: webhook to 127.0.0.1 failed after 3 "
                               "attempt(s): ConnectionError: ")
    assert "T0KEN-s3cret" not in ran.stdout + ran.stderr


def test_ids_are_whole_at_80_columns(tmp_path: Path) -> None:
    _project(tmp_path, severity="warn")
    assert floe("compile", cwd=tmp_path).returncode == 0
    assert floe("run", cwd=tmp_path).returncode == 0
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("floe", uri=f"sqlite:///{tmp_path / '.floe' / 'catalog.db'}")
    snapshot = str(catalog.load_table(("bronze", "orders")).current_snapshot().snapshot_id)
    for command in (["show", "bronze.orders"], ["tables"]):
        shown = floe(*command, cwd=tmp_path, columns=80)
        assert shown.returncode == 0, shown.stderr
        assert snapshot in shown.stdout, (command, shown.stdout)
        assert "…" not in shown.stdout
        tables = [line for line in shown.stdout.splitlines() if line[:1] in "┏┃┡│└"]
        assert tables and max(len(line) for line in tables) <= 80  # they did fit 80 columns


def _options() -> list[tuple[str, Any]]:
    """Every option of every command (typer's own click, whichever it ships)."""
    group: Any = typer.main.get_command(app)
    found = [("floe", p) for p in group.params]
    for name, command in group.commands.items():
        found += [(name, p) for p in command.params]
    return [(name, p) for name, p in found
            if getattr(p, "param_type_name", "") == "option"
            and p.name not in ("help", "version")]


@pytest.mark.parametrize(("command", "option"), _options(),
                         ids=lambda value: getattr(value, "name", value))
def test_every_option_shows_its_default(command: str, option: Any) -> None:
    args = [] if command == "floe" else [command]
    shown = floe(*args, "--help", cwd=Path.cwd(), columns=300)
    flag = max(option.opts, key=len)
    lines = shown.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"│ {flag} "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.startswith(("│ -", "╰")):
            break
        block.append(line)
    assert "[default: " in " ".join(block), (command, flag, block)


def test_plan_compares_tables_by_resolved_name(tmp_path: Path, postgres: Postgres) -> None:
    """sql_database -> postgres_cdc on the same table: no "different table" risk."""
    before = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: crm
    source_type: sql_database
    destination_table: bronze.fh_plan
    source_config: {credentials: "{{ secret('DB') }}", tables: [fh_plan]}
"""
    (tmp_path / "floe.yaml").write_text(before)
    assert floe("compile", cwd=tmp_path).returncode == 0
    (tmp_path / "floe.yaml").write_text(before.replace("sql_database", "postgres_cdc").replace(
        "bronze.fh_plan", "bronze"))
    planned = floe("plan", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "different table" not in planned.stdout
    assert "~ crm  source_type: sql_database -> postgres_cdc" in planned.stdout
    assert "destination_table" not in planned.stdout


def test_the_first_cdc_copy_reports_the_rows_it_copied(tmp_path: Path,
                                                       postgres: Postgres) -> None:
    postgres.execute("""
        DROP TABLE IF EXISTS fh_copy;
        CREATE TABLE fh_copy (id int PRIMARY KEY, name text);
        INSERT INTO fh_copy SELECT g, 'n' || g FROM generate_series(1, 48) g;
    """)
    from tests.runtime.harness import Project

    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: shop, version: 1.0.0}
        sources:
          - name: crm
            source_type: postgres_cdc
            destination_table: bronze
            source_config:
              credentials: "{{ secret('DB') }}"
              tables: [fh_copy]
              slot_name: floe_fh_copy
        """)
    environ = {"DB": postgres.url}
    try:
        first = project.run("crm", environ=environ)
        assert first.success, first.errors
        assert first.rows_loaded == 48
        assert [t.rows_loaded for t in first.tables] == [48]
        postgres.execute("UPDATE fh_copy SET name = 'x' WHERE id = 1")
        second = project.run("crm", environ=environ)
        assert second.rows_loaded == 1
    finally:
        postgres.execute("SELECT pg_drop_replication_slot('floe_fh_copy') FROM "
                         "pg_replication_slots WHERE slot_name = 'floe_fh_copy'")


def test_a_missing_artifact_under_dagster_is_one_message_and_one_frame(tmp_path: Path) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import floe.runtime.dagster.definitions"], cwd=tmp_path,
        capture_output=True, text=True, check=False)
    assert loaded.returncode == 1
    lines = loaded.stderr.strip().splitlines()
    assert lines[-1] == (f"floe.errors.ArtifactError: {tmp_path.resolve()}/target/"
                         "compiled_artifacts.json not found: run `floe compile` first")
    frames = [line for line in lines if line.strip().startswith("File ")]
    assert [f for f in frames if "site-packages" not in f and "<string>" not in f
            and "<frozen" not in f] == [f for f in frames if "definitions.py" in f]
    assert all("floe/artifacts.py" not in f and "floe/runtime/project.py" not in f
               for f in frames)
