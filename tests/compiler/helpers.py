"""Small helpers for compiler tests: write a project, compile it, read back the errors."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from floe.artifacts import CompiledArtifacts
from floe.compiler import CompileRequest, compile_project
from floe.errors import CompileError

VALID = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata:
  name: shop
  version: 1.0.0
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config:
      bucket_url: data
      file_glob: "*.csv"
"""


def write(tmp_path: Path, text: str, name: str = "floe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def compile_text(
    tmp_path: Path, text: str, *, env: str | None = None,
    vars_override: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
) -> CompiledArtifacts:
    path = write(tmp_path, text)
    return compile_project(CompileRequest(
        floe_file=path, output_dir=tmp_path / "target", environment=env,
        vars_override=vars_override, environ=environ or {}))


def errors_of(tmp_path: Path, text: str, **kwargs: Any) -> list[str]:
    """Compile and return every diagnostic as 'line:col: key: message' (file name dropped)."""
    with pytest.raises(CompileError) as info:
        compile_text(tmp_path, text, **kwargs)
    return [d.render().split("\n")[0].split(":", 1)[1] for d in info.value.diagnostics]


def hints_of(tmp_path: Path, text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(CompileError) as info:
        compile_text(tmp_path, text, **kwargs)
    return [d.hint for d in info.value.diagnostics]
