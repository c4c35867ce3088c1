"""The ``floe`` command.

Exit codes CI can rely on: 0 success, 1 a problem the user can fix (bad YAML, bad option, a
failed load), 2 a bug in floe.  Heavy libraries (dlt, pyiceberg, dagster) are imported inside
the commands that need them, so ``floe compile`` stays fast and light.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from floe import __version__
from floe.artifacts import (
    DEFAULT_ARTIFACTS_PATH,
    CompiledArtifacts,
    load_artifacts,
    write_artifacts,
)
from floe.errors import ArtifactError, FloeError
from floe.logs import configure_logging, get_logger, mask

app = typer.Typer(
    name="floe",
    help="Declarative YAML to Bronze Apache Iceberg tables: compile, run, schedule, check.\n\n"
    "Start with `floe init`, then `floe compile` and `floe run`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
log = get_logger("floe.cli")

FileOption = Annotated[Path, typer.Option(
    "--file", "-f", help="The project file.", show_default=True, dir_okay=False)]
OutputOption = Annotated[Path, typer.Option(
    "--output", "-o", help="Folder for compiled_artifacts.json.", file_okay=False)]
EnvOption = Annotated[str | None, typer.Option(
    "--env", "-e", help="Environment from platform.yaml.", show_default="dev")]
VarsOption = Annotated[str | None, typer.Option(
    "--vars", help="Override vars, as YAML/JSON: --vars '{start: \"2024-02-01\"}'.",
    show_default="floe.yaml's vars")]


def _print_lines(console: Console, text: str) -> None:
    console.print(mask(text), markup=False, highlight=False)


def _compile(file: Path, output: Path, env: str | None, vars_text: str | None,
             deep: bool = False) -> CompiledArtifacts:
    from floe.compiler import CompileRequest, compile_project, parse_vars_option

    if not file.exists():
        raise FloeError(f"{file} not found in {Path.cwd()}: run `floe init` to create a project, "
                        "or pass -f PATH")
    overrides = parse_vars_option(vars_text) if vars_text else None
    request = CompileRequest(floe_file=file, output_dir=output, environment=env,
                             vars_override=overrides, deep=deep)
    artifacts = compile_project(request)
    log.info("compiled", product=artifacts.product.name, sources=len(artifacts.sources),
             environment=artifacts.environment.name, inputs_sha256=artifacts.inputs_sha256)
    return artifacts


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path(),
) -> None:
    """Create a new project (floe.yaml + sample data) that compiles and runs as it is."""
    from floe.scaffold import init_project

    created = init_project(directory)
    for path in created:
        out.print(f"  created {path}")
    where = "" if directory == Path() else f"cd {directory} && "
    out.print(f"Next: {where}floe compile && floe run")


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(
        help="floe, platform or artifacts.", show_default=True)] = "floe",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write every schema into this folder (e.g. schemas) instead "
        "of printing one.", file_okay=False, show_default="print")] = None,
) -> None:
    """The installed floe's JSON Schema for floe.yaml, platform.yaml or the artifact: for
    editors (yaml-language-server) and CI, offline."""
    from floe.scaffold import SCHEMA_FILES, schema_text

    if kind not in SCHEMA_FILES:
        raise FloeError(f"unknown schema {kind!r}: use one of {', '.join(SCHEMA_FILES)}")
    if output is None:
        print(schema_text(kind), end="")
        return
    output.mkdir(parents=True, exist_ok=True)
    for name, filename in SCHEMA_FILES.items():
        (output / filename).write_text(schema_text(name), encoding="utf-8")
        out.print(f"  wrote {output / filename}")


@app.command()
def validate(
    file: FileOption = Path("floe.yaml"),
    env: EnvOption = None,
    vars: VarsOption = None,
    deep: Annotated[bool, typer.Option(
        "--deep", help="Also import each python source's function (in a child process) and "
        "check its args against its signature.", show_default="off")] = False,
) -> None:
    """Check floe.yaml and platform.yaml without writing anything; lists every error."""
    artifacts = _compile(file, DEFAULT_ARTIFACTS_PATH.parent, env, vars, deep)
    out.print(f"{file} is valid: {len(artifacts.sources)} source(s), "
              f"environment {artifacts.environment.name}")


@app.command(name="compile")
def compile_command(
    file: FileOption = Path("floe.yaml"),
    output: OutputOption = DEFAULT_ARTIFACTS_PATH.parent,
    env: EnvOption = None,
    vars: VarsOption = None,
) -> None:
    """Validate the project and write target/compiled_artifacts.json for `floe run` and Dagster."""
    artifacts = _compile(file, output, env, vars)
    target = output / DEFAULT_ARTIFACTS_PATH.name
    write_artifacts(artifacts, target)
    out.print(f"Compiled {artifacts.product.name} {artifacts.product.version}: "
              f"{len(artifacts.sources)} source(s), environment {artifacts.environment.name} "
              f"-> {target}")


@app.command()
def plan(
    file: FileOption = Path("floe.yaml"),
    output: OutputOption = DEFAULT_ARTIFACTS_PATH.parent,
    env: EnvOption = None,
    vars: VarsOption = None,
) -> None:
    """Show what changed since the last `floe compile`, flagging risky changes. Writes nothing."""
    from floe.compiler.plan import plan as make_plan

    new = _compile(file, output, env, vars)
    previous_path = output / DEFAULT_ARTIFACTS_PATH.name
    old: CompiledArtifacts | None = None
    if previous_path.exists():
        try:
            old = load_artifacts(previous_path)
        except ArtifactError as exc:
            err.print(f"note: ignoring previous artifacts: {exc.message}", markup=False)
    changes = make_plan(old, new)
    if not changes:
        out.print("No changes.")
        return
    for change in changes:
        _print_lines(out, _describe(change))
    risky = sum(1 for c in changes if c.risk)
    out.print(f"{len(changes)} change(s), {risky} risky.")


def _describe(change: Any) -> str:
    """One line a change: ``~ orders  write_mode: append -> replace  [risky: ...]``."""
    symbol = {"added": "+", "removed": "-"}.get(change.kind, "~")
    if change.kind in {"added", "removed"}:
        line = f"{symbol} {change.source}  {change.kind}"
    else:
        line = (f"{symbol} {change.source or 'environment'}  {change.field}: "
                f"{_cell(change.before)} -> {_cell(change.after)}")
    return f"{line}  [risky: {change.risk}]" if change.risk else line


def _cell(value: Any) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


SelectOption = Annotated[list[str] | None, typer.Option(
    "--select", "-s", help="Only these sources (repeatable; a+ adds what depends on a, +a "
    "what a depends on).", show_default="every source")]
CompiledEnvOption = Annotated[str | None, typer.Option(
    "--env", "-e", help="Refuse unless the artifact was compiled for this environment.",
    show_default="any")]
ArtifactsOption = Annotated[Path | None, typer.Option(
    "--artifacts", "-a", help="The compiled artifact to read.", dir_okay=False,
    show_default="$FLOE_ARTIFACTS or target/compiled_artifacts.json")]


def _artifact_first(artifacts: Path | None, env: str | None = None,
                    select: Sequence[str] | None = None, fresh: bool = False) -> None:
    """Read the artifact before importing the runtime (dlt, pyiceberg, pyarrow: ~2 s), so a
    missing or stale artifact, an unknown --select name or an unset secret is said at once.
    ``fresh``: refuse an artifact whose floe.yaml or platform.yaml changed since it was
    compiled (a run must never silently use the old one)."""
    from floe.runtime.project import (
        changed_inputs,
        load_project,
        require_environment,
        require_secrets,
        select_sources,
        stale_message,
    )

    project = load_project(artifacts)
    loaded = project.artifacts
    require_environment(loaded, env)
    if fresh and (changed := changed_inputs(project)):
        raise FloeError(stale_message(changed))
    if select is not None:
        require_secrets(loaded, select_sources(loaded, select))


def _recompile(artifacts: Path | None, env: str | None) -> None:
    """``floe run --compile``: compile the project the artifact came from, with the
    environment and --vars it was compiled with (or ./floe.yaml when there is none yet)."""
    from floe.runtime.project import artifacts_path_from_env, load_project

    target = (artifacts or artifacts_path_from_env()).resolve()
    file, vars_text, environment = Path("floe.yaml"), None, env
    if target.exists():
        try:
            project = load_project(target)
        except ArtifactError:
            project = None
        if project is not None:
            names = list(project.artifacts.inputs)
            file = project.root / (names[0] if names else "floe.yaml")
            environment = env or project.artifacts.environment.name
            if project.artifacts.vars_override:
                import json

                vars_text = json.dumps(project.artifacts.vars_override)
    compiled = _compile(file, target.parent, environment, vars_text)
    write_artifacts(compiled, target)
    out.print(f"Compiled {compiled.product.name} {compiled.product.version}: "
              f"{len(compiled.sources)} source(s), environment {compiled.environment.name} "
              f"-> {target}")


@app.command()
def run(
    select: SelectOption = None,
    full_refresh: Annotated[bool, typer.Option(
        "--full-refresh", help="Forget incremental cursors and replace the tables' contents.",
        show_default="off")] = False,
    artifacts: ArtifactsOption = None,
    env: CompiledEnvOption = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="Sources loaded at once, in depends_on order.", min=1,
        show_default="min(4, CPUs)")] = None,
    compile_first: Annotated[bool, typer.Option(
        "--compile", help="Compile first (same environment and --vars as the artifact), "
        "instead of stopping when floe.yaml changed since the last compile.",
        show_default="off")] = False,
) -> None:
    """Load every source (or --select ones: a+ adds what depends on a, +a what a depends on)
    into Iceberg in dependency order, then run their checks and alerts."""
    if compile_first:
        _recompile(artifacts, env)
    _artifact_first(artifacts, env, select or [], fresh=True)
    from floe.runtime.console import run_with_progress

    failed = run_with_progress(out, artifacts, select or [], full_refresh, env,
                               threads or min(4, os.cpu_count() or 1))
    if failed:
        raise typer.Exit(1)


@app.command()
def tables(artifacts: ArtifactsOption = None) -> None:
    """List the Bronze tables in the catalog with row counts and their last snapshot."""
    _artifact_first(artifacts)
    from floe.runtime.console import print_tables

    print_tables(out, artifacts)


@app.command()
def show(
    table: Annotated[str, typer.Argument(help="NAMESPACE.TABLE, e.g. bronze.orders")],
    limit: Annotated[int, typer.Option("--limit", "-n", help="Sample rows to print.")] = 10,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="History tables (scd2): the rows valid at this source time (ISO, "
        "e.g. 2024-03-31T23:59:59Z).", show_default="the current versions and all others")
    ] = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Print a table's schema, its snapshots and sample rows."""
    _artifact_first(artifacts)
    from floe.runtime.console import print_table_details

    print_table_details(out, artifacts, table, limit, as_of)


