"""rest_api against a real local HTTP server: pagination, bearer secret, 429/503 retry, 401."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from floe.logs import configure_logging
from tests.otel import EXPORTER
from tests.runtime.harness import Project

TOKEN = "tok-SECRET-12345"

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: shop_api
    source_type: rest_api
    destination_table: bronze.orders
    write_mode: merge
    primary_key: id
    cursor_field: updated_at
    retry: {{max_retries: 3, initial_delay_seconds: 0.05, max_delay_seconds: 0.2}}
    source_config:
      client:
        base_url: "{url}"
        auth: {{type: bearer, token: "{{{{ secret('SHOP_API_TOKEN') }}}}"}}
        paginator: {{type: json_link, next_url_path: next}}
      resources:
        - name: orders
          endpoint: {{path: /orders, data_selector: data}}
"""

ORDERS = [{"id": i, "status": "new", "updated_at": f"2024-01-0{i}T00:00:00Z"} for i in (1, 2, 3)]


class Api:
    """A paginated /orders endpoint that can be told to fail first."""

    def __init__(self, server: HTTPServer, failures: list[int] | None = None) -> None:
        self.server = server
        self.failures = list(failures or [])
        self.requests: list[str] = []
        self.orders = list(ORDERS)
        server.expect_request("/orders").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        self.requests.append(request.full_path)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response("unauthorized", status=401)
        if self.failures:
            return Response("slow down", status=self.failures.pop(0),
                            headers={"Retry-After": "0"})
        page = int(request.args.get("page", "1"))
        size = 2
        chunk = self.orders[(page - 1) * size: page * size]
        more = page * size < len(self.orders)
        body = {"data": chunk,
                "next": self.server.url_for(f"/orders?page={page + 1}") if more else None}
        return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def make_project(tmp_path: Path, httpserver: HTTPServer) -> Callable[[], Project]:
    def _make() -> Project:
        project = Project(tmp_path)
        project.write(PROJECT.format(url=httpserver.url_for("/").rstrip("/")))
        return project
    return _make


@pytest.fixture(autouse=True)
def _few_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt's HTTP client retries on its own; keep that short so floe's retry is what we see."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0")


def test_paginated_load_then_incremental(make_project: Callable[[], Project],
                                         httpserver: HTTPServer) -> None:
    api = Api(httpserver)
    project = make_project()
    environ = {"SHOP_API_TOKEN": TOKEN}
    first = project.run("shop_api", environ=environ)
    assert first.success, first.errors
    assert first.rows_loaded == 3
    assert len(api.requests) == 2  # two pages
    api.orders.append({"id": 2, "status": "paid", "updated_at": "2024-01-09T00:00:00Z"})
    second = project.run("shop_api", environ=environ)
    assert second.rows_loaded == 1  # the cursor filters what was already loaded
    rows = project.read("bronze.orders")
    assert [(r["id"], r["status"]) for r in rows] == [(1, "new"), (2, "paid"), (3, "new")]


def test_429_then_200_is_retried(make_project: Callable[[], Project],
                                 httpserver: HTTPServer) -> None:
    api = Api(httpserver, failures=[429, 503])
    result = make_project().run("shop_api", environ={"SHOP_API_TOKEN": TOKEN})
    assert result.success, result.errors
    assert result.rows_loaded == 3
    assert len(api.requests) == 4  # 429, 503, then two pages


def test_401_fails_at_once_without_retry(make_project: Callable[[], Project],
                                         httpserver: HTTPServer) -> None:
    api = Api(httpserver)
    result = make_project().run("shop_api", environ={"SHOP_API_TOKEN": "wrong-token"})
    assert not result.success
    assert result.error_category == "PERMANENT"
    assert "401" in result.errors[0]
    assert len(api.requests) == 1


def test_secret_never_reaches_logs_spans_or_errors(
    make_project: Callable[[], Project], httpserver: HTTPServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Api(httpserver, failures=[500, 500, 500, 500, 500])
    configure_logging("debug")
    EXPORTER.clear()
    result = make_project().run("shop_api", environ={"SHOP_API_TOKEN": TOKEN})
    configure_logging()
    assert not result.success and result.error_category == "TRANSIENT"
    captured = capsys.readouterr()
    assert "ingestion.retry" in captured.out + captured.err
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "floe.ingestion.run"]
    assert spans and spans[-1].attributes is not None
    attributes = dict(spans[-1].attributes)
    assert attributes["ingestion.source_type"] == "rest_api"
    assert attributes["error.category"] == "TRANSIENT"
    everything = captured.out + captured.err + json.dumps(attributes) + " ".join(result.errors)
    assert TOKEN not in everything


