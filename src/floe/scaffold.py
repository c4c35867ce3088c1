"""``floe init``: a new project that compiles and runs straight away on the embedded platform."""

from __future__ import annotations

import re
from pathlib import Path

from floe.errors import FloeError

_FLOE_YAML = """\
# yaml-language-server: $schema=schemas/floe.schema.json
apiVersion: floe.dev/v1
kind: DataProduct
metadata:
  name: {name}
  version: 0.1.0
  owner: you@example.com
  description: Bronze layer of {name}

defaults:
  write_mode: append
  schema_contract: evolve

sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    write_mode: merge
    primary_key: id
    source_config:
      bucket_url: data            # a folder next to this file; s3:// and file:// work too
      file_glob: "orders*.csv"
      format: csv
    checks:
      - row_count: {{min: 1}}
      - not_null: [id]
      - unique: [id]
"""

_ORDERS_CSV = """\
id,customer,amount,status,updated_at
1,alice,19.90,shipped,2024-01-01T10:00:00Z
2,bob,5.00,pending,2024-01-02T11:30:00Z
3,carol,42.50,shipped,2024-01-03T09:15:00Z
"""

_GITIGNORE = "target/\n.floe/\n"

# VS Code's YAML extension: completion and checks for both files, from the project's schemas
_VSCODE_SETTINGS = """\
{
  "yaml.schemas": {
    "schemas/floe.schema.json": ["floe.yaml", "**/floe.yaml"],
    "schemas/platform.schema.json": ["platform.yaml", "**/platform.yaml"]
  }
}
"""
SCHEMA_FILES = {"floe": "floe.schema.json", "platform": "platform.schema.json",
                "artifacts": "compiled_artifacts.schema.json"}


def schema_text(kind: str) -> str:
    """The installed floe's JSON Schema for ``kind`` (floe, platform, artifacts)."""
    return (Path(__file__).parent / "schemas" / SCHEMA_FILES[kind]).read_text(encoding="utf-8")

_README = """\
# {name}

A floe data product. Try:

    floe compile        # validate floe.yaml and write target/compiled_artifacts.json
    floe run            # load data/ into the Iceberg table bronze.orders
    floe tables         # what landed
"""


def init_project(directory: Path) -> list[Path]:
    """Create the project files; refuses to overwrite an existing floe.yaml."""
    if (directory / "floe.yaml").exists():
        raise FloeError(f"{directory / 'floe.yaml'} already exists; not overwriting it")
    name = re.sub(r"[^a-z0-9_-]+", "_", directory.resolve().name.lower()).strip("_-")
    if not name or not name[0].isalpha():
        name = f"project_{name}" if name else "my_project"
    files = {
        directory / "floe.yaml": _FLOE_YAML.format(name=name[:63]),
        directory / "data" / "orders.csv": _ORDERS_CSV,
        directory / ".gitignore": _GITIGNORE,
        directory / "README.md": _README.format(name=name),
        # editors validate floe.yaml offline, against the schema of the floe that made it
        # (`floe schema -o schemas` refreshes them after an upgrade)
        directory / "schemas" / SCHEMA_FILES["floe"]: schema_text("floe"),
        directory / "schemas" / SCHEMA_FILES["platform"]: schema_text("platform"),
        directory / ".vscode" / "settings.json": _VSCODE_SETTINGS,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(text, encoding="utf-8")
    return list(files)