@app.command()
def changes(
    table: Annotated[str, typer.Argument(help="NAMESPACE.TABLE, e.g. bronze.orders")],
    since: Annotated[str | None, typer.Option(
        "--since", help="Changes committed after this snapshot id or ISO time.",
        show_default="the consumer's position, else the table's beginning")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Up to this snapshot id or ISO time.", show_default="now")] = None,
    consumer: Annotated[str | None, typer.Option(
        "--consumer", help="Read from where this consumer stopped, then record where it is "
        "now (each change once).", show_default="none")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="table, jsonl or parquet (parquet needs -o).")] = "table",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here.", show_default="the terminal")] = None,
    artifacts: ArtifactsOption = None,
    env: CompiledEnvOption = None,
) -> None:
    """Rows that changed between two snapshots: inserts and deletes (an update is both)."""
    if output_format not in ("table", "jsonl", "parquet"):
        raise FloeError(f"--format {output_format}: use table, jsonl or parquet")
    if output_format == "parquet" and output is None:
        raise FloeError("--format parquet needs -o PATH")
    _artifact_first(artifacts, env)
    from floe.runtime.changes import changes as read_changes
    from floe.runtime.changes import write_changes

    found = read_changes(table, since, until, consumer, artifacts, env)
    write_changes(out, found, output_format, output)


