"""Operating floe: metrics over OTLP (the SDK's in-memory reader, and a real HTTP receiver of
OTLP/protobuf), a Pushgateway that is down or failing (the load unaffected, said once),
``floe status`` exit codes, Telegram messages, JSON log lines with trace ids, and the
compile-time checks of freshness_sla, a Telegram token and platform.yaml ``metrics:``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from floe.artifacts import CompiledSource, NotificationConfig
from floe.runtime.ingestion.result import CdcLag, IngestionResult, TableResult
from floe.runtime.notify import notify
from floe.runtime.observe.export import Telemetry
from floe.runtime.observe.metrics import record_load
from tests.compiler.helpers import compile_text, errors_of
from tests.servers import free_port, pushing_platform_yaml

FLOE = str(Path(sys.executable).with_name("floe"))


def floe(root: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOE, *args], cwd=root, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def project(root: Path, sources: str, platform: str = "") -> None:
    (root / "floe.yaml").write_text(
        "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: shop, version: 1.0.0}\n"
        + ("platform: platform.yaml\n" if platform else "") + "sources:\n"
        + textwrap.indent(textwrap.dedent(sources), "  "))
    if platform:
        (root / "platform.yaml").write_text(textwrap.dedent(platform))


def landing(root: Path, name: str, rows: int = 2) -> None:
    folder = root / "landing" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{time.time_ns()}.jsonl").write_text(
        "".join(json.dumps({"id": i}) + "\n" for i in range(rows)))


ORDERS = """\
- name: orders
  source_type: filesystem
  destination_table: bronze.orders
  source_config: {bucket_url: landing/orders, file_glob: "*.jsonl", format: jsonl}
"""


# metrics over OTLP ----------------------------------------------------------------------------

def _source() -> CompiledSource:
    from floe.artifacts import RetryConfig

    return CompiledSource(name="orders", source_type="filesystem", pipeline_name="shop__orders",
                          destination_table="bronze.orders", namespace="bronze",
                          table="orders", write_mode="append", schema_contract="evolve",
                          retry=RetryConfig(), freshness_sla_seconds=7200, source_config={})


def test_the_sdk_reads_what_a_load_records() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(reader=reader, environ={})
    result = IngestionResult("orders", True, 3, 1234, 0.5, retries=2, tables=(TableResult(
        "bronze.orders", "orders", 3, 1234, 1, new_columns=("email",), delete_files_added=1,
        events=(("insert", 2), ("delete", 1))),), lag=CdcLag(100, 5000, 0.0))
    record_load(telemetry.instruments, "shop", _source(), result, now=1_700_000_000)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [(dict(p.attributes or {}), getattr(p, "value", None))
                                       for p in metric.data.data_points]
    table = {"product": "shop", "source": "orders", "table": "bronze.orders"}
    assert points["floe.load.rows"] == [(table, 3)]
    assert points["floe.load.written"] == [(table, 1234)]
    assert points["floe.loads"] == [({"product": "shop", "source": "orders",
                                      "status": "ok"}, 1)]
    assert points["floe.load.retries"][0][1] == 2
    assert points["floe.load.schema_changes"] == [(table, 1)]
    assert points["floe.load.delete_files"] == [(table, 1)]
    assert points["floe.source.last_success"][0][1] == 1_700_000_000
    assert points["floe.source.freshness_sla"][0][1] == 7200
    assert sorted((a["kind"], v) for a, v in points["floe.cdc.events"]) == [
        ("delete", 1), ("insert", 2)]
    assert points["floe.cdc.behind"][0][1] == 100 and points["floe.cdc.retained"][0][1] == 5000


def test_a_run_exports_over_otlp_when_the_standard_variables_say_so(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    received: list[ExportMetricsServiceRequest] = []

    def collect(request: Request) -> Response:
        message = ExportMetricsServiceRequest()
        message.ParseFromString(request.get_data())
        received.append(message)
        return Response(b"", status=200, content_type="application/x-protobuf")

    httpserver.expect_request("/v1/metrics", method="POST").respond_with_handler(collect)
    project(tmp_path, ORDERS)
    landing(tmp_path, "orders", 3)
    assert floe(tmp_path, "compile").returncode == 0
    run = floe(tmp_path, "run", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": httpserver.url_for("/").rstrip("/"),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [p.as_int for m in received for r in m.resource_metrics for s in r.scope_metrics
            for metric in s.metrics if metric.name == "floe.load.rows"
            for p in metric.sum.data_points]
    assert rows and rows[-1] == 3


def test_no_exporter_no_sdk() -> None:
    """Without an exporter the instruments are the API's no-ops: the SDK is never imported."""
    code = ("import sys; from floe.runtime.observe.export import Telemetry; "
            "t = Telemetry(environ={}); t.instruments.rows.add(1, {}); t.flush(); "
            "print('opentelemetry.sdk.metrics' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items()
                                          if not k.startswith("OTEL_")})
    assert out.stdout.strip() == "False"


