"""The Pushgateway path without the OpenTelemetry SDK: a run's metrics kept as that run's
values, written in Prometheus' text format and POSTed once per product and source.

Why not the SDK's in-memory reader plus ``prometheus_client``: importing the two costs a
nothing-new ``floe run`` ~0.1 s of its ~2.7 s (bench/metrics.py; the goal is +0.05 s), for
what a batch job needs: a sum per counter, the last value per gauge, buckets per histogram,
within one process.  The names are the OpenTelemetry -> Prometheus ones (``metrics.py``);
an OTLP exporter, when asked for, still gets the SDK (``export.py``).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

GROUP = ("product", "source")
# OpenTelemetry's default explicit bucket bounds (seconds here)
BOUNDS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0,
          5000.0, 7500.0, 10000.0)
_SUFFIX = {"s": "seconds", "By": "bytes", "1": "ratio"}
Labels = tuple[tuple[str, str], ...]


def prometheus_name(name: str, unit: str) -> str:
    """OpenTelemetry -> Prometheus: dots to underscores and the unit as a suffix (a
    ``{annotation}`` unit adds nothing); counters get ``_total`` when written."""
    base = name.replace(".", "_")
    suffix = _SUFFIX.get(unit, "")
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


@dataclass
class _Series:
    kind: str  # counter | gauge | histogram
    name: str
    help: str
    points: dict[Labels, Any] = field(default_factory=dict)


class _Instrument:
    def __init__(self, series: _Series, lock: threading.Lock) -> None:
        self._series, self._lock = series, lock

    def _key(self, attributes: Mapping[str, Any] | None) -> Labels:
        return tuple(sorted((k, str(v)) for k, v in (attributes or {}).items()))

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            key = self._key(attributes)
            self._series.points[key] = self._series.points.get(key, 0) + amount

    def set(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._series.points[self._key(attributes)] = amount

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            key = self._key(attributes)
            counts, total, count = self._series.points.get(
                key, ([0] * (len(BOUNDS) + 1), 0.0, 0))
            counts = list(counts)
            counts[next((i for i, b in enumerate(BOUNDS) if amount <= b), len(BOUNDS))] += 1
            self._series.points[key] = (counts, total + amount, count + 1)


class RecordingMeter:
    """The part of an OpenTelemetry ``Meter`` floe uses, keeping values for one push."""

    def __init__(self) -> None:
        self.series: dict[str, _Series] = {}
        self._lock = threading.Lock()

    def _make(self, kind: str, name: str, unit: str, description: str) -> _Instrument:
        series = self.series.setdefault(name, _Series(kind, prometheus_name(name, unit),
                                                      description or name))
        return _Instrument(series, self._lock)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> _Instrument:
        return self._make("counter", name, unit, description)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> _Instrument:
        return self._make("gauge", name, unit, description)

    def create_histogram(self, name: str, unit: str = "", description: str = ""
                         ) -> _Instrument:
        return self._make("histogram", name, unit, description)

    def exposition(self) -> dict[tuple[str, ...], str]:
        """Prometheus text format, one document per (product, source)."""
        lines: dict[tuple[str, ...], list[str]] = defaultdict(list)
        with self._lock:
            for series in self.series.values():
                by_group: dict[tuple[str, ...], list[tuple[Labels, Any]]] = defaultdict(list)
                for labels, value in series.points.items():
                    group = tuple(dict(labels).get(k, "") for k in GROUP)
                    by_group[group].append((tuple(p for p in labels if p[0] not in GROUP),
                                            value))
                for group, points in by_group.items():
                    lines[group] += _family(series, points)
        return {group: "\n".join(text) + "\n" for group, text in lines.items()}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _family(series: _Series, points: list[tuple[Labels, Any]]) -> list[str]:
    name = series.name
    out = [f"# HELP {name} {_escape(series.help)}", f"# TYPE {name} {series.kind}"]
    for labels, value in points:
        if series.kind == "counter":
            out.append(f"{name}_total{_labels(labels)} {_number(value)}")
        elif series.kind == "gauge":
            out.append(f"{name}{_labels(labels)} {_number(value)}")
        else:
            counts, total, count = value
            cumulative = 0
            for bound, hits in zip((*BOUNDS, math.inf), counts, strict=True):
                cumulative += hits
                le = "+Inf" if math.isinf(bound) else _number(bound)
                out.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {cumulative}")
            out.append(f"{name}_sum{_labels(labels)} {_number(total)}")
            out.append(f"{name}_count{_labels(labels)} {count}")
    return out


def push(gateway: str, group: tuple[str, ...], text: str, timeout: float) -> None:
    """POST one group: its metrics replace those of the same names in the group."""
    import requests

    path = "/".join(f"{label}/{quote(value or '_', safe='')}"
                    for label, value in zip(GROUP, group, strict=True))
    response = requests.post(f"{gateway.rstrip('/')}/metrics/job/floe/{path}",
                             data=text.encode(), timeout=timeout,
                             headers={"Content-Type": "text/plain; version=0.0.4"})
    response.raise_for_status()
