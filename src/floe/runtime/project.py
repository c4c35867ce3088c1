"""A compiled project as the runtime sees it: the artifact plus where its relative paths start."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from floe.artifacts import DEFAULT_ARTIFACTS_PATH, CompiledArtifacts, CompiledSource, load_artifacts
from floe.errors import FloeError
from floe.runtime.order import downstream, upstream
from floe.secrets import MissingSecretError, secret_names

ARTIFACTS_ENV = "FLOE_ARTIFACTS"


@dataclass(frozen=True)
class RuntimeProject:
    artifacts: CompiledArtifacts
    artifacts_path: Path

    @property
    def root(self) -> Path:
        """The project folder: relative paths in the artifact (catalog, files) start here."""
        return (self.artifacts_path.parent / self.artifacts.project_root).resolve()


def artifacts_path_from_env(default: Path = DEFAULT_ARTIFACTS_PATH) -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV, str(default)))


def load_project(path: Path | None = None) -> RuntimeProject:
    resolved = (path or artifacts_path_from_env()).resolve()
    return RuntimeProject(load_artifacts(resolved), resolved)


def require_environment(artifacts: CompiledArtifacts, env: str | None) -> None:
    """``--env E``: refuse an artifact compiled for another environment, saying what to do."""
    if env is not None and env != artifacts.environment.name:
        raise FloeError(f"the artifact was compiled for environment "
                        f"'{artifacts.environment.name}', not '{env}': run "
                        f"`floe compile --env {env}` first")


def select_sources(artifacts: CompiledArtifacts, names: Sequence[str]) -> list[CompiledSource]:
    """``--select``: names, with dbt's graph operators: ``a+`` also what depends on ``a``,
    ``+a`` also what ``a`` depends on."""
    if not names:
        return list(artifacts.sources)
    known = [s.name for s in artifacts.sources]
    plain = [n.strip("+") for n in names]
    unknown = [n for n in plain if n not in known]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise FloeError(f"--select: no source named {', '.join(hints)}; sources: "
                        + ", ".join(known))
    graph = {s.name: list(s.depends_on) for s in artifacts.sources}
    wanted: set[str] = set()
    for name, bare in zip(names, plain, strict=True):
        wanted.add(bare)
        if name.endswith("+"):
            wanted |= downstream(graph, bare)
        if name.startswith("+"):
            wanted |= upstream(graph, bare)
    return [s for s in artifacts.sources if s.name in wanted]


def require_secrets(artifacts: CompiledArtifacts, sources: Sequence[CompiledSource],
                    environ: Mapping[str, str] | None = None) -> None:
    """Say at once, before loading dlt and pyiceberg, when nothing selected can run for a
    secret that is not set: the platform's (every source needs the catalog), or one of each
    source's own.  A source whose secrets are set still runs next to one whose are not."""
    env = os.environ if environ is None else environ
    platform = sorted(secret_names(artifacts.environment.model_dump(mode="json")) - set(env))
    if platform:
        raise FloeError(f"environment '{artifacts.environment.name}': "
                        f"{MissingSecretError(platform[0])}")
    missing = {s.name: sorted(secret_names(s.source_config) - set(env)) for s in sources}
    if sources and all(missing.values()):
        raise FloeError("; ".join(f"source {name}: {MissingSecretError(names[0])}"
                                  for name, names in missing.items()))


def changed_inputs(project: RuntimeProject) -> list[str]:
    """The files the artifact was compiled from that differ on disk now (floe.yaml,
    platform.yaml).  A deployed artifact without its YAML next to it has none: it runs as
    it is."""
    changed = []
    for name, digest in project.artifacts.inputs.items():
        path = project.root / name
        try:
            if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                changed.append(name)
        except OSError:
            continue
    return changed


def stale_message(changed: Sequence[str]) -> str:
    return (f"{' and '.join(changed)} changed since the last floe compile: run floe compile, "
            "or floe run --compile")