# a Pushgateway that is down or failing --------------------------------------------------------

@pytest.mark.parametrize("down", [True, False])
def test_a_failing_pushgateway_never_fails_or_holds_a_run(
        tmp_path: Path, httpserver: HTTPServer, down: bool) -> None:
    if down:
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    else:
        httpserver.expect_request("/metrics/job/floe/product/shop/source/orders").respond_with_data(
            "no", status=503)
        url = httpserver.url_for("/").rstrip("/")
    project(tmp_path, ORDERS, pushing_platform_yaml(url))
    landing(tmp_path, "orders")
    assert floe(tmp_path, "compile").returncode == 0
    started = time.monotonic()
    run = floe(tmp_path, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - started < 30
    said = [line for line in run.stdout.splitlines() if "metrics not sent" in line]
    assert len(said) == 1 and "pushgateway" in said[0]


# floe status --------------------------------------------------------------------------------

def test_status_exit_codes(tmp_path: Path) -> None:
    project(tmp_path, ORDERS + """\
- name: late
  source_type: filesystem
  destination_table: bronze.late
  freshness_sla: 1s
  source_config: {bucket_url: landing/late, file_glob: "*.jsonl", format: jsonl}
- name: broken
  source_type: filesystem
  destination_table: bronze.broken
  source_config: {bucket_url: landing/broken, file_glob: "*.jsonl", format: jsonl}
- name: later
  source_type: filesystem
  destination_table: bronze.later
  source_config: {bucket_url: landing/later, file_glob: "*.jsonl", format: jsonl}
""")
    landing(tmp_path, "orders", 3)
    landing(tmp_path, "late", 1)
    landing(tmp_path, "broken", 1)
    assert floe(tmp_path, "compile").returncode == 0
    assert floe(tmp_path, "run", "-s", "orders", "-s", "late", "-s", "broken").returncode == 0
    (tmp_path / "landing" / "broken" / "bad.jsonl").write_text("{not json\n")
    assert floe(tmp_path, "run", "-s", "broken").returncode == 1
    time.sleep(1.5)
    fresh = floe(tmp_path, "status", "-s", "orders")
    assert fresh.returncode == 0, fresh.stdout
    assert "fresh" in fresh.stdout and "1 source(s), 0 not fresh" in fresh.stdout
    report = floe(tmp_path, "status", "--json")
    assert report.returncode == 1
    found = {s["source"]: s for s in json.loads(report.stdout)}
    assert {name: s["state"] for name, s in found.items()} == {
        "orders": "fresh", "late": "stale", "broken": "failing", "later": "never loaded"}
    assert found["orders"]["rows"] == 3 and found["orders"]["duration_seconds"] > 0
    assert found["late"]["age_seconds"] > 1 and found["late"]["freshness_sla_seconds"] == 1
    assert found["broken"]["failure_category"] and "bad.jsonl" in found["broken"]["failure"]
    assert found["broken"]["last_success"] is not None  # it did load once
    for name, expected in (("late", 1), ("broken", 1), ("later", 1)):
        assert floe(tmp_path, "status", "-s", name).returncode == expected, name


# Telegram ---------------------------------------------------------------------------------------

TOKEN = "123456:ABC-secret-bot-token"


def test_telegram_message(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("FLOE_TELEGRAM_API_URL", httpserver.url_for("/").rstrip("/"))
    httpserver.expect_request(f"/bot{TOKEN}/sendMessage", method="POST").respond_with_json(
        {"ok": True})
    note = NotificationConfig(on=("failure",), channel="telegram",
                              target="${secret:TELEGRAM_TOKEN}", chat_id="-100123")
    assert notify("shop", [note], "failure", asset="ingestion__my_orders__orders",
                  error="bronze.my_orders: column *total* [x] failed (1-2)", run_id="r1") == []
    [(request, _)] = httpserver.log
    sent = json.loads(request.data)
    assert sent["chat_id"] == "-100123" and sent["parse_mode"] == "MarkdownV2"
    assert sent["text"] == (
        "*\\[floe shop\\] failure: ingestion\\_\\_my\\_orders\\_\\_orders*\n"
        "floe shop: ingestion\\_\\_my\\_orders\\_\\_orders failed — bronze\\.my\\_orders: "
        "column \\*total\\* \\[x\\] failed \\(1\\-2\\)")


def test_telegram_token_never_shows(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("FLOE_TELEGRAM_API_URL", httpserver.url_for("/").rstrip("/"))
    httpserver.expect_request(f"/bot{TOKEN}/sendMessage").respond_with_data("no", status=401)
    note = NotificationConfig(on=("failure",), channel="telegram",
                              target="${secret:TELEGRAM_TOKEN}", chat_id="1")
    [undelivered] = notify("shop", [note], "failure", asset="a", error="e", run_id="r")
    shown = str(undelivered) + capsys.readouterr().err
    assert "401" in shown and TOKEN not in shown and "ABC-secret" not in shown


# logs ---------------------------------------------------------------------------------------------

def test_json_log_lines_carry_source_table_and_trace(tmp_path: Path) -> None:
    project(tmp_path, ORDERS)
    landing(tmp_path, "orders")
    assert floe(tmp_path, "compile").returncode == 0
    run = floe(tmp_path, "run", env={"FLOE_LOG_FORMAT": "json", "FLOE_LOG_LEVEL": "info"})
    assert run.returncode == 0
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    done = next(line for line in lines if line["event"] == "ingestion.done")
    assert done["source"] == "orders" and done["table"] == "bronze.orders"
    assert done["load_id"]
    assert len(done["trace_id"]) == 32 and len(done["span_id"]) == 16


# compile --------------------------------------------------------------------------------------

def test_compile_checks(tmp_path: Path) -> None:
    base = "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: shop, version: 1.0.0}\n"
    bad_sla = base + "defaults: {freshness_sla: soon}\nsources: []\n"
    [error] = errors_of(tmp_path, bad_sla)
    assert error == ('4:27: defaults.freshness_sla: "soon" must be a duration such as 30m, '
                     '2h or 1d (units s, m, h, d, w)')
    literal = base + textwrap.dedent("""\
        sources: []
        notifications:
          - on: [failure]
            telegram: {bot_token: "123:abc", chat_id: 42}
        """)
    from floe.errors import CompileError

    assert errors_of(tmp_path, literal) == [
        "7:27: notifications[0].telegram.bot_token: 'bot_token' holds a literal credential"]
    with pytest.raises(CompileError) as refused:
        compile_text(tmp_path, literal)
    [diagnostic] = refused.value.diagnostics
    assert "{{ secret('BOT_TOKEN') }}" in diagnostic.hint
