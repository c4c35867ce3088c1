"""The shop's API for this example: customers changed since ?since=, two per page, behind a
bearer token; orders.  A stdlib server run in the background: start --port N / stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
PID = HERE / ".api_server.pid"


class Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.headers.get("Authorization") != f"Bearer {os.environ['SHOP_API_KEY']}":
            return self._send(401, {"error": "unauthorized"})
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/orders":
            return self._send(200, json.loads((HERE / "data" / "orders.json").read_text()))
        if url.path != "/customers":
            return self._send(404, {"error": "not found"})
        rows = json.loads((HERE / "data" / "customers.json").read_text())
        newer = sorted((r for r in rows if r["updated_at"] > query.get("since", "")),
                       key=lambda r: r["updated_at"])
        page = int(query.get("page", "1"))
        return self._send(200, newer[(page - 1) * 2:page * 2])

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    command = sys.argv[1]
    if command == "serve":
        ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Shop).serve_forever()
    elif command == "start":
        port = sys.argv[sys.argv.index("--port") + 1] if "--port" in sys.argv else "8765"
        process = subprocess.Popen([sys.executable, __file__, "serve", port],
                                   start_new_session=True)
        PID.write_text(str(process.pid))
        import time
        import urllib.error
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (401 without a token)
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the API did not start")
    elif command == "stop" and PID.exists():
        os.kill(int(PID.read_text()), signal.SIGTERM)
        PID.unlink()


if __name__ == "__main__":
    main()
