"""Slack, Teams and email notifications, delivered to local receivers by a real floe run: the
exact messages, secrets kept out, a dead receiver never failing the load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer

from tests.compiler.helpers import errors_of
from tests.servers import free_port

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing, format: jsonl}
notifications:
  - {on: [failure], slack: "{{ secret('SLACK_WEBHOOK') }}"}
  - {on: [failure], teams: "{{ secret('TEAMS_WEBHOOK') }}"}
  - on: [failure, success]
    email:
      to: [data@shop.example, oncall@shop.example]
      from: floe@shop.example
      smtp: "{{ secret('SMTP_URL') }}"
      subject: "floe {{ product }}: {{ asset }} {{ status }}"
"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _run(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    floe = str(Path(sys.executable).parent / "floe")
    subprocess.run([floe, "compile"], cwd=root, check=True, capture_output=True)
    return subprocess.run([floe, "run"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **env})


def test_a_failure_reaches_slack_teams_and_email(tmp_path: Path, httpserver: HTTPServer,
                                                 smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    (tmp_path / "floe.yaml").write_text(PROJECT)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.jsonl").write_text("{not json\n")
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    httpserver.expect_request("/teams", method="POST").respond_with_data("1")
    env = {"SLACK_WEBHOOK": httpserver.url_for("/slack"),
           "TEAMS_WEBHOOK": httpserver.url_for("/teams"),
           "SMTP_URL": f"smtp://127.0.0.1:{port}"}
    done = _run(tmp_path, env)
    assert done.returncode == 1
    bodies = {request.path: json.loads(request.data) for request, _ in httpserver.log}
    error = "bad row at a.jsonl:1: not JSON: Expecting property name enclosed in double quotes"
    slack = bodies["/slack"]
    assert list(slack) == ["text"]
    assert slack["text"].startswith(f"floe shop: ingestion__orders__orders failed — {error}")
    card = bodies["/teams"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    title, text = card["content"]["body"]
    assert title["text"] == "[floe shop] failure: ingestion__orders__orders"
    assert text["text"] == slack["text"]
    [(recipients, message)] = inbox.messages
    assert recipients == ["data@shop.example", "oncall@shop.example"]
    assert message["Subject"] == "floe shop: ingestion__orders__orders failure"
    assert message["From"] == "floe@shop.example"
    assert message.get_payload(decode=True).decode().strip() == slack["text"]


def test_a_dead_receiver_is_logged_and_the_load_still_succeeds(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(PROJECT)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.jsonl").write_text('{"id": 1}\n')
    dead = f"127.0.0.1:{free_port()}"
    done = _run(tmp_path, {"SLACK_WEBHOOK": f"http://{dead}/s", "TEAMS_WEBHOOK": "",
                           "SMTP_URL": f"smtp://user:s3cr3t-pw@{dead}",
                           "FLOE_LOG_LEVEL": "warning"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "notification.failed" in done.stderr
    assert "s3cr3t-pw" not in done.stdout + done.stderr


def test_channels_are_checked_at_compile_time(tmp_path: Path) -> None:
    text = PROJECT.replace('slack: "{{ secret(\'SLACK_WEBHOOK\') }}"',
                           "slack: \"https://hooks.slack.example/T000/B000/XXXX\"")
    assert errors_of(tmp_path, text) == [
        "10:28: notifications[0].slack: the slack webhook URL is a credential: anyone with it "
        "can post to your channel"]
    both = PROJECT.replace("{on: [failure], teams:", "{on: [failure], slack: x, teams:")
    assert any("exactly one of webhook, slack, teams, email" in e
               for e in errors_of(tmp_path, both))
