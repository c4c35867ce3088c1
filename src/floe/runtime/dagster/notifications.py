"""``notifications:`` as Dagster run-status sensors (rendering and delivery: ``notify.py``).

``failure`` and ``success`` alerts need the Dagster daemon (it runs the sensors).  A
``check_failure`` alert is sent by the check step itself (``check_failure_alerts``), so it goes
out under ``dagster asset materialize`` or any run without a daemon too, and the sensors leave
it alone (never twice).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from floe.artifacts import CompiledArtifacts, NotificationConfig, NotificationEvent
from floe.runtime.notify import notify

UI_URL_ENV = "DAGSTER_WEBSERVER_URL"


def _assets(context: dg.RunStatusSensorContext) -> str:
    """The assets the run set out to materialize (whatever job or selection started it)."""
    run = context.dagster_run
    records = context.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    keys = {record.event_log_entry.dagster_event.asset_key for record in records
            if record.event_log_entry.dagster_event is not None}
    names = sorted(k.to_user_string() for k in keys if k is not None)
    return ", ".join(names) or run.job_name


def _failed_checks(context: dg.RunStatusSensorContext) -> list[str]:
    records = context.instance.get_records_for_run(
        context.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed = []
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


def _dispatch(artifacts: CompiledArtifacts, notifications: Sequence[NotificationConfig],
              status: NotificationEvent, asset: str, error: str, run_id: str, log: Any
              ) -> None:
    """Send one alert about a Dagster run, linking the run in the UI; an alert that could not
    be delivered is a warning in the sensor's or step's log."""
    ui = os.environ.get(UI_URL_ENV, "http://localhost:3000").rstrip("/")
    for undelivered in notify(artifacts.product.name, notifications, status, asset=asset,
                              error=error, run_id=run_id, dagster_url=f"{ui}/runs/{run_id}"):
        log.warning(str(undelivered))


def _send(artifacts: CompiledArtifacts, notification: NotificationConfig,
          status: NotificationEvent, context: dg.RunStatusSensorContext, error: str) -> None:
    _dispatch(artifacts, [notification], status, _assets(context), error,
              context.dagster_run.run_id, context.log)


def check_failure_alerts(artifacts: CompiledArtifacts, asset: str, failed: list[str],
                         context: dg.AssetCheckExecutionContext) -> None:
    """``check_failure`` from the step that evaluated the checks: no daemon needed."""
    if failed:
        _dispatch(artifacts, artifacts.notifications, "check_failure", asset,
                  f"failed checks: {', '.join(failed)}", context.run.run_id, context.log)


def notification_sensors(artifacts: CompiledArtifacts) -> Iterator[dg.SensorDefinition]:
    for index, notification in enumerate(artifacts.notifications):
        yield from _sensors_for(artifacts, index, notification)


def _sensors_for(artifacts: CompiledArtifacts, index: int, notification: NotificationConfig
                 ) -> Iterator[dg.SensorDefinition]:
    running = dg.DefaultSensorStatus.RUNNING
    if "failure" in notification.on:
        @dg.run_failure_sensor(name=f"notify_{index}_on_failure", default_status=running)
        def _on_failure(context: dg.RunFailureSensorContext) -> None:
            error = context.failure_event.message or "run failed"
            step_failures = context.get_step_failure_events()
            errors = [e.step_failure_data.error for e in step_failures
                      if e.step_failure_data and e.step_failure_data.error]
            if errors:
                error = errors[0].message.strip()
            # a run failed only by blocking (error-severity) checks: the check step alerted
            if errors and all(e.cls_name == "DagsterAssetCheckFailedError" for e in errors):
                return
            _send(artifacts, notification, "failure", context, error)

        yield _on_failure
    if "success" in notification.on:
        @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS,
                              name=f"notify_{index}_on_success", default_status=running)
        def _on_success(context: dg.RunStatusSensorContext) -> None:
            if not _failed_checks(context):  # failed checks alerted from their step
                _send(artifacts, notification, "success", context, "")

        yield _on_success
