"""A misbehaving API, for the retries_and_timeouts example.

    python -m api_server start --port 8766   # serves in the background, returns when ready
    python -m api_server stop

GET /rates answers 503 to its first two requests, then 200 (a service that recovers).
GET /report takes 5 seconds to answer (a service that hangs).
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PID_FILE = Path(__file__).parent / ".api_server.pid"
RATES = [{"currency": "EUR", "rate": 1.0}, {"currency": "USD", "rate": 1.08}]


class Handler(BaseHTTPRequestHandler):
    failures_left = 2

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/rates"):
            if Handler.failures_left > 0:
                Handler.failures_left -= 1
                return self._reply(503, {"error": "busy, try again"})
            return self._reply(200, RATES)
        if self.path.startswith("/report"):
            time.sleep(5)
            return self._reply(200, [{"id": 1}])
        return self._reply(404, {"error": "no such endpoint"})

    def _reply(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, *_: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="the retries_and_timeouts example's API")
    parser.add_argument("action", choices=["start", "stop", "serve"])
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    if args.action == "serve":
        ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
    elif args.action == "start":
        process = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(args.port)],
                                   start_new_session=True)
        PID_FILE.write_text(str(process.pid))
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", args.port)) == 0:
                    print(f"API listening on http://127.0.0.1:{args.port}")
                    return
            time.sleep(0.1)
        raise SystemExit(f"the API did not start on port {args.port}")
    elif PID_FILE.exists():
        os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
        PID_FILE.unlink()


if __name__ == "__main__":
    main()
