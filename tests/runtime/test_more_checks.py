"""null_rate, schema and volume: the same outcome in floe run (check_source) and Dagster."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from floe.runtime.dagster import build_definitions
from floe.runtime.quality import check_source
from tests.runtime.harness import Project

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: orders
    source_type: filesystem
    destination_table: bronze.orders
    source_config: {bucket_url: landing, format: jsonl}
    checks:
      - null_rate: {column: email, max: 0.25}
      - schema: {columns: {id: long, email: string, amount: double}}
      - volume: {min_ratio: 0.5, max_ratio: 2.0, severity: warn}
"""


def _drop(root: Path, name: str, count: int, nulls: int) -> None:
    folder = root / "landing"
    folder.mkdir(exist_ok=True)
    rows = [{"id": i, "email": None if i < nulls else f"u{i}@x", "amount": i * 1.5}
            for i in range(count)]
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _outcomes(project: Project) -> dict[str, tuple[bool, str]]:
    source = project.compile().source("orders")
    return {o.name: (o.passed, o.message)
            for _, o in check_source(project.catalog(), source, ["orders"], project.root)}


def _dagster(project: Project) -> dict[str, tuple[bool, str]]:
    defs = build_definitions(project.root / "target" / "compiled_artifacts.json")
    checks = [c for c in defs.asset_checks or []]
    run = dg.materialize([*(a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)),
                          *checks], raise_on_error=False)
    return {e.check_name: (e.passed, str(e.metadata["message"].value))
            for e in run.get_asset_check_evaluations()}


def test_checks_pass_then_fail_the_same_everywhere(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(PROJECT)
    _drop(tmp_path, "a.jsonl", 10, nulls=1)
    project.compile()
    dagster_first = _dagster(project)  # loads a.jsonl
    assert dagster_first == _outcomes(project)
    assert dagster_first["null_rate__email"] == (True, "10.0% nulls in email (1 of 10 rows)")
    assert dagster_first["schema"] == (True, "3 column(s) as expected")
    assert dagster_first["volume"] == (True, "not enough loads yet to compare")
    _drop(tmp_path, "b.jsonl", 10, nulls=0)
    assert project.run("orders").success
    assert _outcomes(project)["volume"] == (
        True, "10 rows loaded, 1.00x the average of the 1 loads before (10)")
    _drop(tmp_path, "c.jsonl", 60, nulls=30)
    assert project.run("orders").success
    outcomes = _outcomes(project)
    assert outcomes["null_rate__email"] == (
        False, "38.8% nulls in email (31 of 80 rows), more than 25.0%")
    assert outcomes["volume"] == (
        False, "60 rows loaded, 6.00x the average of the 2 loads before (10), outside 0.5x..2.0x")
    assert outcomes["schema"][0]


def test_schema_check_names_what_differs(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write(PROJECT.replace("amount: double", "amount: 'decimal(10, 2)', sku: string"))
    _drop(tmp_path, "a.jsonl", 3, nulls=0)
    assert project.run("orders").success
    assert _outcomes(project)["schema"] == (
        False, "amount is double, not decimal(10, 2); sku is missing")
