"""Render a ``notifications:`` template and post it to the webhook, for `floe run` and Dagster.

The webhook URL is a ``secret()``: it is read from the environment when a message is sent and
never logged.  A delivery that keeps failing is retried, then logged and dropped: an alert must
never fail a load or crash a sensor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import requests
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tenacity import Retrying, stop_after_attempt, wait_exponential

from floe.artifacts import NotificationConfig, NotificationEvent
from floe.logs import get_logger, mask, register_secret_value
from floe.secrets import resolve_secrets

log = get_logger("floe.notifications")
_TEMPLATES = ImmutableSandboxedEnvironment(autoescape=False)


def render(template: str, **values: Any) -> str:
    return _TEMPLATES.from_string(template).render(**values)


def deliver(webhook: str, payload: dict[str, Any], attempts: int = 3) -> bool:
    """POST ``payload`` as JSON; True when the receiver accepted it (2xx)."""
    try:
        url: str = resolve_secrets(webhook, os.environ)
        register_secret_value(url)
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


def notify(product: str, notifications: Sequence[NotificationConfig], event: NotificationEvent,
           *, asset: str, error: str, run_id: str, dagster_url: str = "") -> int:
    """Send ``event`` to every notification that asks for it; returns how many were sent."""
    values = {"product": product, "asset": asset, "status": event, "error": mask(error),
              "run_id": run_id, "dagster_url": dagster_url}
    sent = 0
    for notification in notifications:
        if event in notification.on:
            sent += _send(notification, values)
    return sent


def _send(notification: NotificationConfig, values: dict[str, str]) -> int:
    message = render(notification.template, **values)
    return int(deliver(notification.webhook, {"text": message, **values}))
