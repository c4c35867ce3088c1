"""depends_on: unknown names with a hint, and cycles with their whole path, at the line."""

from __future__ import annotations

from pathlib import Path

from floe.compiler.graph import find_cycle
from tests.compiler.helpers import compile_text, errors_of, hints_of

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: shop, version: 1.0.0}}
sources:
  - name: raw
    source_type: filesystem
    destination_table: bronze.raw
    source_config: {{bucket_url: data, format: csv}}
  - name: api
    source_type: rest_api
    destination_table: bronze
    depends_on: [{api}]
    source_config:
      client: {{base_url: "http://localhost"}}
      resources: [orders, customers]
  - name: enrich
    source_type: filesystem
    destination_table: bronze.enrich
    depends_on: [{enrich}]
    source_config: {{bucket_url: data, format: csv}}
"""


def test_dependencies_compile(tmp_path: Path) -> None:
    artifacts = compile_text(tmp_path, PROJECT.format(api="raw", enrich="api.orders, raw"))
    assert artifacts.source("enrich").depends_on == ("api.orders", "raw")


def test_unknown_source_and_resource_get_a_hint(tmp_path: Path) -> None:
    text = PROJECT.format(api="rwa", enrich="api.order")
    assert errors_of(tmp_path, text) == [
        "12:18: sources[1].depends_on[0]: depends_on names no source 'rwa'",
        "19:18: sources[2].depends_on[0]: source 'api' has no resource 'order'"]
    assert hints_of(tmp_path, text) == ["did you mean 'raw'?", "did you mean 'api.orders'?"]


def test_a_cycle_prints_its_whole_path_at_the_line(tmp_path: Path) -> None:
    text = PROJECT.format(api="enrich", enrich="api.customers").replace(
        "  - name: raw\n", "  - name: raw\n    depends_on: [enrich]\n")
    errors = errors_of(tmp_path, PROJECT.format(api="enrich", enrich="api.customers"))
    assert errors == ["12:17: sources[1].depends_on: depends_on makes a cycle: "
                      "api -> enrich -> api"]
    assert "cycle" in errors_of(tmp_path, text)[0]


def test_self_dependency(tmp_path: Path) -> None:
    assert errors_of(tmp_path, PROJECT.format(api="api", enrich="raw")) == [
        "12:18: sources[1].depends_on[0]: source 'api' depends on itself"]


def test_graph_helpers() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"]}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_plan_shows_the_graph_change(tmp_path: Path) -> None:
    from floe.compiler.plan import plan

    old = compile_text(tmp_path, PROJECT.format(api="raw", enrich="raw"))
    new = compile_text(tmp_path, PROJECT.format(api="raw", enrich="raw, api.orders"))
    [change] = plan(old, new)
    assert (change.source, change.field, change.before, change.after) == (
        "enrich", "depends_on", ["raw"], ["raw", "api.orders"])
