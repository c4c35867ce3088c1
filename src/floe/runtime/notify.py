"""Render a ``notifications:`` message and deliver it, for `floe run` and Dagster: a generic
webhook, Slack (incoming-webhook JSON), Teams (an Adaptive Card), email (SMTP) or Telegram
(the Bot API's sendMessage).

Targets are ``secret()``s: read from the environment when a message is sent and never logged.
A delivery that keeps failing is retried, then logged and dropped: an alert must never fail a
load or crash a sensor.
"""

from __future__ import annotations

import os
import re
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

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


DEFAULT_TEMPLATES: dict[str, str] = {
    "failure": "floe {{ product }}: {{ asset }} failed — {{ error }}",
    "success": "floe {{ product }}: {{ asset }} loaded",
    "check_failure": "floe {{ product }}: checks failed on {{ asset }} — {{ error }}",
}
DEFAULT_SUBJECT = "[floe {{ product }}] {{ status }}: {{ asset }}"


@dataclass(frozen=True)
class Undelivered:
    """An alert that could not be sent after its retries: said where the user looks (the run's
    output, the Dagster step's log), never with the target itself, which is a secret."""

    channel: str
    host: str  # the receiver's host (a webhook's path or an SMTP password never shows)
    error: str
    attempts: int

    def __str__(self) -> str:
        return (f"alert not delivered: {self.channel} to {self.host or 'an unset target'} "
                f"failed after {self.attempts} attempt(s): {self.error}")


def deliver(target: str, send: Callable[[str], None], attempts: int = 3,
            channel: str = "webhook") -> Undelivered | None:
    """Call ``send`` with the resolved target until it works; what failed, when it did not."""
    host = ""
    try:
        resolved: str = resolve_secrets(target, os.environ)
        register_secret_value(resolved)
        parts = urlsplit(resolved)
        # HTTP clients name the path in their errors, and a Slack/Teams webhook's path is the
        # credential itself (a short one like /alerts is not, and masking it everywhere would
        # garble unrelated text); an SMTP URL's password too
        for piece in (parts.path, parts.query):
            if len(piece) >= 8:
                register_secret_value(piece)
        register_secret_value(parts.password or "")
        host = parts.hostname or ""
        for attempt in Retrying(stop=stop_after_attempt(attempts), reraise=True,
                                wait=wait_exponential(multiplier=0.5, max=4)):
            with attempt:
                send(resolved)
        return None
    except Exception as exc:
        # the target is a secret: name the failure, never the address
        log.warning("notification.failed", error_type=type(exc).__name__,
                    error=mask(str(exc)), attempts=attempts)
        return Undelivered(channel, host, f"{type(exc).__name__}: {mask(str(exc))}",
                           attempts)


def notify(product: str, notifications: Sequence[NotificationConfig], event: NotificationEvent,
           *, asset: str, error: str, run_id: str, dagster_url: str = "") -> list[Undelivered]:
    """Send ``event`` to every notification that asks for it; returns what could not be."""
    values = {"product": product, "asset": asset, "status": event, "error": mask(error),
              "run_id": run_id, "dagster_url": dagster_url}
    failed = []
    for notification in notifications:
        if event in notification.on:
            undelivered = _send(notification, values)
            if undelivered is not None:
                failed.append(undelivered)
    return failed


def _post(payload: dict[str, Any]) -> Callable[[str], None]:
    def send(url: str) -> None:
        requests.post(url, json=payload, timeout=10).raise_for_status()
    return send


def teams_card(title: str, message: str) -> dict[str, Any]:
    """A Teams incoming-webhook message: one Adaptive Card with a title and the text."""
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
                     {"type": "TextBlock", "text": message, "wrap": True}]}}]}


def _email(notification: NotificationConfig, subject: str, body: str
           ) -> Callable[[str], None]:
    def send(url: str) -> None:
        parts = urlsplit(url)
        message = EmailMessage()
        message["From"] = notification.email_from or ""
        message["To"] = ", ".join(notification.email_to)
        message["Subject"] = subject
        message.set_content(body)
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        client: smtplib.SMTP = (smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP)(
            parts.hostname or "localhost", port, timeout=10)
        with client:
            if parts.scheme != "smtps" and client.has_extn("starttls"):
                client.starttls()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    return send


TELEGRAM_API = "https://api.telegram.org"
_MARKDOWN_V2 = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def telegram_escape(text: str) -> str:
    """Text as MarkdownV2 shows it literally: a table such as ``bronze.my_table`` or an error
    with ``*`` and ``[...]`` must not turn into formatting (or a rejected message)."""
    return _MARKDOWN_V2.sub(r"\\\1", text)


def telegram_message(title: str, message: str) -> str:
    return f"*{telegram_escape(title)}*\n{telegram_escape(message)}"


def _telegram(notification: NotificationConfig, text: str) -> Callable[[str], None]:
    def send(token: str) -> None:
        base = os.environ.get("FLOE_TELEGRAM_API_URL", TELEGRAM_API).rstrip("/")
        requests.post(f"{base}/bot{token}/sendMessage", timeout=10, json={
            "chat_id": notification.chat_id, "text": text, "parse_mode": "MarkdownV2",
            "disable_web_page_preview": True}).raise_for_status()
    return send


def _send(notification: NotificationConfig, values: dict[str, str]) -> Undelivered | None:
    template = notification.template or DEFAULT_TEMPLATES[values["status"]]
    message = render(template, **values)
    if notification.channel == "slack":
        send = _post({"text": message})
    elif notification.channel == "teams":
        send = _post(teams_card(render(DEFAULT_SUBJECT, **values), message))
    elif notification.channel == "email":
        subject = render(notification.subject or DEFAULT_SUBJECT, **values)
        send = _email(notification, subject, message)
    elif notification.channel == "telegram":
        send = _telegram(notification, telegram_message(render(DEFAULT_SUBJECT, **values),
                                                        message))
    else:
        send = _post({"text": message, **values})
    return deliver(notification.target, send, channel=notification.channel)
