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
from typing import Any, TextIO, cast

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


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
           "critical": logging.CRITICAL}
_level: list[int] = []  # the configured level, once configure_logging ran


def configure_logging(level: str | None = None) -> None:
    name = (level or os.environ.get("FLOE_LOG_LEVEL", "error")).upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    # dlt's own warnings are noise for floe users unless they asked for debug output
    logging.getLogger("dlt").setLevel(numeric if name == "DEBUG" else max(numeric, logging.WARNING))
    _level[:] = [numeric]
    if "structlog" in sys.modules:
        _configure_structlog(numeric)


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current OpenTelemetry span's ids on every line, so Loki links a line to its trace
    in Tempo (nothing is added outside a span)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return event
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def _configure_structlog(numeric: int) -> None:
    import structlog

    renderer: Any = (structlog.processors.JSONRenderer()
                     if os.environ.get("FLOE_LOG_FORMAT") == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            add_trace_ids,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured (a
    host such as pytest or Dagster may swap it, and close the one it swapped in)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _ignore(*_: Any, **__: Any) -> None:
    return None


class _Logger:
    """A logger that imports structlog (~60 ms) only when it has something to write: at the
    default level, ``floe compile`` and ``--help`` never pay for it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        if not _level:
            configure_logging()
        threshold = _LEVELS.get(method)
        if threshold is not None and threshold < _level[0]:
            return _ignore
        import structlog

        if not structlog.is_configured():
            _configure_structlog(_level[0])
        return getattr(structlog.get_logger(self._name), method)


def get_logger(name: str) -> Any:
    """floe's logger for ``name``: secrets masked, configured on first use, so library use
    (Dagster, tests) never logs through an unmasked default configuration."""
    return _Logger(name)
