"""Run the commands a README shows, so the docs cannot rot.

Every ```bash block of a README is run as one bash script (``set -e``) in a copy of its
folder.  A line commented ``# exits 1`` must exit with 1 (a failure the README demonstrates).
The only commands not run are the ones in ``NOT_RUN_HERE``, each with the test that covers it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
NOT_RUN_HERE = {
    "make test": "this is the test suite itself",
    "make run": "runs examples/quickstart, whose README commands are run by test_gallery.py",
    "floe dev": "a long-running server: tests/orchestration/test_webserver.py starts it",
}


def bash_blocks(readme: Path) -> list[str]:
    return BLOCK.findall(readme.read_text())


def commands(readme: Path) -> list[str]:
    """Every command line shown (comments and blank lines aside)."""
    lines = (line.strip() for block in bash_blocks(readme) for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _script(block: str) -> str:
    lines = ["set -e"]
    for raw in block.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(line.startswith(skipped) for skipped in NOT_RUN_HERE):
            continue
        command = line.split("  #", 1)[0].strip()
        if "# exits 1" in line:
            lines.append(f"set +e; {command}; rc=$?; set -e; "
                         f"if [ $rc -ne 1 ]; then echo 'expected exit 1, got '$rc': "
                         f"{command}' >&2; exit 99; fi")
        else:
            lines.append(command)
    return "\n".join(lines)


def copy_example(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(REPO / "examples" / name, target,
                    ignore=shutil.ignore_patterns("target", ".floe", "*.db", "__pycache__"))
    return target


def run_readme(folder: Path, env: Mapping[str, str] | None = None,
               replace: Mapping[str, str] | None = None) -> str:
    """Run every bash block of ``folder/README.md`` in ``folder``; returns stdout + stderr."""
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               "COLUMNS": "200", **(env or {})}
    output = []
    for block in bash_blocks(folder / "README.md"):
        script = _script(block)
        for old, new in (replace or {}).items():
            script = script.replace(old, new)
        done = subprocess.run(["bash", "-c", script], cwd=folder, env=environ,
                              capture_output=True, text=True, timeout=600, check=False)
        output.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"README block failed:\n{script}\n---\n{output[-1]}"
    return "\n".join(output)
