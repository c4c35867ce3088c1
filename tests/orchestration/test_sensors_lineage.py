"""The new-files sensor and OpenLineage events, against real files and a real HTTP receiver."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from tests.orchestration.project import (
    definitions,
    drop_orders,
    fresh_orders,
    orders_assets,
    write_project,
)


def _evaluate(defs: dg.Definitions, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    sensor = defs.resolve_sensor_def("ingest__orders__new_files")
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def test_new_files_start_one_run_each_arrival(tmp_path: Path) -> None:
    defs = definitions(write_project(tmp_path))
    drop_orders(tmp_path, fresh_orders(1), "a.jsonl")
    os.utime(tmp_path / "landing" / "a.jsonl", (1_700_000_000, 1_700_000_000))

    first = _evaluate(defs, None)
    assert isinstance(first, dg.SensorResult) and first.run_requests
    assert first.cursor == "1700000000.0"
    assert first.run_requests[0].run_key == "orders:1700000000.0"

    again = _evaluate(defs, first.cursor)
    assert isinstance(again, dg.SkipReason)
    assert again.skip_message == "no new files"

    drop_orders(tmp_path, fresh_orders(1), "b.jsonl")
    os.utime(tmp_path / "landing" / "b.jsonl", (1_700_000_100, 1_700_000_100))
    later = _evaluate(defs, first.cursor)
    assert isinstance(later, dg.SensorResult) and later.run_requests
    assert later.cursor == "1700000100.0"
    assert later.run_requests[0].tags["floe/new_files"] == "1"


def test_openlineage_events_name_source_and_table(tmp_path: Path, httpserver: HTTPServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    httpserver.expect_request("/api/v1/lineage", method="POST").respond_with_data("")
    monkeypatch.setenv("OPENLINEAGE_URL", httpserver.url_for("/").rstrip("/"))
    drop_orders(tmp_path, fresh_orders(2))
    defs = definitions(write_project(tmp_path))
    assert dg.materialize(orders_assets(defs)).success
    events = [json.loads(request.data) for request, _ in httpserver.log]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    complete = events[1]
    assert complete["job"] == {"namespace": "shop", "name": "ingestion__orders",
                               "facets": complete["job"].get("facets", {})}
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("filesystem://orders", "orders")]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [
        ("iceberg://floe", "bronze.orders")]
    assert events[0]["run"]["runId"] == complete["run"]["runId"]


def test_no_lineage_without_openlineage_url(tmp_path: Path, httpserver: HTTPServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    drop_orders(tmp_path, fresh_orders(1))
    assert dg.materialize(orders_assets(definitions(write_project(tmp_path)))).success
    assert httpserver.log == []