def test_successful_run_span_has_the_metrics(make_project: Callable[[], Project],
                                             httpserver: HTTPServer) -> None:
    Api(httpserver)
    EXPORTER.clear()
    result = make_project().run("shop_api", environ={"SHOP_API_TOKEN": TOKEN})
    assert result.success
    span = [s for s in EXPORTER.get_finished_spans() if s.name == "floe.ingestion.run"][-1]
    assert span.attributes is not None
    assert span.attributes["ingestion.rows_loaded"] == 3
    assert span.attributes["ingestion.bytes_written"] == result.bytes_written > 0
    assert span.attributes["ingestion.destination_table"] == "bronze.orders"
    assert span.attributes["ingestion.write_mode"] == "merge"


CHILD_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: shop_api
    source_type: rest_api
    destination_table: bronze
    source_config:
      client: {{base_url: "{url}"}}
      resources:
        - name: orders
          endpoint: {{path: /orders, data_selector: data}}
        - name: order_items
          include_from_parent: [id]          # -> column _orders_id
          endpoint:
            path: "/orders/{{order_id}}/items"
            params:
              order_id: {{type: resolve, resource: orders, field: id}}
"""


def serve_orders_with_items(httpserver: HTTPServer) -> None:
    """Two orders, and their items one request per order (for CHILD_PROJECT)."""
    httpserver.expect_request("/orders").respond_with_json(
        {"data": [{"id": 7, "status": "new"}, {"id": 9, "status": "paid"}]})
    for order_id, skus in ((7, ["MUG", "CAP"]), (9, ["TEE"])):
        httpserver.expect_request(f"/orders/{order_id}/items").respond_with_json(
            [{"sku": sku, "qty": 1} for sku in skus])


def test_child_resource_is_called_per_parent_row(tmp_path: Path,
                                                 httpserver: HTTPServer) -> None:
    """A dependent resource (dlt's ``resolve``): one request per order, its own table."""
    serve_orders_with_items(httpserver)
    project = Project(tmp_path)
    project.write(CHILD_PROJECT.format(url=httpserver.url_for("/").rstrip("/")))
    result = project.run("shop_api")
    assert result.success, result.errors
    assert sorted(t.table for t in result.tables) == ["bronze.order_items", "bronze.orders"]
    items = project.read("bronze.order_items", sort_by="sku")
    assert [(i["sku"], i["_orders_id"]) for i in items] == [("CAP", 7), ("MUG", 7), ("TEE", 9)]


NESTED_PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: shop_api
    source_type: rest_api
    destination_table: bronze.orders
    write_mode: merge
    primary_key: id
    source_config:
      client: {{base_url: "{url}"}}
      resources:
        - name: orders
          endpoint: {{path: /orders, paginator: single_page}}
"""


def test_nested_lists_stay_in_the_row_so_a_merge_replaces_them_whole(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    """Bronze keeps each record whole: nested objects and lists stay in their row as JSON text
    (no child tables), so merging an order replaces its items too."""
    orders = [{"id": 1, "customer": {"name": "Alice"}, "items": [{"sku": "A"}, {"sku": "B"}]},
              {"id": 2, "customer": {"name": "Bob"}, "items": [{"sku": "C"}]}]
    httpserver.expect_request("/orders").respond_with_handler(
        lambda _: Response(json.dumps(orders), content_type="application/json"))
    project = Project(tmp_path)
    project.write(NESTED_PROJECT.format(url=httpserver.url_for("/").rstrip("/")))
    assert project.run("shop_api").success
    orders[0]["items"] = [{"sku": "A2"}]
    result = project.run("shop_api")
    assert result.success, result.errors
    assert [t.table for t in result.tables] == ["bronze.orders"]
    rows = project.read("bronze.orders")
    assert [(r["id"], json.loads(r["customer"]), json.loads(r["items"])) for r in rows] == [
        (1, {"name": "Alice"}, [{"sku": "A2"}]), (2, {"name": "Bob"}, [{"sku": "C"}])]
    assert ("bronze", "orders__items") not in project.catalog().list_tables("bronze")
