"""What floe sends to a REST catalog: the vended-credentials header and the bearer token.

A local HTTP server plays the catalog's ``/v1/config`` and ``/v1/namespaces`` endpoints and
records the requests pyiceberg really makes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from floe.artifacts import CatalogConfig, EnvironmentConfig
from floe.runtime.iceberg.catalog import connect_catalog
from floe.runtime.ingestion.plugin import DltIngestionPlugin
from floe.runtime.plugins import HealthState


def _catalog_server(httpserver: HTTPServer) -> list[Request]:
    seen: list[Request] = []

    def respond(body: dict[str, object]) -> object:
        def handler(request: Request) -> Response:
            seen.append(request)
            return Response(json.dumps(body), content_type="application/json")
        return handler

    httpserver.expect_request("/v1/config").respond_with_handler(
        respond({"defaults": {}, "overrides": {}}))
    httpserver.expect_request("/v1/namespaces").respond_with_handler(
        respond({"namespaces": [["bronze"]]}))
    return seen


def _environment(httpserver: HTTPServer, vended: bool) -> EnvironmentConfig:
    return EnvironmentConfig(name="prod", catalog=CatalogConfig(
        type="rest", uri=httpserver.url_for("/").rstrip("/"), warehouse="lake",
        token="${secret:CATALOG_TOKEN}", vended_credentials=vended))


def test_vended_credentials_header_reaches_the_catalog(
        httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _catalog_server(httpserver)
    monkeypatch.setenv("CATALOG_TOKEN", "cat-tok-1")
    catalog = connect_catalog(_environment(httpserver, vended=True), tmp_path)
    assert catalog.list_namespaces() == [("bronze",)]
    assert [r.path for r in seen] == ["/v1/config", "/v1/namespaces", "/v1/namespaces"]
    for request in seen:
        assert request.headers.get("X-Iceberg-Access-Delegation") == "vended-credentials"
        assert request.headers.get("Authorization") == "Bearer cat-tok-1"
    assert seen[0].args.get("warehouse") == "lake"


def test_no_delegation_asked_unless_configured(
        httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyiceberg asks for vended credentials by default; floe asks only when configured."""
    seen = _catalog_server(httpserver)
    monkeypatch.setenv("CATALOG_TOKEN", "cat-tok-2")
    connect_catalog(_environment(httpserver, vended=False), tmp_path)
    assert seen and all(r.headers.get("X-Iceberg-Access-Delegation") == "" for r in seen)


def test_health_check_answers_about_now(
        httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection is shared, but every health check asks the catalog again."""
    _catalog_server(httpserver)
    monkeypatch.setenv("CATALOG_TOKEN", "cat-tok-3")
    plugin = DltIngestionPlugin(_environment(httpserver, vended=False), tmp_path)
    assert plugin.health_check().state is HealthState.HEALTHY
    httpserver.clear()  # the catalog goes away
    httpserver.expect_request("/v1/namespaces").respond_with_data("down", status=503)
    status = plugin.health_check()
    assert status.state is HealthState.UNHEALTHY
    assert status.message.startswith(f"Iceberg catalog {httpserver.url_for('/').rstrip('/')} "
                                     "is not reachable: ServiceUnavailableError")
    assert "cat-tok-3" not in status.message
