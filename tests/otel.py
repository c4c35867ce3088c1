"""One in-memory OpenTelemetry exporter for the whole test session.

OpenTelemetry accepts a global tracer provider only once per process, so every test module that
asserts on spans imports ``EXPORTER`` from here.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


def last_span(name: str) -> ReadableSpan:
    spans = [span for span in EXPORTER.get_finished_spans() if span.name == name]
    assert spans, f"no span named {name} was recorded"
    return spans[-1]