@app.command()
def verify(
    select: SelectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines.",
                                          show_default="off")] = False,
    sample: Annotated[int, typer.Option(
        "--sample", help="Name up to this many differing keys per table.")] = 10,
    artifacts: ArtifactsOption = None,
    env: CompiledEnvOption = None,
) -> None:
    """Compare Bronze with its sources: row counts, checksums, lag, and the keys that differ."""
    _artifact_first(artifacts, env)
    from floe.runtime.verify import print_verification

    if print_verification(out, artifacts, select or [], env, as_json, sample):
        raise typer.Exit(1)


@app.command()
def status(
    select: SelectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines.",
                                          show_default="off")] = False,
    lag: Annotated[bool, typer.Option(
        "--lag/--no-lag", help="Ask CDC sources' databases how far behind they are.")] = True,
    artifacts: ArtifactsOption = None,
    env: CompiledEnvOption = None,
) -> None:
    """Every source's last successful load, its age against its freshness_sla, the last
    failure if newer, and CDC lag: from the catalog. Exit 1 when any is not fresh."""
    _artifact_first(artifacts, env)
    from floe.runtime.observe.status import print_status

    if print_status(out, artifacts, select or [], env, as_json, lag):
        raise typer.Exit(1)


@app.command()
def maintain(
    select: SelectOption = None,
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Expire snapshots older than this (30m, 12h, 7d).")] = "7d",
    retain_last: Annotated[int, typer.Option(
        "--retain-last", help="Always keep this many newest snapshots.", min=1)] = 10,
    artifacts: ArtifactsOption = None,
    env: CompiledEnvOption = None,
) -> None:
    """Compact small data files and expire old snapshots (cursors and consumers kept)."""
    import datetime as dt
    import re

    from floe.compiler.build import duration_seconds

    if not re.fullmatch(r"\d+(\.\d+)?\s*(s|m|h|d|w)", older_than):
        raise FloeError(f"--older-than {older_than}: use a duration such as 30m, 12h or 7d")
    _artifact_first(artifacts, env)
    from floe.runtime.maintain import print_maintenance

    print_maintenance(out, artifacts, select or [], env,
                      dt.timedelta(seconds=duration_seconds(older_than)), retain_last)


