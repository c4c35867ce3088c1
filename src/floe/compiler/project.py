"""The compiler pipeline: load -> render -> validate -> check -> build.

Problems from every stage and both files are collected and raised together as one
``CompileError``; only a file that cannot be parsed at all stops its own later stages.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from floe.artifacts import CompiledArtifacts
from floe.compiler.build import EMBEDDED_ENVIRONMENT, build_artifacts
from floe.compiler.checks import check_project, check_python_functions, probe_python_functions
from floe.compiler.loader import LoadedYaml, load_yaml_file, parse_yaml
from floe.compiler.positions import SourceMap
from floe.compiler.render import TemplateContext, render_value
from floe.compiler.spec import EnvironmentSpec, FloeSpec
from floe.compiler.validate import validate_document
from floe.errors import CompileError, Diagnostic

DEFAULT_ENVIRONMENT = "dev"


@dataclass(frozen=True)
class CompileRequest:
    """Everything a compile depends on; the same request always gives the same bytes."""

    floe_file: Path
    output_dir: Path
    environment: str | None = None
    vars_override: Mapping[str, Any] | None = None
    environ: Mapping[str, str] | None = None
    deep: bool = False  # also import python sources' functions, in a child process


def parse_vars_option(text: str) -> dict[str, Any]:
    """``--vars '{start: "2024-02-01"}'`` (YAML or JSON) -> dict."""
    loaded = parse_yaml(text.encode("utf-8"), "--vars")
    return dict(loaded.data)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load(path: Path, diagnostics: list[Diagnostic]) -> LoadedYaml | None:
    try:
        return load_yaml_file(path, _display(path))
    except CompileError as exc:
        diagnostics.extend(exc.diagnostics)
        return None


def _pydantic_diagnostics(exc: ValidationError, source_map: SourceMap) -> list[Diagnostic]:
    """Backstop for rules pydantic enforces that the schema did not catch."""
    return [
        source_map.diagnostic(tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    ]


def _inputs_sha256(parts: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def compile_project(request: CompileRequest) -> CompiledArtifacts:
    """Compile floe.yaml (+ its platform.yaml) into artifacts, or raise ``CompileError``."""
    environ = os.environ if request.environ is None else request.environ
    diagnostics: list[Diagnostic] = []
    floe_doc = load_yaml_file(request.floe_file, _display(request.floe_file))
    floe_map = floe_doc.source_map

    raw_vars = floe_doc.data.get("vars")
    variables: dict[str, Any] = {}
    if isinstance(raw_vars, dict):
        vars_context = TemplateContext(environ, {})
        variables = render_value(raw_vars, ("vars",), vars_context, floe_map, diagnostics)
    variables = {**variables, **(request.vars_override or {})}
    context = TemplateContext(environ, variables)

    def _runtime_template(path: tuple[str | int, ...]) -> bool:
        """Notification templates (and email subjects) render when a message is sent."""
        return path[:1] == ("notifications",) and path[2:] in (("template",),
                                                               ("email", "subject"))

    floe_data = render_value(floe_doc.data, (), context, floe_map, diagnostics,
                             skip=_runtime_template)
    diagnostics += validate_document(floe_data, "floe.schema.json", floe_map)

    platform_doc: LoadedYaml | None = None
    platform_data: dict[str, Any] | None = None
    platform_ref = floe_data.get("platform")
    if isinstance(platform_ref, str) and platform_ref:
        platform_path = request.floe_file.parent / platform_ref
        if not platform_path.is_file():
            diagnostics.append(floe_map.diagnostic(
                ("platform",), f"platform file '{platform_ref}' not found",
                "the path is relative to floe.yaml; remove `platform:` to use the embedded "
                "platform"))
        else:
            platform_doc = _load(platform_path, diagnostics)
        if platform_doc is not None:
            platform_data = render_value(platform_doc.data, (), context,
                                         platform_doc.source_map, diagnostics)
            diagnostics += validate_document(platform_data, "platform.schema.json",
                                             platform_doc.source_map)

    project_dir = request.floe_file.parent.resolve()
    python_problems = check_python_functions(floe_data, floe_map, project_dir)
    diagnostics += python_problems
    if request.deep and not python_problems:
        diagnostics += probe_python_functions(floe_data, floe_map, project_dir)
    diagnostics += check_project(floe_data, floe_map, platform_data,
                                 platform_doc.source_map if platform_doc else None)
    env_name, environment = _choose_environment(request.environment, platform_data,
                                                platform_doc, floe_map, diagnostics)
    if diagnostics:
        raise CompileError.from_diagnostics(diagnostics)

    try:
        floe_spec = FloeSpec.model_validate(floe_data)
    except ValidationError as exc:
        raise CompileError.from_diagnostics(_pydantic_diagnostics(exc, floe_map)) from None
    assert environment is not None
    inputs = [floe_doc.raw, platform_doc.raw if platform_doc else b"", env_name.encode(),
              json.dumps(request.vars_override or {}, sort_keys=True, default=str).encode(),
              json.dumps(sorted(context.env_vars_read.items())).encode()]
    folder = request.floe_file.resolve().parent
    project_root = os.path.relpath(folder, request.output_dir.resolve())
    files = {request.floe_file.name: hashlib.sha256(floe_doc.raw).hexdigest()}
    if platform_doc is not None:
        platform_path = (folder / str(platform_ref)).resolve()
        name = Path(os.path.relpath(platform_path, folder)).as_posix()
        files[name] = hashlib.sha256(platform_doc.raw).hexdigest()
    artifacts = build_artifacts(floe_spec, env_name, environment, _inputs_sha256(inputs),
                                Path(project_root).as_posix())
    return artifacts.model_copy(update={"inputs": files,
                                        "vars_override": dict(request.vars_override or {})})


def _choose_environment(
    requested: str | None, platform_data: dict[str, Any] | None,
    platform_doc: LoadedYaml | None, floe_map: SourceMap, diagnostics: list[Diagnostic],
) -> tuple[str, EnvironmentSpec | None]:
    name = requested or DEFAULT_ENVIRONMENT
    if platform_doc is None or platform_data is None:
        if requested not in (None, DEFAULT_ENVIRONMENT):
            diagnostics.append(Diagnostic(
                floe_map.file, 1, 1, "platform",
                f"--env {requested}: this project has no platform.yaml, so only the embedded "
                f"'{DEFAULT_ENVIRONMENT}' environment exists",
                "add `platform: platform.yaml` to floe.yaml with an environments: section"))
            return name, None
        return name, EMBEDDED_ENVIRONMENT
    environments = platform_data.get("environments")
    if not isinstance(environments, dict):
        return name, None
    if name not in environments:
        known = ", ".join(sorted(environments)) or "none"
        diagnostics.append(platform_doc.source_map.diagnostic(
            ("environments",), f"unknown environment '{name}' (defined: {known})",
            "pass --env with one of the defined names" if requested else
            f"pass --env, or define a '{DEFAULT_ENVIRONMENT}' environment", at_key=True))
        return name, None
    try:
        return name, EnvironmentSpec.model_validate(environments[name])
    except ValidationError:
        return name, None  # already reported by schema validation
