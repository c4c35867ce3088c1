"""python sources in the Dagster code location (#18): one asset per resource, materialized for
real; a broken module takes only its own source down; `resources:` means no import at load."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

from floe.runtime.dagster import build_definitions
from tests.runtime.harness import Project

MODULE = '''\
import dlt

{broken}

@dlt.resource(primary_key="id", write_disposition="merge")
def customers():
    yield [{{"id": 1, "name": "Ada"}}, {{"id": 2, "name": "Bob"}}]


@dlt.resource
def events():
    state = dlt.current.resource_state()
    start = state.get("offset", 0)
    yield [{{"n": i}} for i in range(start, start + 2)]
    state["offset"] = start + 2


@dlt.source
def crm():
    return customers, events
'''

PROJECT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: pyshop, version: 1.0.0}}
sources:
  - name: crm
    source_type: python
    destination_table: bronze
    source_config: {{function: "{module}:crm"{resources}}}
  - name: files
    source_type: filesystem
    destination_table: bronze.files
    source_config: {{bucket_url: landing, format: csv}}
"""


def _project(root: Path, module: str, broken: str = "", resources: str = "") -> Project:
    (root / f"{module}.py").write_text(MODULE.format(broken=broken))
    (root / "landing").mkdir(exist_ok=True)
    (root / "landing" / "f.csv").write_text("id\n1\n")
    project = Project(root)
    project.write(PROJECT.format(module=module, resources=resources))
    project.compile()
    return project


def _definitions(root: Path) -> dg.Definitions:
    return build_definitions(root / "target" / "compiled_artifacts.json")


def _keys(defs: dg.Definitions) -> set[str]:
    return {k.to_user_string() for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
            for k in a.keys}


def test_one_asset_per_resource_materialized(tmp_path: Path) -> None:
    project = _project(tmp_path, "crm_source_ok")
    defs = _definitions(tmp_path)
    assert _keys(defs) == {"ingestion__crm__customers", "ingestion__crm__events",
                           "ingestion__files__files"}
    crm = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
           and dg.AssetKey("ingestion__crm__events") in a.keys]
    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = dg.materialize(crm, instance=instance)
            assert result.success
    assert [r["n"] for r in project.read("bronze.events", "n")] == [0, 1, 2, 3]
    assert [r["name"] for r in project.read("bronze.customers")] == ["Ada", "Bob"]


def test_a_broken_module_takes_only_its_own_source_down(tmp_path: Path) -> None:
    _project(tmp_path, "crm_source_broken", broken="raise RuntimeError('no API key here')")
    defs = _definitions(tmp_path)
    assert _keys(defs) == {"ingestion__crm__crm", "ingestion__files__files"}
    [broken] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
                and dg.AssetKey("ingestion__crm__crm") in a.keys]
    description = broken.specs_by_key[dg.AssetKey("ingestion__crm__crm")].description or ""
    assert description.startswith(
        "python source crm could not be loaded: function crm_source_broken:crm: importing "
        "crm_source_broken raised RuntimeError: no API key here (at crm_source_broken.py:3")
    files = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
             and dg.AssetKey("ingestion__files__files") in a.keys]
    with dg.instance_for_test() as instance:
        assert dg.materialize(files, instance=instance).success
        failed = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not failed.success


def test_listed_resources_never_import_the_module(tmp_path: Path) -> None:
    _project(tmp_path, "crm_source_listed", broken="raise RuntimeError('imported')",
             resources=", resources: [customers, events]")
    defs = _definitions(tmp_path)
    assert "crm_source_listed" not in sys.modules
    assert _keys(defs) == {"ingestion__crm__customers", "ingestion__crm__events",
                           "ingestion__files__files"}
