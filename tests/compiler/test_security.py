"""Secrets never resolve at compile time and never reach artifacts, logs or plan output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.compiler.artifacts_fixture import PROJECT_WITH_SECRETS

PLANTED = "pl4nted-s3cret-VALUE"


def _floe(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "floe.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def test_planted_secret_is_nowhere(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(PROJECT_WITH_SECRETS)
    env = {**os.environ, "SHOP_API_TOKEN": PLANTED, "CRM_DB_URL": PLANTED,
           "ALERT_WEBHOOK": PLANTED, "FLOE_LOG_LEVEL": "debug"}
    compiled = _floe(["compile"], tmp_path, env)
    assert compiled.returncode == 0, compiled.stderr
    artifact = (tmp_path / "target" / "compiled_artifacts.json").read_text()
    assert "${secret:SHOP_API_TOKEN}" in artifact
    assert "compiled" in compiled.stderr  # the debug log really ran
    changed = PROJECT_WITH_SECRETS.replace("write_mode: append", "write_mode: replace")
    (tmp_path / "floe.yaml").write_text(changed)
    planned = _floe(["plan"], tmp_path, env)
    assert planned.returncode == 0, planned.stderr
    assert "replace overwrites the whole table" in planned.stdout
    for text in (artifact, compiled.stdout, compiled.stderr, planned.stdout, planned.stderr):
        assert PLANTED not in text
