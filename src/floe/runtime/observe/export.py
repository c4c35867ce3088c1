"""Where metrics go: OTLP when the standard ``OTEL_*`` variables ask for it, a Prometheus
Pushgateway when platform.yaml names one, both, or nowhere.

Nowhere costs nothing: the instruments are OpenTelemetry API no-ops and the SDK is not even
imported.  A Pushgateway is the Prometheus way for batch jobs: one group per product and
source (never one per run); each run replaces the metrics it sends in its group with that
run's values and leaves the others (a ``floe maintain`` does not wipe the last load's
figures).  ``prometheus_client`` writes the exposition and does the push (POST).  An exporter
that is down or slow is said once and never fails, or holds up, a load (a 2 s timeout).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.metrics import Meter, NoOpMeterProvider

from floe.artifacts import EnvironmentConfig
from floe.logs import get_logger, mask
from floe.runtime.observe.metrics import Instruments

log = get_logger("floe.metrics")
PUSH_TIMEOUT_SECONDS = 2.0
_SUFFIX = {"s": "seconds", "By": "bytes", "1": "ratio"}
_GROUP = ("product", "source")


def otlp_requested(environ: Mapping[str, str]) -> bool:
    """OTEL_METRICS_EXPORTER=otlp, or an OTLP endpoint set (unless the exporter is none)."""
    chosen = environ.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if chosen:
        return "otlp" in chosen.split(",")
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


class Telemetry:
    """One process's metrics: its instruments and where they are sent."""

    def __init__(self, pushgateway: str | None = None, reader: Any = None,
                 environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.pushgateway = pushgateway
        self._readers: list[Any] = [reader] if reader is not None else []
        self._memory: Any = None
        self._provider: Any = None
        self._warned = False
        self.problem: str | None = None
        self._lock = threading.Lock()
        if pushgateway:
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            self._memory = InMemoryMetricReader()
            self._readers.append(self._memory)
        if otlp_requested(environ):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            self._readers.append(PeriodicExportingMetricReader(
                OTLPMetricExporter(timeout=PUSH_TIMEOUT_SECONDS),
                export_interval_millis=60_000, export_timeout_millis=5_000))
        meter: Meter
        if self._readers:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.resources import Resource

            self._provider = MeterProvider(metric_readers=self._readers,
                                           resource=Resource.create({"service.name": "floe"}))
            meter = self._provider.get_meter("floe")
        else:
            meter = NoOpMeterProvider().get_meter("floe")
        self.instruments = Instruments(meter)

    @property
    def active(self) -> bool:
        return self._provider is not None

    def flush(self) -> str | None:
        """Send what was recorded: OTLP readers export now, the Pushgateway gets one push per
        product and source.  Never raises; returns what could not be sent, to say once."""
        if self._provider is None:
            return None
        self.problem = None
        with self._lock:
            try:
                self._provider.force_flush(timeout_millis=int(PUSH_TIMEOUT_SECONDS * 2000))
            except Exception as exc:  # an exporter that fails says so once
                self._warn("otlp", exc)
            if self._memory is not None and self.pushgateway:
                self._push(self._memory.get_metrics_data())
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

    def _push(self, data: Any) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import pushadd_to_gateway

        assert self.pushgateway is not None
        for group, families in _families(data).items():
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Fixed(families))
            try:
                pushadd_to_gateway(self.pushgateway, job="floe", registry=registry,
                                grouping_key=dict(zip(_GROUP, group, strict=True)),
                                timeout=PUSH_TIMEOUT_SECONDS)
            except Exception as exc:
                self._warn("pushgateway", exc)
                return


class _Fixed:
    """A prometheus_client collector returning the families it was given."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


def prometheus_name(name: str, unit: str, counter: bool) -> str:
    """OpenTelemetry -> Prometheus naming: dots to underscores, the unit as a suffix
    (``{annotations}`` dropped), ``_total`` on counters (added by prometheus_client)."""
    base = name.replace(".", "_")
    suffix = _SUFFIX.get(unit, "")
    if suffix and not base.endswith(suffix):
        base = f"{base}_{suffix}"
    return base


def _families(data: Any) -> dict[tuple[str, ...], list[Any]]:
    """The in-memory reader's data as Prometheus metric families, by (product, source)."""
    from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    grouped: dict[tuple[str, ...], dict[str, Any]] = defaultdict(dict)
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                point_kind = metric.data
                counter = isinstance(point_kind, Sum) and point_kind.is_monotonic
                name = prometheus_name(metric.name, metric.unit or "", counter)
                for point in point_kind.data_points:
                    labels = {k: str(v) for k, v in (point.attributes or {}).items()}
                    group = tuple(labels.pop(k, "") for k in _GROUP)
                    names, values = sorted(labels), [labels[k] for k in sorted(labels)]
                    families = grouped[group]
                    if isinstance(point_kind, Histogram):
                        family = families.setdefault(name, HistogramMetricFamily(
                            name, metric.description or name, labels=names))
                        cumulative, buckets = 0, []
                        for bound, count in zip(point.explicit_bounds, point.bucket_counts,
                                                strict=False):
                            cumulative += count
                            buckets.append((_bound(bound), cumulative))
                        buckets.append(("+Inf", point.count))
                        family.add_metric(values, buckets, point.sum)
                    elif counter:
                        family = families.setdefault(name, CounterMetricFamily(
                            name, metric.description or name, labels=names))
                        family.add_metric(values, point.value)
                    elif isinstance(point_kind, Gauge | Sum):
                        family = families.setdefault(name, GaugeMetricFamily(
                            name, metric.description or name, labels=names))
                        family.add_metric(values, point.value)
    return {group: list(families.values()) for group, families in grouped.items()}


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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
