"""Stage 3, validate: check rendered documents against the committed JSON Schemas.

jsonschema finds every error in one pass; this module turns each into a located diagnostic
with a message written for a data engineer (``unknown key 'wirte_mode'`` + ``did you mean
'write_mode'?``) instead of the validator's raw text.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from floe.compiler.positions import SourceMap
from floe.errors import Diagnostic, KeyPath

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "array": "a list", "object": "a mapping", "null": "empty",
}
_PATTERN_MESSAGES = {
    "destination_table": (
        "must be namespace.table or a bare namespace: lowercase letters, digits and "
        "underscores, starting with a letter or underscore (e.g. bronze.orders)"),
    "name": "must start with a lowercase letter and use only lowercase letters, digits and "
            "underscores (at most 63 characters)",
    "version": "must be a semantic version such as 1.0.0",
    "max_age": "must be a duration such as 30m, 2h or 1d (units s, m, h, d, w)",
    "max_lag": "must be a duration such as 30m, 2h or 1d (units s, m, h, d, w)",
    "older_than": "must be a duration such as 12h, 7d or 2w (units s, m, h, d, w)",
    "freshness_sla": "must be a duration such as 30m, 2h or 1d (units s, m, h, d, w)",
}
_ENUM_HINTS = {
    ("write_mode", "upsert"): "for upserts write `write_mode: merge` and `merge_strategy: upsert`",
    ("write_mode", "delete-insert"): (
        "write `write_mode: merge` and `merge_strategy: delete-insert`"),
    ("write_mode", "overwrite"): "`replace` overwrites the table in one commit",
}


@cache
def schema(filename: str) -> dict[str, Any]:
    text = resources.files("floe.schemas").joinpath(filename).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(filename: str) -> Draft202012Validator:
    return Draft202012Validator(schema(filename))


def validate_document(data: Any, filename: str, source_map: SourceMap) -> list[Diagnostic]:
    """Every schema violation in ``data`` as a diagnostic, in file order."""
    found: set[Diagnostic] = set()
    for error in _validator(filename).iter_errors(data):
        found.update(_diagnose(error, source_map))
    return sorted(found)


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    return {str: "a string", int: "an integer", float: "a number", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _expected(schema_node: Any) -> str:
    if not isinstance(schema_node, dict):
        return "a valid value"
    if "anyOf" in schema_node:
        return " or ".join(dict.fromkeys(_expected(b) for b in schema_node["anyOf"]))
    if "$ref" in schema_node:
        return "a mapping"
    kind = schema_node.get("type")
    if kind == "array":
        item = schema_node.get("items", {}).get("type")
        return f"a list of {item}s" if item else "a list"
    if isinstance(kind, str):
        return _TYPE_NAMES.get(kind, kind)
    if "enum" in schema_node:
        return "one of " + ", ".join(map(str, schema_node["enum"]))
    return "a valid value"


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed: " + ", ".join(choices)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _diagnose(error: ValidationError, source_map: SourceMap) -> list[Diagnostic]:
    path: KeyPath = tuple(error.absolute_path)
    schema_node: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    expected: Any = error.validator_value
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema_node.get("properties", {}))
        return [
            source_map.diagnostic((*path, key), f"unknown key '{key}'", _suggest(key, allowed),
                                  at_key=True)
            for key in error.instance
            if key not in allowed
        ]
    if kind == "required" and isinstance(error.instance, dict):
        return [
            source_map.diagnostic(path, f"missing required key '{key}'")
            for key in expected
            if key not in error.instance
        ]
    if kind == "enum":
        choices = [str(c) for c in expected]
        hint = _ENUM_HINTS.get((str(field), str(error.instance)))
        if hint is None and isinstance(error.instance, str):
            close = difflib.get_close_matches(error.instance, choices, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else ""
        return [source_map.diagnostic(
            path, f"{_short(error.instance)} is not one of {', '.join(choices)}", hint or "")]
    if kind == "const":
        return [source_map.diagnostic(
            path, f"must be {_short(error.validator_value)}, not {_short(error.instance)}")]
    if kind == "type":
        return [source_map.diagnostic(
            path, f"expected {_expected(schema_node)}, got {_type_name(error.instance)} "
            f"({_short(error.instance)})",
            "quote the value to make it a string" if error.validator_value == "string" else "")]
    if kind == "pattern":
        message = _PATTERN_MESSAGES.get(str(field), f"does not match {error.validator_value}")
        return [source_map.diagnostic(path, f"{_short(error.instance)} {message}")]
    if kind in {"anyOf", "oneOf"}:
        matching = [e for e in (error.context or []) if e.validator != "type"]
        if matching:
            best = best_match(matching)
            if best is not None:
                return _diagnose(best, source_map)
        return [source_map.diagnostic(
            path, f"expected {_expected(schema_node)}, got {_type_name(error.instance)} "
            f"({_short(error.instance)})")]
    if kind in {"minProperties", "maxProperties"} and path and path[-2:-1] == ("checks",):
        known = ", ".join(schema_node.get("properties", {}))
        return [source_map.diagnostic(
            path, "a check has exactly one key naming its type",
            f"e.g. `- not_null: [id]`; check types: {known}")]
    if kind == "minItems" and error.validator_value == 1:
        return [source_map.diagnostic(path, "must not be empty")]
    if kind == "minProperties" and error.validator_value == 1:
        return [source_map.diagnostic(path, "must not be empty")]
    return [source_map.diagnostic(path, error.message)]
