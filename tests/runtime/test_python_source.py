"""source_type: python (#18): a module next to floe.yaml, as a user writes it, against real
local HTTP servers and files; tables read back with pyiceberg."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from floe.errors import CompileError
from tests.runtime.harness import Project

SHOP = '''\
import dlt
import pyarrow as pa
import pandas as pd
from pydantic import BaseModel

QUEUE = {queue!r}


@dlt.resource(primary_key="id", write_disposition={{"disposition": "merge",
                                                    "strategy": "upsert"}})
def customers(base_url: str, api_key: str,
              updated=dlt.sources.incremental("updated_at", initial_value=0)):
    import requests
    page, since = 1, updated.last_value
    while True:
        answer = requests.get(f"{{base_url}}/customers", timeout=5,
                              params={{"since": since, "page": page}},
                              headers={{"Authorization": f"Bearer {{api_key}}"}})
        answer.raise_for_status()
        rows = answer.json()
        if not rows:
            return
        yield rows
        page += 1


@dlt.resource
def events(batch: int):
    """A queue consumer: its offset lives in dlt's resource state."""
    state = dlt.current.resource_state()
    start = state.get("offset", 0)
    rows = QUEUE[start:start + batch]
    yield rows
    state["offset"] = start + len(rows)
    # a value every resource of the source shares (e.g. a consumer group's generation)
    shared = dlt.current.source_state()
    shared["runs"] = shared.get("runs", 0) + 1


class Order(BaseModel):
    id: int
    total: float


@dlt.resource
def orders():
    yield Order(id=10, total=9.5)
    yield Order(id=11, total=20.0)


@dlt.transformer(data_from=orders)
def order_lines(order):
    yield {{"order_id": order["id"] if isinstance(order, dict) else order.id, "line": 1}}


@dlt.resource
def arrow_rows():
    yield pa.table({{"id": [1, 2], "v": ["a", "b"]}})


@dlt.resource
def frame_rows():
    yield pd.DataFrame({{"id": [1, 2], "w": [0.5, 1.5]}})


@dlt.source
def shop(base_url: str, api_key: str, batch: int = 3):
    assert dlt.current.source_state().get("runs", 0) >= 0  # readable when called
    return (customers(base_url, api_key), events(batch), orders, order_lines, arrow_rows,
            frame_rows)
