"""Where metrics go: OTLP when the standard ``OTEL_*`` variables ask for it, a Prometheus
Pushgateway when platform.yaml names one, both, or nowhere.

Nowhere costs nothing: the instruments are OpenTelemetry API no-ops and the SDK is not even
imported.  A Pushgateway is the Prometheus way for batch jobs: one group per product and
source (never one per run); each run replaces the metrics it sends in its group with that
run's values and leaves the others (a ``floe maintain`` does not wipe the last load's
figures).  ``pushed.py`` writes the exposition and POSTs it.  An exporter
that is down or slow is said once and never fails, or holds up, a load (a 2 s timeout).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import NoOpMeterProvider

from floe.artifacts import EnvironmentConfig
from floe.logs import get_logger, mask
from floe.runtime.observe.metrics import Instruments
from floe.runtime.observe.pushed import RecordingMeter, push

log = get_logger("floe.metrics")
PUSH_TIMEOUT_SECONDS = 2.0


def otlp_requested(environ: Mapping[str, str]) -> bool:
    """OTEL_METRICS_EXPORTER=otlp, or an OTLP endpoint set (unless the exporter is none)."""
    chosen = environ.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if chosen:
        return "otlp" in chosen.split(",")
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


class _Fanout:
    """One instrument recorded in several meters (the Pushgateway's and the SDK's)."""

    def __init__(self, instruments: list[Any]) -> None:
        self._instruments = instruments

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        for instrument in self._instruments:
            instrument.add(amount, attributes)

    def set(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        for instrument in self._instruments:
            instrument.set(amount, attributes)

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        for instrument in self._instruments:
            instrument.record(amount, attributes)


class _FanoutMeter:
    def __init__(self, meters: list[Any]) -> None:
        self._meters = meters

    def create_counter(self, *args: Any) -> _Fanout:
        return _Fanout([m.create_counter(*args) for m in self._meters])

    def create_gauge(self, *args: Any) -> _Fanout:
        return _Fanout([m.create_gauge(*args) for m in self._meters])

    def create_histogram(self, *args: Any) -> _Fanout:
        return _Fanout([m.create_histogram(*args) for m in self._meters])


class Telemetry:
    """One process's metrics: its instruments and where they are sent."""

    def __init__(self, pushgateway: str | None = None, reader: Any = None,
                 environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.pushgateway = pushgateway
        self.problem: str | None = None
        self._warned = False
        self._lock = threading.Lock()
        self._recording = RecordingMeter() if pushgateway else None
        self._provider: Any = None
        readers = [reader] if reader is not None else []
        if otlp_requested(environ):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(PeriodicExportingMetricReader(
                OTLPMetricExporter(timeout=PUSH_TIMEOUT_SECONDS),
                export_interval_millis=60_000, export_timeout_millis=5_000))
        meters: list[Any] = [self._recording] if self._recording is not None else []
        if readers:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.resources import Resource

            self._provider = MeterProvider(metric_readers=readers,
                                           resource=Resource.create({"service.name": "floe"}))
            meters.append(self._provider.get_meter("floe"))
        meter: Any = (NoOpMeterProvider().get_meter("floe") if not meters else meters[0]
                      if len(meters) == 1 else _FanoutMeter(meters))
        self.instruments = Instruments(meter)

    @property
    def active(self) -> bool:
        return self._provider is not None or self._recording is not None

    def flush(self) -> str | None:
        """Send what was recorded: OTLP readers export now, the Pushgateway gets one push per
        product and source.  Never raises; returns what could not be sent, to say once."""
        if not self.active:
            return None
        self.problem = None
        with self._lock:
            if self._provider is not None:
                try:
                    self._provider.force_flush(timeout_millis=int(PUSH_TIMEOUT_SECONDS * 2000))
                except Exception as exc:  # an exporter that fails says so once
                    self._warn("otlp", exc)
            if self._recording is not None and self.pushgateway:
                for group, text in self._recording.exposition().items():
                    try:
                        push(self.pushgateway, group, text, PUSH_TIMEOUT_SECONDS)
                    except Exception as exc:
                        self._warn("pushgateway", exc)
                        break
        return self.problem

    def shutdown(self) -> None:
        if self._provider is not None:
            self.flush()
            try:
                self._provider.shutdown(timeout_millis=2000)
            except Exception as exc:  # never fails a run
                self._warn("otlp", exc)
            self._provider = None

    def _warn(self, where: str, exc: Exception) -> None:
        self.problem = mask(f"metrics not sent to the {where}: {type(exc).__name__}: {exc}")
        if not self._warned:
            self._warned = True
            log.warning("metrics.export_failed", exporter=where,
                        error=mask(f"{type(exc).__name__}: {exc}"))


_tracing: list[bool] = []


def enable_tracing(environ: Mapping[str, str]) -> None:
    """Real spans (with ids) when they can be used: JSON log lines then carry the trace and
    span ids Loki and Tempo link on, and OTLP requests get the spans too.  Once per process;
    never replaces a tracer provider the host application (Dagster, a test) set."""
    if _tracing:
        return
    _tracing.append(True)
    otlp = environ.get("OTEL_TRACES_EXPORTER", "").lower() != "none" and bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if environ.get("FLOE_LOG_FORMAT") != "json" and not otlp:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({"service.name": "floe"}))
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            timeout=PUSH_TIMEOUT_SECONDS)))
    trace.set_tracer_provider(provider)


_current: list[tuple[tuple[str | None, bool], Telemetry]] = []


def telemetry(environment: EnvironmentConfig | None = None) -> Telemetry:
    """This process's telemetry for ``environment`` (made once, remade if the settings
    change)."""
    pushgateway = environment.metrics.pushgateway if environment and environment.metrics \
        else None
    if pushgateway is not None:
        from floe.secrets import resolve_secrets

        pushgateway = str(resolve_secrets(pushgateway, os.environ))
    enable_tracing(os.environ)
    key = (pushgateway, otlp_requested(os.environ))
    if _current and _current[0][0] == key:
        return _current[0][1]
    if _current:
        _current[0][1].shutdown()
    made = Telemetry(pushgateway)
    _current[:] = [(key, made)]
    return made
