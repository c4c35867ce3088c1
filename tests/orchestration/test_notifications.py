"""notifications: run-status sensors posting to a real local webhook receiver."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from tests.orchestration.project import (
    NOTIFY,
    definitions,
    drop_orders,
    fresh_orders,
    orders_assets,
    write_project,
)

HOOK_PATH = "/hooks/T0KEN-s3cret-path"  # like Slack: the URL itself is the credential


def _run(root: Path, instance: dg.DagsterInstance) -> tuple[dg.Definitions,
                                                           dg.ExecuteInProcessResult]:
    defs = definitions(write_project(root, NOTIFY))
    return defs, dg.materialize(orders_assets(defs), instance=instance, raise_on_error=False)


def _bodies(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [json.loads(request.data) for request, _ in httpserver.log]


def test_failure_posts_one_rendered_message_without_the_secret(
        tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK", httpserver.url_for(HOOK_PATH))
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    drop_orders(tmp_path, [{"id": 1}])
    (tmp_path / "landing" / "b.jsonl").write_text("{not json\n")
    with dg.instance_for_test() as instance:
        defs, result = _run(tmp_path, instance)
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name="notify_0_on_failure", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        defs.resolve_sensor_def("notify_0_on_failure")(context)
    [body] = _bodies(httpserver)
    run_id = result.run_id
    assert body["status"] == "failure"
    assert body["asset"] == "ingestion__orders__orders"
    assert body["run_id"] == run_id
    assert body["dagster_url"] == f"http://localhost:3000/runs/{run_id}"
    assert body["text"].startswith("floe shop: ingestion__orders__orders failure - ")
    assert "bad row at b.jsonl:1: not JSON" in body["text"]
    assert body["text"].endswith(f"({run_id})")
    captured = capfd.readouterr()
    assert "T0KEN-s3cret" not in json.dumps(body) + captured.out + captured.err


def test_failed_checks_post_check_failure(tmp_path: Path, httpserver: HTTPServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK", httpserver.url_for(HOOK_PATH))
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    drop_orders(tmp_path, [{"id": 1, "status": "new", "updated_at": stale}])
    with dg.instance_for_test() as instance:
        defs, result = _run(tmp_path, instance)
        assert not result.success  # freshness has error severity: it blocks
        # sent by the check step itself: no daemon ran a sensor
        [body] = _bodies(httpserver)
        assert body["status"] == "check_failure"
        assert body["error"] == "failed checks: ingestion__orders__orders:freshness__updated_at"
        assert body["run_id"] == result.run_id
        # the run-failure sensor (with a daemon) leaves it alone: never two messages
        context = dg.build_run_status_sensor_context(
            sensor_name="notify_0_on_failure", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        defs.resolve_sensor_def("notify_0_on_failure")(context)
    assert len(_bodies(httpserver)) == 1


def test_no_message_for_a_clean_run(tmp_path: Path, httpserver: HTTPServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry asks for failure and check_failure only: a clean success says nothing (the
    checks step sends nothing, and no success sensor exists to ask the daemon for)."""
    monkeypatch.setenv("ALERT_WEBHOOK", httpserver.url_for(HOOK_PATH))
    drop_orders(tmp_path, fresh_orders(2))
    with dg.instance_for_test() as instance:
        defs, result = _run(tmp_path, instance)
        assert result.success
    assert _bodies(httpserver) == []
    assert [s.name for s in defs.sensors if s.name.startswith("notify_")] == [
        "notify_0_on_failure"]


def test_unreachable_webhook_is_retried_then_logged_never_raised(
        tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK", httpserver.url_for(HOOK_PATH))
    monkeypatch.setenv("FLOE_LOG_LEVEL", "warning")
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("down", status=503)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "b.jsonl").write_text("{not json\n")
    with dg.instance_for_test() as instance:
        defs, result = _run(tmp_path, instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="notify_0_on_failure", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        defs.resolve_sensor_def("notify_0_on_failure")(context)  # must not raise
    assert len(httpserver.log) == 3, "three attempts"
    captured = capfd.readouterr()
    assert "notification.failed" in captured.err
    assert "T0KEN-s3cret" not in captured.out + captured.err
