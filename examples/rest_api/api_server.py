"""The shop's order API, for the rest_api example: paginated JSON behind a bearer token.

    python -m api_server start --port 8765   # serves in the background, returns when ready
    python -m api_server stop

GET /orders?page=N&updated_since=ISO returns {"data": [...], "page": N, "pages": M}, two orders
per page, from every data/api/*.json file (re-read on each request, so copying a file into
data/api changes what the API returns).  The token is $SHOP_API_TOKEN.
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
from urllib.parse import parse_qs, urlparse

HERE = Path(__file__).parent
PID_FILE = HERE / ".api_server.pid"
PAGE_SIZE = 2


def orders(updated_since: str) -> list[dict[str, object]]:
    rows: dict[object, dict[str, object]] = {}
    for path in sorted((HERE / "data" / "api").glob("*.json")):
        for row in json.loads(path.read_text()):
            rows[row["id"]] = row  # a later file holds the newer version of an order
    return sorted((r for r in rows.values() if str(r["updated_at"]) > updated_since),
                  key=lambda r: str(r["id"]))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.headers.get("Authorization") != f"Bearer {os.environ['SHOP_API_TOKEN']}":
            return self._reply(401, {"error": "missing or wrong token"})
        url = urlparse(self.path)
        if url.path != "/orders":
            return self._reply(404, {"error": f"no such endpoint {url.path}"})
        query = parse_qs(url.query)
        page = int(query.get("page", ["1"])[0])
        rows = orders(query.get("updated_since", [""])[0])
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        chunk = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        return self._reply(200, {"data": chunk, "page": page, "pages": pages})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:  # keep the terminal for floe's output
        pass


def start(port: int) -> None:
    process = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(port)],
                               start_new_session=True)
    PID_FILE.write_text(str(process.pid))
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                print(f"API listening on http://127.0.0.1:{port}")
                return
        time.sleep(0.1)
    raise SystemExit(f"the API did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description="the rest_api example's order API")
    parser.add_argument("action", choices=["start", "stop", "serve"])
    parser.add_argument("--port", type=int, default=8765)
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
