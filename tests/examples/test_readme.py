"""The top-level README's commands, run in a scratch folder (see docs.py for what is skipped)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.examples.docs import NOT_RUN_HERE, REPO, commands, run_readme


def test_readme_commands_run(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    five_lines = readme.split("## A five-line project", 1)[1].split("```yaml\n", 1)[1]
    (tmp_path / "floe.yaml").write_text(five_lines.split("```", 1)[0])
    output = run_readme(tmp_path)
    assert "bronze.orders" in output
    assert (tmp_path / "my_project" / ".floe" / "catalog.db").exists()
    assert "No changes." in output  # floe plan right after floe compile


def test_only_long_running_or_recursive_commands_are_skipped() -> None:
    skipped = {c for c in commands(REPO / "README.md")
               if any(c.startswith(prefix) for prefix in NOT_RUN_HERE)}
    assert {c.split("  ")[0].strip() for c in skipped} == {"make run", "make test", "floe dev"}
