"""Generate the committed JSON Schemas from the pydantic models.

Run ``python -m floe.compiler.schema_gen`` after changing a model; a test fails when the
committed files drift.  Optional fields are written without their ``null`` branch: in YAML an
absent key and ``key: null`` should not both be "fine", and editors then show the real type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from floe.artifacts import CompiledArtifacts
from floe.compiler.spec import FloeSpec, PlatformSpec

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "floe.schema.json": (FloeSpec, "https://floe.dev/schemas/floe/v1.json"),
    "platform.schema.json": (PlatformSpec, "https://floe.dev/schemas/platform/v1.json"),
    "compiled_artifacts.schema.json": (
        CompiledArtifacts, "https://floe.dev/schemas/compiled_artifacts/v1.json"),
}


def _strip_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _strip_nullable(value) for key, value in node.items()}
    branches = node.get("anyOf")
    # a required key may be null on purpose, and so may one marked so (``mask: null``)
    optional = node.get("default", 0) is None and not node.pop("x-null-allowed", False)
    if isinstance(branches, list) and {"type": "null"} in branches and optional:
        rest = [b for b in branches if b != {"type": "null"}]
        node.pop("anyOf")
        if node.get("default", 0) is None:
            node.pop("default")
        if len(rest) == 1:
            node = {**rest[0], **node}
        else:
            node["anyOf"] = rest
    return node


_STRING_OR_OBJECT = "ColumnSpec"


def _string_or_object(schema: dict[str, Any]) -> dict[str, Any]:
    """``str | ColumnSpec`` as one schema of type [string, object] (object keywords ignore a
    string): validating a mapping then takes one pass, not a failed branch first."""
    defs = schema.get("$defs", {})
    target = defs.pop(_STRING_OR_OBJECT, None)
    if target is None:
        return schema
    ref = {"$ref": f"#/$defs/{_STRING_OR_OBJECT}"}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("anyOf") == [{"type": "string"}, ref]:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return {**{k: v for k, v in target.items() if k != "type"},
                    "type": ["string", "object"], **rest}
        return {key: walk(value) for key, value in node.items()}
    return dict(walk(schema))


def build_schema(model: type[BaseModel], schema_id: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    if model is not CompiledArtifacts:
        schema = _string_or_object(_strip_nullable(schema))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}


def render_schemas() -> dict[str, str]:
    return {
        filename: json.dumps(build_schema(model, schema_id), indent=2, sort_keys=False) + "\n"
        for filename, (model, schema_id) in SCHEMAS.items()
    }


def main() -> None:
    for filename, text in render_schemas().items():
        (SCHEMA_DIR / filename).write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_DIR / filename}")


if __name__ == "__main__":
    main()
