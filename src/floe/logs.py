"""structlog set-up shared by every command.

Logs go to stderr (stdout is for results) at FLOE_LOG_LEVEL (default: error; the CLI already
prints failures in its own summary), as JSON lines when
FLOE_LOG_FORMAT=json (for machines) and as key=value text otherwise.  Every event passes through
``redact_secrets`` first, so a secret resolved at run time cannot reach a log line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_VALUES: set[str] = set()


def register_secret_value(value: str) -> None:
    """Remember a resolved secret so any log event that would contain it is masked."""
    if len(value) >= 4:
        _SECRET_VALUES.add(value)


def mask(text: str) -> str:
    for secret in _SECRET_VALUES:
        text = text.replace(secret, "***")
    return text


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _SECRET_VALUES:
        for key, value in list(event.items()):
            if isinstance(value, str):
                event[key] = mask(value)
            elif not isinstance(value, int | float | bool | type(None)):
                event[key] = mask(str(value))
    return event


def configure_logging(level: str | None = None) -> None:
    name = (level or os.environ.get("FLOE_LOG_LEVEL", "error")).upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    # dlt's own warnings are noise for floe users unless they asked for debug output
    logging.getLogger("dlt").setLevel(numeric if name == "DEBUG" else max(numeric, logging.WARNING))
    renderer: Any = (structlog.processors.JSONRenderer()
                     if os.environ.get("FLOE_LOG_FORMAT") == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger; configures floe's logging (with secret masking) on first use, so
    library use (Dagster, tests) never logs through an unmasked default configuration."""
    if not structlog.is_configured():
        configure_logging()
    return structlog.get_logger(name)
