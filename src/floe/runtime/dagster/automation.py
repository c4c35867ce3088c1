"""When sources load: a job per source with its retry policy and timeout, a schedule from its
cron, and a new-files sensor for filesystem sources.  Dagster's daemon runs them; floe never
schedules anything itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from floe.artifacts import CompiledSource, ScheduleConfig
from floe.logs import mask
from floe.runtime.ingestion.sources import list_files


def ingestion_job(source: CompiledSource, keys: Sequence[dg.AssetKey]
                  ) -> dg.UnresolvedAssetJobDefinition:
    """The source's assets and their checks; retries and timeout come from floe.yaml."""
    retry = source.retry
    tags = {"floe/source": source.name}
    if source.timeout_seconds:
        tags["dagster/max_runtime"] = str(source.timeout_seconds)  # enforced by run monitoring
    return dg.define_asset_job(
        name=f"ingest__{source.name}",
        selection=dg.AssetSelection.assets(*keys),
        description=f"Load {source.name} into {source.destination_table}",
        op_retry_policy=dg.RetryPolicy(max_retries=retry.max_retries,
                                       delay=retry.initial_delay_seconds,
                                       backoff=dg.Backoff.EXPONENTIAL),
        tags=tags)


def ingestion_schedule(source: CompiledSource, job: dg.UnresolvedAssetJobDefinition
                       ) -> dg.ScheduleDefinition | None:
    if source.schedule is None:
        return None
    return scheduled(f"ingest__{source.name}__schedule", job, source.schedule, "floe.yaml")


def scheduled(name: str, job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition,
              schedule: ScheduleConfig, origin: str) -> dg.ScheduleDefinition:
    """A running Dagster schedule for ``job`` from a compiled cron and time zone."""
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone, default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{schedule.cron} ({schedule.timezone}) from {origin}")


def new_files_sensor(source: CompiledSource, job: dg.UnresolvedAssetJobDefinition,
                     project_root: Path) -> dg.SensorDefinition | None:
    """Starts the source's job when files newer than the last ones seen arrive.

    The cursor is the newest modification time seen; the run key names it, so the same
    arrival never starts two runs.
    """
    if source.source_type != "filesystem":
        return None

    @dg.sensor(name=f"ingest__{source.name}__new_files", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"New files for {source.name}")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            files = list_files(source, project_root)
        except Exception as exc:
            return dg.SkipReason(f"cannot list files: {type(exc).__name__}: {mask(str(exc))}")
        seen = float(context.cursor) if context.cursor else None
        new = sum(1 for _, mtime in files if seen is None or mtime > seen)
        if not new:
            return dg.SkipReason("no new files")
        newest = max(mtime for _, mtime in files)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{source.name}:{newest}",
                                        tags={"floe/new_files": str(new)})],
            cursor=str(newest))

    return _sensor
