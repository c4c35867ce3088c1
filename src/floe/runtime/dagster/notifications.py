"""``notifications:`` as Dagster run-status sensors posting a JSON message to a webhook.

The webhook URL is a ``secret()``: it is read from the environment when a message is sent and
never logged.  A delivery that keeps failing is retried, then logged and dropped: an alert must
never crash the sensor that sends it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
import requests
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tenacity import Retrying, stop_after_attempt, wait_exponential

from floe.artifacts import CompiledArtifacts, NotificationConfig
from floe.logs import get_logger, mask, register_secret_value
from floe.secrets import resolve_secrets

log = get_logger("floe.notifications")
_TEMPLATES = ImmutableSandboxedEnvironment(autoescape=False)
UI_URL_ENV = "DAGSTER_WEBSERVER_URL"


def render(template: str, **values: Any) -> str:
    return _TEMPLATES.from_string(template).render(**values)


def deliver(webhook: str, payload: dict[str, Any], attempts: int = 3) -> bool:
    """POST ``payload``; True when the receiver accepted it (2xx)."""
    url: str = resolve_secrets(webhook, os.environ)
    register_secret_value(url)
    try:
        for attempt in Retrying(stop=stop_after_attempt(attempts), reraise=True,
                                wait=wait_exponential(multiplier=0.5, max=4)):
            with attempt:
                requests.post(url, json=payload, timeout=10).raise_for_status()
        return True
    except Exception as exc:
        # the URL is a secret: name the failure, never the address
        log.warning("notification.failed", error_type=type(exc).__name__,
                    error=mask(str(exc)), attempts=attempts)
        return False


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


def _send(artifacts: CompiledArtifacts, notification: NotificationConfig, status: str,
          context: dg.RunStatusSensorContext, error: str) -> None:
    run = context.dagster_run
    ui = os.environ.get(UI_URL_ENV, "http://localhost:3000").rstrip("/")
    values = {"product": artifacts.product.name, "asset": _assets(context), "status": status,
              "error": mask(error), "run_id": run.run_id, "dagster_url": f"{ui}/runs/{run.run_id}"}
    message = render(notification.template, **values)
    deliver(notification.webhook, {"text": message, **values})


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
            if step_failures:
                data = step_failures[0].step_failure_data
                error = data.error.message.strip() if data and data.error else error
            _send(artifacts, notification, "failure", context, error)

        yield _on_failure
    if "success" in notification.on or "check_failure" in notification.on:
        @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS,
                              name=f"notify_{index}_on_success", default_status=running)
        def _on_success(context: dg.RunStatusSensorContext) -> None:
            failed = _failed_checks(context) if "check_failure" in notification.on else []
            if failed:
                _send(artifacts, notification, "check_failure", context,
                      f"failed checks: {', '.join(failed)}")
            elif "success" in notification.on:
                _send(artifacts, notification, "success", context, "")

        yield _on_success
