"""A local webhook receiver for the notifications example: appends each POSTed JSON body to
received.jsonl.

    python receiver.py start --port 8766   # in the background, returns when ready
    python receiver.py stop
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).parent
PID_FILE = HERE / ".receiver.pid"
RECEIVED = HERE / "received.jsonl"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with RECEIVED.open("ab") as out:
            out.write(body.strip() + b"\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def start(port: int) -> None:
    process = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(port)],
                               start_new_session=True)
    PID_FILE.write_text(str(process.pid))
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                print(f"receiver listening on http://127.0.0.1:{port}")
                return
        time.sleep(0.1)
    raise SystemExit(f"the receiver did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description="a local webhook receiver")
    parser.add_argument("action", choices=["start", "stop", "serve"])
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    if args.action == "serve":
        ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
    elif args.action == "start":
        start(args.port)
    elif PID_FILE.exists():
        os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
        PID_FILE.unlink()


if __name__ == "__main__":
    main()
