"""A compiled project as the runtime sees it: the artifact plus where its relative paths start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from floe.artifacts import DEFAULT_ARTIFACTS_PATH, CompiledArtifacts, load_artifacts
from floe.errors import FloeError

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
