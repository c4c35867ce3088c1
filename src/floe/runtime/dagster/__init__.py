"""A Dagster code location built from the compiled artifact (never from floe.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from floe.logs import configure_logging, get_logger
from floe.runtime.dagster.assets import asset_key, ingestion_assets, quality_checks
from floe.runtime.dagster.automation import ingestion_job, ingestion_schedule, new_files_sensor
from floe.runtime.dagster.maintenance import maintenance_job, maintenance_schedule
from floe.runtime.dagster.notifications import notification_sensors
from floe.runtime.ingestion.plugin import DltIngestionPlugin
from floe.runtime.project import RuntimeProject, changed_inputs, load_project, stale_message

__all__ = ["asset_key", "build_definitions", "definitions_for"]


def definitions_for(project: RuntimeProject) -> dg.Definitions:
    """Assets, checks, jobs, schedules and sensors for every compiled source.

    Nothing connects here: sources are lazy and the catalog opens on the first run, so the
    code location loads even while the catalog or a source is down.  A project without
    sources gives an empty (but valid) code location.
    """
    # run workers log to stderr, which Dagster keeps as compute logs: info is useful there
    configure_logging(os.environ.get("FLOE_LOG_LEVEL") or "info")
    artifacts, root = project.artifacts, project.root
    plugin = DltIngestionPlugin(artifacts.environment, root)
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = list(notification_sensors(artifacts))
    for source in artifacts.sources:
        definition = ingestion_assets(artifacts, source, plugin, root)
        assets.append(definition)
        keys = list(definition.keys)
        for name in _resources(definition):
            check = quality_checks(artifacts, source, name, plugin)
            if check is not None:
                checks.append(check)
        job = ingestion_job(source, keys)
        jobs.append(job)
        schedule = ingestion_schedule(source, job)
        if schedule is not None:
            schedules.append(schedule)
        sensor = new_files_sensor(source, job, root)
        if sensor is not None:
            sensors.append(sensor)
    all_jobs: list[dg.JobDefinition | dg.UnresolvedAssetJobDefinition] = list(jobs)
    maintenance = maintenance_job(artifacts, root)
    if maintenance is not None:
        all_jobs.append(maintenance)
        schedules.append(maintenance_schedule(artifacts, maintenance))
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=all_jobs,
                          schedules=schedules, sensors=sensors)


def _resources(definition: dg.AssetsDefinition) -> list[str]:
    """The resources behind an ingestion asset (none for a source that could not be loaded:
    no table to check)."""
    return [str(spec.metadata["floe/resource"]) for spec in definition.specs
            if "floe/resource" in spec.metadata]


def build_definitions(artifacts_path: Path | None = None) -> dg.Definitions:
    """The code location for ``artifacts_path`` (default: ``$FLOE_ARTIFACTS`` or
    ``target/compiled_artifacts.json``); a missing or incompatible artifact fails loudly.
    An artifact older than its floe.yaml loads (a code location must not go down for it),
    with a warning in the code location's log."""
    project = load_project(artifacts_path)
    changed = changed_inputs(project)
    if changed:
        get_logger("floe.dagster").warning("artifact.stale", artifact=str(project.artifacts_path),
                                           message=stale_message(changed))
    return definitions_for(project)
