"""delete_column on merge sources: a marked row removes its key (hard) or stays marked (soft),
in the same commit as the rest of the load.  Each source type."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.runtime.harness import Project

HEAD = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: src
    destination_table: bronze.items
    write_mode: merge
    primary_key: id
    delete_column: {column}
    deletes: {deletes}
"""

SOURCES = {
    "filesystem": """\
    source_type: filesystem
    source_config: {{bucket_url: landing, file_glob: "*.jsonl", format: jsonl}}
""",
    "sql_database": """\
    source_type: sql_database
    source_config: {{credentials: "sqlite:///items.db", tables: [items]}}
""",
    "rest_api": """\
    source_type: rest_api
    source_config:
      client: {{base_url: "{url}"}}
      resources: [{{name: items, endpoint: {{path: /items, paginator: single_page}}}}]
""",
}


class Feed:
    """Serves the current batch of rows as each source type reads it."""

    def __init__(self, kind: str, root: Path, httpserver: HTTPServer) -> None:
        self.kind, self.root, self.batch, self.rows = kind, root, 0, []
        if kind == "rest_api":
            httpserver.expect_request("/items").respond_with_handler(self._respond)

    def _respond(self, _: Request) -> Response:
        return Response(json.dumps(self.rows), content_type="application/json")

    def send(self, rows: list[dict[str, object]]) -> None:
        self.batch += 1
        self.rows = rows
        if self.kind == "filesystem":
            folder = self.root / "landing"
            folder.mkdir(exist_ok=True)
            (folder / f"{self.batch}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows))
        elif self.kind == "sql_database":
            with sqlite3.connect(self.root / "items.db") as db:
                db.execute("DROP TABLE IF EXISTS items")
                db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, "
                           "is_deleted BOOLEAN)")
                db.executemany("INSERT INTO items VALUES (?, ?, ?)",
                               [(r["id"], r["name"], r["is_deleted"]) for r in rows])


@pytest.mark.parametrize("deletes", ["hard", "soft"])
@pytest.mark.parametrize("kind", ["filesystem", "sql_database", "rest_api"])
def test_marked_rows_remove_their_key(tmp_path: Path, httpserver: HTTPServer, kind: str,
                                      deletes: str) -> None:
    project = Project(tmp_path)
    url = httpserver.url_for("/").rstrip("/")
    project.write(HEAD.format(column="is_deleted", deletes=deletes)
                  + SOURCES[kind].format(url=url))
    feed = Feed(kind, tmp_path, httpserver)
    feed.send([{"id": 1, "name": "a", "is_deleted": False},
               {"id": 2, "name": "b", "is_deleted": False},
               {"id": 3, "name": "c", "is_deleted": False}])
    assert project.run("src").success
    feed.send([{"id": 1, "name": "a", "is_deleted": False},
               {"id": 2, "name": "b", "is_deleted": True},
               {"id": 3, "name": "c2", "is_deleted": False}])
    result = project.run("src")
    assert result.success, result.errors
    rows = [(r["id"], r["name"], bool(r["is_deleted"])) for r in project.read("bronze.items")]
    if deletes == "hard":
        assert rows == [(1, "a", False), (3, "c2", False)]
    else:
        assert rows == [(1, "a", False), (2, "b", True), (3, "c2", False)]


def test_a_timestamp_marker_deletes_when_set(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(HEAD.format(column="deleted_at", deletes="hard")
                  + SOURCES["filesystem"].format())
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": 1, "deleted_at": null}\n'
                                    '{"id": 2, "deleted_at": null}\n')
    assert project.run("src").success
    (folder / "b.jsonl").write_text('{"id": 2, "deleted_at": "2024-05-01T00:00:00Z"}\n')
    assert project.run("src").success
    assert [r["id"] for r in project.read("bronze.items")] == [1]
