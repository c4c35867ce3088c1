"""The schema link an editor follows works offline: `floe init` writes the installed floe's
schemas into the project and points floe.yaml at them by a relative path (plus VS Code's
yaml.schemas); `floe schema` prints or writes them; `floe --version` is the package's."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

from floe import __version__
from floe.compiler.schema_gen import render_schemas
from tests.compiler.test_cli import floe


def _referenced_schema(floe_yaml: Path) -> Path:
    first = floe_yaml.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match is not None, first
    assert "://" not in match.group(1)  # a path, not a URL that may not exist
    return (floe_yaml.parent / match.group(1)).resolve()


def test_init_points_editors_at_schemas_inside_the_project(tmp_path: Path) -> None:
    assert floe("init", "shop", cwd=tmp_path).returncode == 0
    project = tmp_path / "shop"
    schema_path = _referenced_schema(project / "floe.yaml")
    assert schema_path == (project / "schemas" / "floe.schema.json").resolve()
    schema = json.loads(schema_path.read_text())
    data = YAML(typ="safe").load((project / "floe.yaml").read_text())
    jsonschema.validate(data, schema)  # the project as written validates through the link
    broken = {**data, "sources": [{**data["sources"][0], "wirte_mode": "merge"}]}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert errors and "wirte_mode" in errors[0].message
    settings = json.loads((project / ".vscode" / "settings.json").read_text())
    assert settings["yaml.schemas"]["schemas/floe.schema.json"] == ["floe.yaml", "**/floe.yaml"]
    assert (project / "schemas" / "platform.schema.json").exists()
    assert "schemas" not in (project / ".gitignore").read_text()  # committed with the project


def test_schema_prints_and_writes_the_installed_schemas(tmp_path: Path) -> None:
    rendered = render_schemas()
    printed = floe("schema", cwd=tmp_path)
    assert printed.returncode == 0 and printed.stdout == rendered["floe.schema.json"]
    platform = floe("schema", "platform", cwd=tmp_path)
    assert platform.stdout == rendered["platform.schema.json"]
    written = floe("schema", "-o", "schemas", cwd=tmp_path)
    assert written.returncode == 0
    for filename, text in rendered.items():
        assert (tmp_path / "schemas" / filename).read_text() == text
    unknown = floe("schema", "floe.yaml", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "unknown schema 'floe.yaml': use one of floe, platform, artifacts" in unknown.stderr


def test_version_is_the_package_version(tmp_path: Path) -> None:
    shown = floe("--version", cwd=tmp_path)
    assert shown.stdout.strip().endswith(importlib.metadata.version("floe"))
    assert importlib.metadata.version("floe") == __version__
    changelog = (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in changelog
