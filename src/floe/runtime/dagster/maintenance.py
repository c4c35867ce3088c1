"""platform.yaml ``maintenance:`` as a Dagster job and schedule: ``floe maintain`` of every
table of the project (compaction, snapshot expiry, unreferenced files), on the platform's cron.
A table a load is committing to at that moment is left for the next run, as in the CLI.

(No ``from __future__ import annotations`` here: Dagster reads the op's annotations.)"""

import datetime as dt
from pathlib import Path

import dagster as dg

from floe.artifacts import CompiledArtifacts
from floe.runtime.dagster.automation import scheduled
from floe.runtime.iceberg.catalog import connect_catalog
from floe.runtime.maintain import maintain_source, record_maintenance
from floe.runtime.observe.export import telemetry

JOB_NAME = "floe_maintenance"


def maintenance_job(artifacts: CompiledArtifacts, root: Path) -> dg.JobDefinition | None:
    settings = artifacts.environment.maintenance
    if settings is None:
        return None

    @dg.op(name="floe_maintain", description="floe maintain of every source's tables")
    def maintain(context: dg.OpExecutionContext) -> dg.Output[int]:
        catalog = connect_catalog(artifacts.environment, root)
        metrics = telemetry(artifacts.environment)
        done = 0
        for source in artifacts.sources:
            for report in maintain_source(catalog, source,
                                          dt.timedelta(seconds=settings.older_than_seconds),
                                          settings.retain_last):
                context.log.info(f"{report.table}: {report.note}")
                record_maintenance(metrics, artifacts.product.name, source.name, report)
                done += 1
        metrics.flush()
        return dg.Output(done, metadata={"tables": done})

    @dg.job(name=JOB_NAME, description="Compact, expire and clean every Bronze table "
            f"(platform.yaml maintenance: {settings.schedule.cron} "
            f"{settings.schedule.timezone})")
    def job() -> None:
        maintain()

    return job


def maintenance_schedule(artifacts: CompiledArtifacts, job: dg.JobDefinition
                         ) -> dg.ScheduleDefinition:
    settings = artifacts.environment.maintenance
    assert settings is not None
    return scheduled(f"{JOB_NAME}__schedule", job, settings.schedule, "platform.yaml")
