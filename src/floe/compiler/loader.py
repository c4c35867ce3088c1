"""Stage 1, load: YAML text -> plain Python values plus a ``SourceMap`` of their positions.

We compose with ruamel.yaml's C parser and build the Python values ourselves instead of using a
constructor: that gives a position for every node (scalars included), lets us reject duplicate
keys with a location, and lets us bound alias expansion so a billion-laughs file fails fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from floe.compiler.positions import SourceMap
from floe.errors import CompileError, Diagnostic, KeyPath, format_key_path

MAX_FILE_BYTES = 5 * 1024 * 1024
"""floe.yaml for 5,000 sources is about 1.5 MB; anything far larger is a mistake or an attack."""

MAX_NODES = 500_000
"""Upper bound on values after alias expansion: a billion-laughs document hits it fast."""

_TAG = "tag:yaml.org,2002:"


@dataclass(frozen=True)
class LoadedYaml:
    """A parsed YAML file: its values, where they were written, and its raw bytes (for hashing)."""

    data: Any
    source_map: SourceMap
    raw: bytes


def load_yaml_file(path: Path, display_name: str) -> LoadedYaml:
    """Read and parse one YAML file, raising ``CompileError`` with a location on any problem."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CompileError(
            f"{display_name}: file not found",
            [Diagnostic(display_name, 1, 1, "", "file not found",
                        "run `floe init` to create a project, or pass -f PATH")],
        ) from None
    if size > MAX_FILE_BYTES:
        raise CompileError.from_diagnostics([Diagnostic(
            display_name, 1, 1, "",
            f"file is {size / 1024 / 1024:.1f} MiB, larger than the "
            f"{MAX_FILE_BYTES // 1024 // 1024} MiB limit",
            "split the project, or check that this is really a floe.yaml",
        )])
    raw = path.read_bytes()
    return parse_yaml(raw, display_name)


def parse_yaml(raw: bytes, display_name: str) -> LoadedYaml:
    """Parse YAML bytes; the document must be a mapping."""
    source_map = SourceMap(display_name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CompileError.from_diagnostics([Diagnostic(
            display_name, 1, 1, "", f"file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        )]) from None
    try:
        root = YAML(typ="safe", pure=False).compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise CompileError.from_diagnostics([Diagnostic(
            display_name, line, column, "", f"YAML syntax error: {problem}",
            "check indentation, unclosed quotes and brackets around this line",
        )]) from None
    except YAMLError as exc:
        raise CompileError.from_diagnostics(
            [Diagnostic(display_name, 1, 1, "", f"YAML error: {exc}")]
        ) from None
    if root is None:
        raise CompileError.from_diagnostics([Diagnostic(
            display_name, 1, 1, "", "file is empty",
            "start from `floe init`, or see examples/quickstart/floe.yaml",
        )])
    builder = _Builder(source_map)
    data = builder.build(root, ())
    if builder.diagnostics:
        raise CompileError.from_diagnostics(builder.diagnostics)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({data!r})"
        raise CompileError.from_diagnostics([Diagnostic(
            display_name, root.start_mark.line + 1, root.start_mark.column + 1, "",
            f"the document is {kind}; it must be a mapping of keys such as apiVersion, kind, "
            "metadata",
        )])
    return LoadedYaml(data, source_map, raw)


class _Builder:
    """Turns composed nodes into JSON-compatible Python values, recording positions."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map
        self.diagnostics: list[Diagnostic] = []
        self.nodes_built = 0
        self._in_progress: set[int] = set()

    def _fail(self, node: Node, path: KeyPath, message: str, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(
            self.source_map.file, node.start_mark.line + 1, node.start_mark.column + 1,
            format_key_path(path), message, hint,
        ))

    def build(self, node: Node, path: KeyPath) -> Any:
        self.nodes_built += 1
        if self.nodes_built > MAX_NODES:
            raise CompileError.from_diagnostics([Diagnostic(
                self.source_map.file, node.start_mark.line + 1, node.start_mark.column + 1,
                format_key_path(path),
                f"document expands to more than {MAX_NODES:,} values",
                "this usually means nested YAML anchors/aliases (a 'billion laughs' document)",
            )])
        self.source_map.values.setdefault(path, (node.start_mark.line + 1,
                                                 node.start_mark.column + 1))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._in_progress:
            self._fail(node, path, "recursive YAML alias: a node contains itself")
            return None
        self._in_progress.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._in_progress.discard(id(node))
        self._fail(node, path, f"unsupported YAML node {type(node).__name__}")
        return None

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.update(self._merge_sources(value_node, path))
                continue
            if not isinstance(key_node, ScalarNode):
                self._fail(key_node, path, "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                self._fail(key_node, child, f"duplicate key '{key}'",
                           "YAML keeps only one of them; remove or rename the other")
                continue
            self.source_map.keys[child] = (key_node.start_mark.line + 1,
                                           key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child)
        return {**merged, **result} if merged else result

    def _merge_sources(self, node: Node, path: KeyPath) -> dict[str, Any]:
        """``<<: *anchor`` or ``<<: [*a, *b]`` (earlier entries win, as in YAML 1.1)."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            value = self.build(source, path)
            if isinstance(value, dict):
                merged.update(value)
            else:
                self._fail(source, path, "'<<' merge key needs a mapping (an alias to one)")
        return merged

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        tag = node.tag.removeprefix(_TAG) if node.tag else "str"
        value: str = node.value
        if node.style:  # quoted or block: where its text starts (expressions point into it)
            self.source_map.styles[path] = node.style
        try:
            if tag == "null":
                return None
            if tag == "bool":
                return value.lower() == "true"
            if tag == "int":
                cleaned = value.replace("_", "")
                for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
                    if cleaned.lower().startswith(prefix):
                        return int(cleaned[2:], base)
                return int(cleaned)
            if tag == "float":
                lowered = value.lower().replace("_", "")
                if lowered.endswith(".inf"):
                    return float(lowered.replace(".", ""))
                return float("nan") if lowered == ".nan" else float(lowered)
        except ValueError:
            return value
        if tag not in {"str", "timestamp"}:  # timestamps stay as written: JSON has no dates
            self._fail(node, path, f"unsupported YAML tag '{node.tag}'",
                       "floe.yaml uses plain YAML; remove the tag")
        return value