'''

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: pyshop, version: 1.0.0}}
sources:
  - name: shop
    source_type: python
    destination_table: bronze
{extra}    source_config:
      function: {function}
      args: {{base_url: "{base_url}", api_key: "{{{{ secret('SHOP_KEY') }}}}"}}
{config}"""

API_KEY = "sk-live-PYTHON-s3cret"


class Api:
    """A local HTTP API with a cursor: customers newer than ?since=, two per page."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.rows: list[dict[str, Any]] = [
            {"id": 1, "name": "Ada", "updated_at": 1}, {"id": 2, "name": "Bob", "updated_at": 2},
            {"id": 3, "name": "Cy", "updated_at": 3}]
        self.fail_on_page: int | None = None
        self.seen: list[tuple[int, int]] = []
        httpserver.expect_request("/customers").respond_with_handler(self.handle)
        self.url = httpserver.url_for("").rstrip("/")

    def handle(self, request: Request) -> Response:
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        since, page = int(request.args["since"]), int(request.args["page"])
        self.seen.append((since, page))
        if page == self.fail_on_page:
            return Response("boom", status=500)
        newer = sorted((r for r in self.rows if r["updated_at"] > since),
                       key=lambda r: r["updated_at"])
        return Response(json.dumps(newer[(page - 1) * 2:page * 2]),
                        content_type="application/json")


def _project(tmp_path: Path, api: Api, *, function: str = "sources.shop:shop",
             extra: str = "", config: str = "", queue: int = 7,
             module: str | None = None) -> Project:
    package = tmp_path / "sources"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    queue_rows = [{"offset": i, "event": f"e{i}"} for i in range(queue)]
    (package / "shop.py").write_text(module or SHOP.format(queue=queue_rows))
    project = Project(tmp_path)
    project.write(PROJECT.format(function=function, base_url=api.url, extra=extra,
                                 config=textwrap.indent(config, "      ")))
    return project


@pytest.fixture
def api(httpserver: HTTPServer) -> Api:
    return Api(httpserver)


ENV = {"SHOP_KEY": API_KEY}


def test_a_module_next_to_floe_yaml_lands_every_resource(tmp_path: Path, api: Api) -> None:
    project = _project(tmp_path, api)
    artifact = project.compile(ENV)
    assert API_KEY not in artifact.to_json()
    first = project.run("shop", environ=ENV)
    assert first.success, first.errors
    assert {t.table: t.rows_loaded for t in first.tables} == {
        "bronze.customers": 3, "bronze.events": 3, "bronze.orders": 2,
        "bronze.order_lines": 2, "bronze.arrow_rows": 2, "bronze.frame_rows": 2}
    assert [(r["id"], r["name"]) for r in project.read("bronze.customers")] == [
        (1, "Ada"), (2, "Bob"), (3, "Cy")]
    assert [r["total"] for r in project.read("bronze.orders")] == [9.5, 20.0]  # pydantic
    assert [r["v"] for r in project.read("bronze.arrow_rows")] == ["a", "b"]  # arrow
    assert [r["w"] for r in project.read("bronze.frame_rows")] == [0.5, 1.5]  # pandas
    assert [r["order_id"] for r in project.read("bronze.order_lines", "order_id")] == [10, 11]

    # the resource's own hints: merge (upsert) on id, its own incremental cursor
    api.rows[0] = {"id": 1, "name": "Ada Lovelace", "updated_at": 4}
    api.rows.append({"id": 4, "name": "Dee", "updated_at": 5})
    second = project.run("shop", environ=ENV)
    assert second.success, second.errors
    assert api.seen[-1][0] == 3, "the cursor was restored from the table"
    assert [(r["id"], r["name"]) for r in project.read("bronze.customers")] == [
        (1, "Ada Lovelace"), (2, "Bob"), (3, "Cy"), (4, "Dee")]
    # the queue offset in resource_state moved on: each event once
    assert [r["offset"] for r in project.read("bronze.events", "offset")] == list(range(6))


def test_source_state_is_committed_and_restored(tmp_path: Path, api: Api) -> None:
    from floe.runtime.iceberg.state import read_source_state

    project = _project(tmp_path, api)
    for _ in range(3):
        assert project.run("shop", environ=ENV).success
    table = project.catalog().load_table(("bronze", "events"))
    state = read_source_state(table, "pyshop__shop").state
    assert state is not None and state["source"] == {"runs": 3}


def test_floe_yaml_wins_over_the_resources_hints(tmp_path: Path, api: Api) -> None:
    project = _project(tmp_path, api, extra="    write_mode: append\n",
                       config="resources: [customers]\n")
    assert project.run("shop", environ=ENV).success
    api.rows[0] = {"id": 1, "name": "Ada Lovelace", "updated_at": 4}
    assert project.run("shop", environ=ENV).success
    # append: the new version is a second row, not an upsert
    assert sorted((r["id"], r["name"]) for r in project.read("bronze.customers")) == [
        (1, "Ada"), (1, "Ada Lovelace"), (2, "Bob"), (3, "Cy")]
    assert project.catalog().table_exists(("bronze", "customers"))
    assert not project.catalog().table_exists(("bronze", "events"))


def test_a_floe_yaml_primary_key_and_merge(tmp_path: Path, api: Api) -> None:
    module = """\
import dlt

@dlt.resource
def items(version: int):
    yield [{"sku": "a", "qty": version}, {"sku": "b", "qty": version}]
"""
    project = _project(tmp_path, api, function="sources.shop:items", module=module,
                       extra="    write_mode: merge\n    primary_key: sku\n")
    text = (tmp_path / "floe.yaml").read_text().replace(
        f'args: {{base_url: "{api.url}", api_key: "{{{{ secret(\'SHOP_KEY\') }}}}"}}',
        "args: {version: 1}")
    (tmp_path / "floe.yaml").write_text(text)
    assert project.run("shop").success
    (tmp_path / "floe.yaml").write_text(text.replace("version: 1", "version: 2"))
    assert project.run("shop").success
    assert [(r["sku"], r["qty"]) for r in project.read("bronze.items", "sku")] == [
        ("a", 2), ("b", 2)]


def test_a_python_source_keeps_history_with_scd2(tmp_path: Path, api: Api) -> None:
    module = """\
import dlt

@dlt.resource
def items(version: int):
    yield [{"sku": "a", "qty": version}, {"sku": "b", "qty": 1}]
"""
    project = _project(tmp_path, api, function="sources.shop:items", module=module,
                       extra="    write_mode: merge\n    merge_strategy: scd2\n"
                             "    primary_key: sku\n")
    text = (tmp_path / "floe.yaml").read_text().replace(
        f'args: {{base_url: "{api.url}", api_key: "{{{{ secret(\'SHOP_KEY\') }}}}"}}',
        "args: {version: 1}")
    (tmp_path / "floe.yaml").write_text(text)
    assert project.run("shop").success
    (tmp_path / "floe.yaml").write_text(text.replace("version: 1", "version: 2"))
    second = project.run("shop")
    assert second.success, second.errors
    rows = sorted((r["sku"], r["qty"], r["_floe_is_current"])
                  for r in project.read("bronze.items", "sku"))
    assert rows == [("a", 1, False), ("a", 2, True), ("b", 1, True)]


def test_user_code_failing_on_page_3_commits_nothing(tmp_path: Path, api: Api) -> None:
    api.rows += [{"id": i, "name": f"n{i}", "updated_at": i} for i in range(4, 8)]
    project = _project(tmp_path, api, config="resources: [customers]\n")
    api.fail_on_page = 3
    failed = project.run("shop", environ=ENV)
    assert not failed.success
    assert failed.error_category == "TRANSIENT"  # an HTTP 500 keeps its category
    assert "HTTPError" in failed.errors[0] and "500" in failed.errors[0]
    assert "(at sources/shop.py:" in failed.errors[0], failed.errors  # the user's own frame
    assert API_KEY not in failed.errors[0]
    assert not project.catalog().table_exists(("bronze", "customers"))
    api.fail_on_page = None
    again = project.run("shop", environ=ENV)
    assert again.success and again.rows_loaded == 7
    assert api.seen[-1][0] == 0, "the cursor had not moved"


def test_user_code_that_hangs_is_stopped_by_timeout(tmp_path: Path, api: Api) -> None:
    module = """\
import time
import dlt

@dlt.resource
def slow():
    yield [{"id": 1}]
    time.sleep(60)
    yield [{"id": 2}]
"""
    project = _project(tmp_path, api, function="sources.shop:slow", module=module,
                       extra="    timeout_seconds: 2\n    retry: {max_retries: 0}\n")
    text = (tmp_path / "floe.yaml").read_text()
    (tmp_path / "floe.yaml").write_text(text.replace(
        text[text.index("      args:"):text.index("\n", text.index("      args:")) + 1], ""))
    result = project.run("shop")
    assert result.status == "timeout", result.errors
    assert not project.catalog().table_exists(("bronze", "slow"))


SIMPLE = """\
import dlt

@dlt.resource
def items(base_url: str, api_key: str):
    yield [{"id": 1}]

not_a_function = 42

def returns_a_dict(base_url: str, api_key: str):
    return {"id": 1}

@dlt.source
def pair(base_url: str, api_key: str):
    return items(base_url, api_key)

@dlt.resource
def sets(base_url: str, api_key: str):
    yield {"id": 1, "tags": object()}
"""


@pytest.mark.parametrize(("function", "config", "message"), [
    ("sources.shop:not_a_function", "",
     "function sources.shop:not_a_function: not_a_function is a int, not a function that "
     "returns a dlt source or resource"),
    ("sources.shop:returns_a_dict", "",
     "function sources.shop:returns_a_dict returned dict, not a dlt source or resource: "
     "return a @dlt.source, a @dlt.resource or a list of resources"),
    ("sources.shop:pair", "resources: [itemz]\n",
     "resources: sources.shop:pair has no resource itemz — did you mean items?; its "
     "resources: items"),
])
def test_run_time_mistakes_in_the_users_terms(tmp_path: Path, api: Api, function: str,
                                              config: str, message: str) -> None:
    project = _project(tmp_path, api, function=function, module=SIMPLE, config=config)
    result = project.run("shop", environ=ENV)
    assert not result.success
    assert result.errors[0].startswith(message), result.errors
    assert result.error_category == "CONFIGURATION"


def test_args_the_function_does_not_take(tmp_path: Path, api: Api) -> None:
    project = _project(tmp_path, api, function="sources.shop:pair", module=SIMPLE)
    text = (tmp_path / "floe.yaml").read_text().replace("api_key:", "apikey:")
    (tmp_path / "floe.yaml").write_text(text)
    result = project.run("shop", environ=ENV)
    assert not result.success
    assert result.errors[0].startswith(
        "args do not fit pair(base_url: str, api_key: str): missing a required argument: "
        "'api_key'"), result.errors
    assert API_KEY not in result.errors[0]


def test_non_serializable_items_name_the_source(tmp_path: Path, api: Api) -> None:
    project = _project(tmp_path, api, function="sources.shop:sets", module=SIMPLE)
    result = project.run("shop", environ=ENV)
    assert not result.success
    assert result.errors[0].startswith("python source shop raised "), result.errors
    assert not project.catalog().table_exists(("bronze", "sets"))


def test_a_package_the_module_imports_is_missing(tmp_path: Path, api: Api) -> None:
    module = "import stripe_sdk_not_installed\n\ndef src(base_url, api_key):\n    pass\n"
    project = _project(tmp_path, api, function="sources.shop:src", module=module)
    result = project.run("shop", environ=ENV)
    assert not result.success
    assert result.errors[0].startswith(
        "function sources.shop:src: module sources.shop imports stripe_sdk_not_installed, "
        "which is not installed: pip install stripe_sdk_not_installed"), result.errors


@pytest.mark.parametrize(("function", "message"), [
    ("sources.shop", "function 'sources.shop' names no function: use module:function, e.g. "
     "sources.stripe:stripe_source"),
    ("sourcez.shop:pair", "module sourcez.shop not found (in {root} or the installed "
     "packages)\n    hint: did you mean sources?"),
    ("sources.shop:piar", "module sources.shop ({root}/sources/shop.py) defines no piar\n"
     "    hint: did you mean sources.shop:pair?"),
])
def test_compile_time_mistakes_at_their_line(tmp_path: Path, api: Api, function: str,
                                             message: str) -> None:
    project = _project(tmp_path, api, function=function, module=SIMPLE)
    with pytest.raises(CompileError) as failure:
        project.compile(ENV)
    rendered = failure.value.render()
    assert f"floe.yaml:9:17: sources[0].source_config.function: " \
           f"{message.format(root=tmp_path)}" in rendered, rendered


def test_the_compiler_never_runs_the_module(tmp_path: Path, api: Api) -> None:
    marker = tmp_path / "ran"
    module = f"open({str(marker)!r}, 'w').write('x')\n\ndef pair(base_url, api_key):\n  pass\n"
    project = _project(tmp_path, api, function="sources.shop:pair", module=module)
    project.compile(ENV)
    assert not marker.exists()


def test_two_sources_with_state_into_one_table(tmp_path: Path, api: Api) -> None:
    module = """\
import dlt

@dlt.resource(table_name="events")
def feed(feed_name: str, total: int):
    state = dlt.current.resource_state()
    start = state.get("offset", 0)
    yield [{"source": feed_name, "n": i} for i in range(start, min(start + 2, total))]
    state["offset"] = min(start + 2, total)
"""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "__init__.py").write_text("")
    (tmp_path / "sources" / "feeds.py").write_text(module)
    project = Project(tmp_path)
    project.write("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: feeds, version: 1.0.0}
        sources:
          - name: left
            source_type: python
            destination_table: bronze.events
            source_config: {function: "sources.feeds:feed", args: {feed_name: left, total: 3}}
          - name: right
            source_type: python
            destination_table: bronze.events
            source_config: {function: "sources.feeds:feed", args: {feed_name: right, total: 5}}
        """)
    for _ in range(3):
        assert project.run("left").success
        assert project.run("right").success
    rows = project.catalog().load_table(("bronze", "events")).scan().to_arrow().to_pylist()
    assert sorted((r["source"], r["n"]) for r in rows) == [
        ("left", 0), ("left", 1), ("left", 2),
        ("right", 0), ("right", 1), ("right", 2), ("right", 3), ("right", 4)]


def test_verify_says_a_python_source_cannot_be_re_read(tmp_path: Path, api: Api) -> None:
    from floe.runtime.verify import verify_source

    project = _project(tmp_path, api)
    assert project.run("shop", environ=ENV).success
    [report] = verify_source(project.compile(ENV).source("shop"), project.catalog(),
                             project.root)
    assert (report.status, report.reason) == (
        "not_comparable", "python sources cannot be re-read for comparison (its function "
        "gives what it has now, like an API, not what was loaded)")


def test_a_large_state_lives_in_a_file_the_snapshot_points_at(tmp_path: Path,
                                                             api: Api) -> None:
    """Offsets for 2,000 partitions (~40 KB): kept out of the summary, restored, and kept by
    floe maintain (which removes every unreferenced file)."""
    import datetime as dt

    from floe.runtime.iceberg.state import STATE_PREFIX, read_source_state
    from floe.runtime.maintain import maintain_source

    module = """\
import dlt

@dlt.resource
def partitions():
    state = dlt.current.resource_state()
    offsets = state.setdefault("offsets", {})
    run = len(offsets) and offsets["p0"] + 1
    yield [{"run": run}]
    for p in range(2000):
        offsets[f"p{p}"] = run
"""
    project = _project(tmp_path, api, function="sources.shop:partitions", module=module)
    text = (tmp_path / "floe.yaml").read_text()
    (tmp_path / "floe.yaml").write_text(text.replace(
        text[text.index("      args:"):text.index("\n", text.index("      args:")) + 1], ""))
    for _ in range(3):
        assert project.run("shop").success
    table = project.catalog().load_table(("bronze", "partitions"))
    summary = table.current_snapshot().summary
    record = summary[STATE_PREFIX + "pyshop__shop"]
    assert len(record) < 300 and "state_file" in record
    assert [r["run"] for r in project.read("bronze.partitions", "run")] == [0, 1, 2]
    artifacts = project.compile()
    maintain_source(project.catalog(), artifacts.source("shop"), dt.timedelta(0), 1)
    state = read_source_state(project.catalog().load_table(("bronze", "partitions")),
                              "pyshop__shop").state
    assert state is not None and state["resources"]["partitions"]["offsets"]["p1999"] == 2
    assert project.run("shop").success
    assert [r["run"] for r in project.read("bronze.partitions", "run")] == [0, 1, 2, 3]


def test_checks_depends_on_changes_and_plan_from_the_cli(tmp_path: Path) -> None:
    """What a user runs next to a python source: checks, a dependent source, floe changes,
    floe plan (the commands, as processes)."""
    import subprocess
    import sys

    (tmp_path / "feed.py").write_text("""\
import dlt

@dlt.resource(primary_key="id", write_disposition="merge")
def accounts(version: int = 1):
    yield [{"id": 1, "balance": 10 * version}, {"id": 2, "balance": 20}]
""")
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_text("id\n1\n")
    text = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: ledger, version: 1.0.0}
sources:
  - name: feed
    source_type: python
    destination_table: bronze
    source_config: {function: "feed:accounts", args: {version: VERSION}, resources: [accounts]}
    checks:
      - unique: [id]
      - row_count: {min: 2}
  - name: after
    source_type: filesystem
    destination_table: bronze.after
    depends_on: [feed]
    source_config: {bucket_url: landing, format: csv}
"""
    (tmp_path / "floe.yaml").write_text(text.replace("VERSION", "1"))

    def floe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "floe.cli", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=False,
                              env={**__import__("os").environ, "COLUMNS": "200"})

    assert floe("compile").returncode == 0
    first = floe("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "unique__id" in first.stdout and "FAIL" not in first.stdout
    assert first.stdout.index("bronze.accounts") < first.stdout.index("bronze.after")
    assert floe("changes", "bronze.accounts", "--consumer", "silver").returncode == 0
    (tmp_path / "floe.yaml").write_text(text.replace("VERSION", "2"))
    planned = floe("plan")
    assert "~ feed  source_config:" in planned.stdout, planned.stdout
    assert floe("run", "--compile").returncode == 0
    changed = floe("changes", "bronze.accounts", "--consumer", "silver", "--format", "jsonl")
    assert changed.returncode == 0, changed.stderr
    rows = [json.loads(line) for line in changed.stdout.splitlines() if line.startswith("{")]
    assert sorted((r["id"], r["balance"], r["_change_type"]) for r in rows
                  if r["id"] == 1) == [(1, 10, "delete"), (1, 20, "insert")]


def test_a_replace_resource_swaps_the_table(tmp_path: Path, api: Api) -> None:
    module = """\
import dlt

@dlt.resource(write_disposition="replace")
def snapshot(size: int):
    yield [{"id": i} for i in range(size)]
"""
    project = _project(tmp_path, api, function="sources.shop:snapshot", module=module)
    text = (tmp_path / "floe.yaml").read_text()
    args = text[text.index("      args:"):text.index("\n", text.index("      args:")) + 1]
    for size in (5, 3):
        (tmp_path / "floe.yaml").write_text(text.replace(args, f"      args: {{size: {size}}}\n"))
        assert project.run("shop").success
    assert [r["id"] for r in project.read("bronze.snapshot")] == [0, 1, 2]


@pytest.mark.parametrize(("module", "message"), [
    ("import stripe_sdk_not_installed\n\ndef src(base_url, api_key):\n    pass\n",
     "function sources.shop:src: module sources.shop imports stripe_sdk_not_installed, which "
     "is not installed: pip install stripe_sdk_not_installed"),
    ("def src(base_url):\n    pass\n",
     "args do not fit src(base_url): got an unexpected keyword argument 'api_key'"),
    ("def src(base_url, api_key):\n    pass\n", None),
])
def test_validate_deep_imports_the_function_in_a_child(tmp_path: Path, api: Api, module: str,
                                                      message: str | None) -> None:
    import subprocess
    import sys

    _project(tmp_path, api, function="sources.shop:src", module=module)
    plain = subprocess.run([sys.executable, "-m", "floe.cli", "validate"], cwd=tmp_path,
                           capture_output=True, text=True, check=False)
    assert plain.returncode == 0, plain.stderr  # the compiler alone never imports it
    deep = subprocess.run([sys.executable, "-m", "floe.cli", "validate", "--deep"],
                          cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={**__import__("os").environ, "SHOP_KEY": API_KEY})
    if message is None:
        assert deep.returncode == 0, deep.stderr
        return
    assert deep.returncode == 1
    assert f"floe.yaml:9:17: sources[0].source_config.function: {message}" in deep.stderr, \
        deep.stderr
    assert API_KEY not in deep.stderr


def test_a_secret_in_the_users_error_is_masked(tmp_path: Path, api: Api) -> None:
    """User code that puts its key into an exception (a URL with ?key=...) never shows it."""
    module = """\
import dlt

@dlt.resource
def leaky(base_url: str, api_key: str):
    raise ValueError(f"GET {base_url}/orders?key={api_key} answered 500")
    yield []
"""
    project = _project(tmp_path, api, function="sources.shop:leaky", module=module)
    result = project.run("shop", environ=ENV)
    assert not result.success
    assert result.errors[0].startswith("python source shop raised ValueError: GET "), result.errors
    assert "key=***" in result.errors[0]
    assert API_KEY not in result.errors[0]
