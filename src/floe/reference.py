"""The reference pages of the docs site, generated, never hand-copied: floe.yaml's and
platform.yaml's keys from the JSON Schemas (which come from the pydantic models, where every
description lives), the CLI from the typer app, and troubleshooting from floe's own error
messages (read out of the source, so a new error is in the catalogue the moment it is written;
a test fails when one has no fix).

``docs/hooks.py`` writes them into ``docs/reference/`` when mkdocs builds the site; they are
committed too (GitHub shows them), and a test fails when they differ from what the code says.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMAS = Path(__file__).parent / "schemas"
_SOURCE = Path(__file__).parent

# -- floe.yaml and platform.yaml ----------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    path: str  # sources[].transform.where
    kind: str  # string, integer, ...
    description: str
    default: Any
    allowed: str  # enum values / pattern, as text
    example: str  # a YAML line


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    node = _resolve(node, defs)
    if "const" in node:
        return "constant"
    if "anyOf" in node:
        return " or ".join(dict.fromkeys(_type(n, defs) for n in node["anyOf"]))
    kind = node.get("type", "any")
    if isinstance(kind, list):
        return " or ".join("mapping" if k == "object" else k for k in kind)
    if kind == "array":
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object":
        return "mapping"
    return str(kind)


def _allowed(node: dict[str, Any], defs: dict[str, Any]) -> str:
    node = _resolve(node, defs)
    if "enum" in node:
        return ", ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "pattern" in node:
        return f"matching `{node['pattern']}`"
    for branch in node.get("anyOf", []):
        found = _allowed(branch, defs)
        if found:
            return found
    bounds = [f"{label} {node[key]}" for key, label in (
        ("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
        ("exclusiveMaximum", "<")) if key in node]
    return ", ".join(bounds)


def _example(name: str, node: dict[str, Any], defs: dict[str, Any]) -> str:
    node = _resolve(node, defs)
    if node.get("examples"):
        value: Any = node["examples"][0]
    elif "enum" in node:
        value = node["enum"][0]
    elif "const" in node:
        value = node["const"]
    elif node.get("default") not in (None, [], {}):
        value = node["default"]
    else:
        kind = _type(node, defs)
        value = ({"integer": 3, "number": 0.5, "boolean": True}.get(kind.split(" ")[0])
                 if not kind.startswith(("list", "mapping", "string")) else
                 ["..."] if kind.startswith("list") else {} if kind.startswith("mapping")
                 else "...")
    return f"{name}: {json.dumps(value, ensure_ascii=False)}"


def schema_keys(filename: str) -> list[Key]:
    """Every key of a schema, depth first, with what the reference shows."""
    schema = json.loads((_SCHEMAS / filename).read_text(encoding="utf-8"))
    defs = schema.get("$defs", {})
    found: list[Key] = []

    def walk(node: dict[str, Any], prefix: str, seen: frozenset[str]) -> None:
        node = _resolve(node, defs)
        for name, child in node.get("properties", {}).items():
            resolved = _resolve(child, defs)
            path = f"{prefix}{name}"
            found.append(Key(path, _type(child, defs),
                             child.get("description") or resolved.get("description", ""),
                             resolved.get("default"), _allowed(child, defs),
                             _example(name, child, defs)))
            for sub, suffix in _children(resolved):
                ref = sub.get("$ref", "")
                if ref and ref in seen:
                    continue
                walk(sub, f"{path}{suffix}.", seen | {ref})
    walk(schema, "", frozenset())
    return found


def _children(node: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """The objects under a key: itself, its list items, its mapping values, its branches."""
    if node.get("properties"):
        yield node, ""
    items = node.get("items")
    if isinstance(items, dict):
        yield from ((sub, f"[]{suffix}") for sub, suffix in _children_of(items))
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        yield from ((sub, f".<name>{suffix}") for sub, suffix in _children_of(values))
    for branch in node.get("anyOf", []):
        yield from _children_of(branch)


def _children_of(node: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    if "$ref" in node or node.get("properties"):
        yield node, ""
    else:
        yield from _children(node)


def schema_page(kind: str) -> str:
    filename, title, intro = {
        "floe": ("floe.schema.json", "floe.yaml reference",
                 "Every key of `floe.yaml`, generated from floe's JSON Schema "
                 "(`floe schema floe`), which is generated from its models: what you read "
                 "here is what `floe compile` checks."),
        "platform": ("platform.schema.json", "platform.yaml reference",
                     "Every key of `platform.yaml`, generated from floe's JSON Schema "
                     "(`floe schema platform`)."),
    }[kind]
    lines = [f"# {title}", "", intro, ""]
    for key in schema_keys(filename):
        lines += [f"## `{key.path}`", "", key.description or "", "",
                  f"- type: {key.kind}"]
        if key.default not in (None, [], {}):
            lines.append(f"- default: `{json.dumps(key.default, ensure_ascii=False)}`")
        if key.allowed:
            lines.append(f"- allowed: {key.allowed}")
        lines += ["", "```yaml", key.example, "```", ""]
    return "\n".join(lines)


# -- the CLI ----------------------------------------------------------------------------------


def cli_page() -> str:
    import typer.main

    from floe.cli import app

    group: Any = typer.main.get_command(app)  # typer's own click: read by duck typing
    context = type(group).context_class(group, info_name="floe")
    lines = ["# CLI reference", "",
             "Every `floe` command and option, generated from the command itself "
             "(`floe COMMAND --help` says the same).", ""]
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        sub = type(command).context_class(command, info_name=name, parent=context)
        lines += [f"## `floe {name}`", "", (command.help or "").strip(), "",
                  "```text", command.get_usage(sub), "```", ""]
        rows = []
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
                default = "" if param.default in (None, False, ()) or param.is_flag \
                    else f"`{param.default}`"
                rows.append(f"| {names} | {(param.help or '').replace('|', '/')} | "
                            f"{default} |")
            elif param.param_type_name == "argument":
                rows.append(f"| `{(param.name or '').upper()}` | "
                            f"{getattr(param, 'help', '') or ''} | |")
        if rows:
            lines += ["| option | what | default |", "|---|---|---|", *rows, ""]
    return "\n".join(lines)


# -- troubleshooting ----------------------------------------------------------------------------

_RAISERS = {
    "diagnostic", "Diagnostic", "FloeError", "ArtifactError", "config_error",
    "configuration_error", "PipelineConfigurationError", "IngestionError",
    "SourceConnectionError", "DestinationWriteError", "SchemaContractViolation",
    "ConcurrentLoadError", "SourceTimeoutError", "TransformError", "ReplicationSetupError",
    "HistoryInputError", "ExpressionError", "MissingSourceDependencyError", "error"}
# a message that already says what to do: a command to run, the valid choices, the expected
# form, or an imperative
_FIX_WORDS = re.compile(
    r"`|did you mean|\bits (columns|tables|resources|snapshots)\b|\b(sources|defined|"
    r"installed|use one of)\b:|e\.g\.|such as|\b(needs?|must|expected|only|use|run|add|set|"
    r"remove|export|install|give|drop|quote|pass|keep|choose|write|rename|grant|create|"
    r"recompile|enable|yield|return|fix|start|end)\b", re.IGNORECASE)
FIXES: dict[str, str] = {  # message template -> fix, for messages that do not carry one
    'primary_key lists a column twice':
        'List each key column once.',
    "unknown {...} source_config key '{...}'":
        "Remove the key or correct its spelling; the source type's keys are in its guide and "
        'in the floe.yaml reference.',
    '{...} is not one of {...}':
        'Use one of the values listed.',
    'min ({...}) is larger than max ({...})':
        'Swap min and max, or correct one of them.',
    "a resource is a name or a mapping with 'name' and 'endpoint'":
        'Write the resource as `- orders` or `- {name: orders, endpoint: {path: /orders}}`.',
    "depends_on names no source '{...}'":
        'Name a source of this floe.yaml (or source.resource); the message suggests the '
        'closest name.',
    "source '{...}' has no resource '{...}'":
        "Name one of the source's resources (its tables, endpoints or dlt resources).",
    "source '{...}' depends on itself":
        'Remove the source from its own depends_on.',
    'template error: {...}':
        'Fix the Jinja template at the position shown (an unclosed `{{`, an unknown function:'
        ' only env_var(), var() and secret() exist).',
    "'{...}' starts with a prefix floe keeps for its own columns":
        'Name the column without `_floe_` or `_dlt_` at the start.',
    '{...} in {...}':
        'The expression error at the line and column shown: correct the syntax, or use an '
        'allowed function (docs/transforms.md lists them).',
    "'{...}' is the primary key: masking it would break matching rows and deletes":
        'Mask a copy into a new column: `{name}_masked: {mask: ..., column: {name}}`.',
    "'{...}' and '{...}' are both renamed to '{...}'":
        'Give each renamed column its own name.',
    "'{...}' is also a column of transform.columns":
        'Rename to a name no computed column uses, or rename the computed column.',
    "unknown key '{...}'":
        'Remove the key or correct its spelling (the message lists the allowed keys).',
    "missing required key '{...}'":
        'Add the key (see the floe.yaml or platform.yaml reference).',
    '{...} {...}':
        'Write the value in the form the message names.',
    'unexpected character {...}':
        'Remove the character; strings are in \'single quotes\', names with spaces in "double '
        'quotes".',
    'subscripts are not allowed':
        'Read the whole column; extract parts with string functions such as split_part().',
    '{...}() takes values of the row':
        'Pass columns or values, not `*`, DISTINCT or a query.',
    'IS takes NULL, TRUE or FALSE':
        'Write `x IS NULL`, `x IS NOT TRUE`...; compare values with `=`.',
    'subqueries are not allowed':
        'An expression reads the columns of its own row only: load the other table as its own'
        ' source and join downstream.',
    "a type's size is a whole number":
        'Write e.g. DECIMAL(10, 2) or VARCHAR(20).',
    '{...} keeps no history: --as-of reads tables loaded with merge_strategy: scd2':
        'Load the table with `merge_strategy: scd2` (then `floe run --full-refresh`), or read'
        ' it without --as-of.',
    'mysql_cdc credentials name no database: end the URL with /<database>':
        'End the URL with the database: mysql://user:pass@host:3306/shop.',
    'the binary log is off on this server: start it with log_bin and restart it':
        'Set `log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL`, '
        '`binlog_row_metadata=FULL` and restart the server (docs/mysql.md).',
    'mysql_cdc credentials: {...}':
        'Write credentials as a mysql:// or mariadb:// URL through secret().',
    '--since and --consumer exclude each other: a consumer reads from where it stopped':
        'Use one of them.',
    '{...}; {...}':
        'The two parts say what failed and what to do.',
    "environment '{...}': {...}":
        "Fix the environment's catalog or storage settings in platform.yaml, or its secrets' "
        'environment variables.',
    'no table {...}{...}':
        '`floe tables` lists the tables; `floe run` creates them.',
    'Iceberg catalog {...} is not reachable: {...}: {...}':
        "Check the catalog's URI and that it is running; for the embedded one, that .floe/ is"
        ' writable.',
    'history.valid_from_column {...}: {...}.{...} is {...}, not a timestamp or date':
        "Name a timestamp or date column, or leave valid_from_column out (the load's time).",
    'no environment configured':
        'Compile with a platform.yaml environment, or without platform.yaml for the embedded '
        'one.',
    'committing {...} failed: {...}: {...}{...}':
        'A storage or catalog error: nothing of this table was committed; run again once the '
        'catalog answers (the message names the tables already committed).',
    'cannot list landing folder {...}: {...}: {...}':
        'Check the bucket_url, its credentials and that it exists.',
    'args do not fit {...}{...}: {...}':
        "Give the function's arguments as its signature names them (`floe validate --deep` "
        'checks them).',
    '{...} raised {...}: {...}{...}':
        "Your source's code failed at the file and line shown: fix it there.",
    'function {...}: module {...} defines no {...}{...}':
        'Name a function the module defines (module:function), or correct the spelling.',
    'function {...}: {...} is a {...}, not a function that returns a dlt source or resource':
        'Point `function:` at a function returning a @dlt.source or @dlt.resource.',
    'transform failed on {...}: {...}':
        "The engine's message says what failed; check the expressions' types.",
    '{...} {...} failed on {...}{...}: {...}':
        'Fix the expression for the row named (e.g. TRY_CAST for values that may not '
        'convert).',
    'transform.columns.{...}: {...}':
        "Export the salt's environment variable before running.",
    '{...} already exists; not overwriting it':
        'Run `floe init` in another folder, or edit the existing floe.yaml.',
}


@dataclass(frozen=True)
class ErrorEntry:
    area: str  # where it is raised: compile, run, command line
    where: str  # the module that raises it
    message: str  # the template, {...} for what varies
    fix: str


def _template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant) else "{...}"
                       for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return (left or "{...}") + (right or "{...}") if left or right else None
    return None


def _area(path: Path) -> str:
    parts = path.relative_to(_SOURCE).parts
    if parts[0] == "compiler" or parts[-1] == "expressions.py":
        return "compile"
    if parts[0] == "runtime":
        return "run"
    return "command line"


def error_catalogue() -> list[ErrorEntry]:
    """Every user-facing error message floe can give, read from its source."""
    found: list[ErrorEntry] = []
    for path in sorted(_SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else ""
            if name not in _RAISERS:
                continue
            texts = [t for t in (_template(a) for a in node.args) if t is not None]
            if not texts:
                continue
            message = texts[0]  # the message; a diagnostic's next string is its hint
            hint = next((_template(k.value) for k in node.keywords if k.arg == "hint"), None)
            if hint is None and len(texts) > 1:
                hint = texts[1]
            fix = hint or FIXES.get(message) or (message if _FIX_WORDS.search(message) else "")
            found.append(ErrorEntry(_area(path), str(path.relative_to(_SOURCE.parent)),
                                    message, fix if fix != message
                                    else "the message says what to do"))
    return found


def troubleshooting_page() -> str:
    entries = error_catalogue()
    lines = ["# Troubleshooting", "",
             "Every error message floe can print, read out of its source when this site was "
             "built, with its fix. `{...}` stands for what varies (a file, a column, a "
             "value). Compile errors come with `floe.yaml:LINE:COLUMN`; run errors name the "
             "source and table, and leave the table and its cursor as they were.", ""]
    for area, title in (("compile", "floe compile, validate, plan"),
                        ("run", "floe run and Dagster"),
                        ("command line", "other commands")):
        lines += [f"## {title}", "", "| message | fix | where |", "|---|---|---|"]
        for entry in entries:
            if entry.area == area:
                lines.append(f"| {_cell(entry.message)} | {_cell(entry.fix)} | "
                             f"`{entry.where}` |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'").strip() or "-"


def pages(changelog: str) -> dict[str, str]:
    """The generated pages, by file name under docs/reference/."""
    return {"floe-yaml.md": schema_page("floe"), "platform-yaml.md": schema_page("platform"),
            "cli.md": cli_page(), "troubleshooting.md": troubleshooting_page(),
            "changelog.md": changelog.replace("](docs/", "](../")}


def main() -> None:
    """``python -m floe.reference [FOLDER]``: write the pages (committed under
    docs/reference/, so GitHub shows them; `make schemas` runs this)."""
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")
    folder.mkdir(parents=True, exist_ok=True)
    changelog = (folder.parent.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    for name, text in pages(changelog).items():
        (folder / name).write_text(text, encoding="utf-8")
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
