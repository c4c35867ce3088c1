"""floe.yaml -> CompiledArtifacts.  Imports no dlt, dagster or pyiceberg (a test checks it)."""

from floe.compiler.project import CompileRequest, compile_project, parse_vars_option

__all__ = ["CompileRequest", "compile_project", "parse_vars_option"]
