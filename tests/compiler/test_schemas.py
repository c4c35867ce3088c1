"""The committed JSON Schemas are generated from the models and must not drift."""

from __future__ import annotations

import json

from floe.compiler.schema_gen import SCHEMA_DIR, render_schemas


def test_committed_schemas_match_the_models() -> None:
    for filename, text in render_schemas().items():
        committed = (SCHEMA_DIR / filename).read_text(encoding="utf-8")
        assert committed == text, (
            f"src/floe/schemas/{filename} is out of date: run `make schemas` and commit it")


def test_floe_schema_names_the_spec_fields() -> None:
    schema = json.loads((SCHEMA_DIR / "floe.schema.json").read_text())
    source = schema["$defs"]["SourceSpec"]["properties"]
    for field in ("name", "source_type", "destination_table", "write_mode", "merge_strategy",
                  "primary_key", "cursor_field", "schema_contract", "schedule", "source_config",
                  "checks", "retry"):
        assert field in source
    assert source["write_mode"]["enum"] == ["append", "replace", "merge"]
    assert schema["properties"]["apiVersion"]["const"] == "floe.dev/v1"