@app.command()
def dev(
    file: FileOption = Path("floe.yaml"),
    output: OutputOption = DEFAULT_ARTIFACTS_PATH.parent,
    env: EnvOption = None,
    vars: VarsOption = None,
    host: Annotated[str, typer.Option("--host", help="Address the UI listens on.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port of the UI.")] = 3000,
) -> None:
    """Compile, then open the Dagster UI (assets, schedules, checks) on this project."""
    import subprocess

    artifacts = _compile(file, output, env, vars)
    target = (output / DEFAULT_ARTIFACTS_PATH.name).resolve()
    write_artifacts(artifacts, target)
    environ = {**os.environ, "FLOE_ARTIFACTS": str(target)}
    if "DAGSTER_HOME" not in environ:  # keep run history with the project, not in /tmp
        home = Path(".floe/dagster").resolve()
        home.mkdir(parents=True, exist_ok=True)
        environ["DAGSTER_HOME"] = str(home)
    environ.setdefault("DAGSTER_WEBSERVER_URL", f"http://{host}:{port}")
    out.print(f"Dagster UI for {artifacts.product.name}: http://{host}:{port}  (Ctrl+C stops)")
    command = [sys.executable, "-m", "dagster", "dev", "-m", "floe.runtime.dagster.definitions",
               "-h", host, "-p", str(port)]
    try:
        code = subprocess.run(command, env=environ, check=False).returncode
    except KeyboardInterrupt:
        code = 0
    if code:
        raise typer.Exit(1)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"floe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version_callback, is_eager=True, help="Show the version.")] = False,
    log_level: Annotated[str | None, typer.Option(
        "--log-level", help="debug, info, warning or error.",
        show_default="$FLOE_LOG_LEVEL or error")] = None,
) -> None:
    configure_logging(log_level)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns every user mistake into a message and exit 1, never a traceback."""
    configure_logging()
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option, unknown command, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(str(exc), markup=False)
        sys.exit(1)
    except FloeError as exc:
        _print_lines(err, exc.render())
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug in floe, not the user's mistake
        _print_lines(err, f"internal error in floe {__version__}: {type(exc).__name__}: {exc}\n"
                     "This is a bug; please report it with the command you ran. "
                     "Set FLOE_DEBUG=1 for the traceback.")
        if os.environ.get("FLOE_DEBUG"):
            import traceback

            traceback.print_exc()
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
