"""Local stand-ins for Slack, Teams and a mail server, for the slack_teams_email example.

    python receivers.py start --http-port 8767 --smtp-port 8025   # in the background
    python receivers.py stop

Every POST is appended to received.jsonl as {"path": ..., "body": ...}; every email to
inbox.txt (its Subject, From, To and body).  SMTP needs `pip install aiosmtpd`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PID_FILE = HERE / ".receivers.pid"


class Webhooks(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with (HERE / "received.jsonl").open("a") as out:
            out.write(json.dumps({"path": self.path, "body": body}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


class Inbox:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content)
        body = message.get_payload(decode=True).decode()
        with (HERE / "inbox.txt").open("a") as out:
            out.write(f"Subject: {message['Subject']}\nFrom: {message['From']}\n"
                      f"To: {message['To']}\n\n{body}\n")
        return "250 OK"


def serve(http_port: int, smtp_port: int) -> None:
    from aiosmtpd.controller import Controller

    Controller(Inbox(), hostname="127.0.0.1", port=smtp_port).start()
    ThreadingHTTPServer(("127.0.0.1", http_port), Webhooks).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="local Slack/Teams/SMTP receivers")
    parser.add_argument("action", choices=["start", "stop", "serve"])
    parser.add_argument("--http-port", type=int, default=8767)
    parser.add_argument("--smtp-port", type=int, default=8025)
    args = parser.parse_args()
    if args.action == "serve":
        serve(args.http_port, args.smtp_port)
    elif args.action == "start":
        process = subprocess.Popen([sys.executable, __file__, "serve", "--http-port",
                                    str(args.http_port), "--smtp-port", str(args.smtp_port)],
                                   start_new_session=True)
        PID_FILE.write_text(str(process.pid))
        for _ in range(100):
            with socket.socket() as one, socket.socket() as two:
                if not one.connect_ex(("127.0.0.1", args.http_port)) and \
                        not two.connect_ex(("127.0.0.1", args.smtp_port)):
                    print("receivers ready")
                    return
            time.sleep(0.1)
        raise SystemExit("the receivers did not start")
    elif PID_FILE.exists():
        os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
        PID_FILE.unlink()


if __name__ == "__main__":
    main()
