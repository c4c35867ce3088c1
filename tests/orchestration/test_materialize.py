"""Materialize in-process with Dagster, read the Iceberg table back, check the checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg

from tests.orchestration.project import (
    definitions,
    drop_orders,
    fresh_orders,
    orders_assets,
    write_project,
)

ORDERS = dg.AssetKey("ingestion__orders__orders")


def _materialize(root: Path, instance: dg.DagsterInstance | None = None
                 ) -> dg.ExecuteInProcessResult:
    defs = definitions(write_project(root))
    return dg.materialize(orders_assets(defs), instance=instance, raise_on_error=False)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, str]]:
    outcomes = {}
    for evaluation in result.get_asset_check_evaluations():
        message = evaluation.metadata["message"].value
        outcomes[evaluation.check_name] = (evaluation.passed, str(message))
    return outcomes


def test_materialization_lands_the_table_with_metadata(tmp_path: Path) -> None:
    drop_orders(tmp_path, fresh_orders(3))
    project = write_project(tmp_path)
    result = _materialize(tmp_path)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata: dict[str, Any] = {k: v.value for k, v in event.materialization.metadata.items()}
    rows = project.read("bronze.orders")
    assert [r["id"] for r in rows] == [1, 2, 3]
    snapshot = project.catalog().load_table(("bronze", "orders")).current_snapshot()
    assert snapshot is not None
    assert metadata["rows_loaded"] == 3
    assert metadata["dagster/row_count"] == 3
    assert metadata["snapshot_id"] == str(snapshot.snapshot_id)
    assert metadata["destination_table"] == "bronze.orders"
    assert metadata["source_type"] == "filesystem"
    assert metadata["bytes_written"] > 0


def test_checks_pass_on_good_data(tmp_path: Path) -> None:
    drop_orders(tmp_path, fresh_orders(3))
    outcomes = _checks(_materialize(tmp_path))
    assert outcomes == {
        "row_count": (True, "3 rows"),
        "not_null__id__status": (True, "no nulls"),
        "unique__id": (True, "3 unique values"),
        "accepted_values__status": (True, "all status values accepted"),
        "freshness__updated_at": (True, outcomes["freshness__updated_at"][1]),
    }
    assert "max age 2h 0m" in outcomes["freshness__updated_at"][1]


def test_checks_say_what_failed_on_bad_data(tmp_path: Path) -> None:
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)).replace(microsecond=0)
    rows: list[dict[str, object]] = [
        {"id": i, "status": "new", "updated_at": stale.isoformat()} for i in range(1, 8)]
    rows += [{"id": 17, "status": "new", "updated_at": stale.isoformat()},
             {"id": 42, "status": None, "updated_at": stale.isoformat()},
             {"id": 42, "status": "lost", "updated_at": stale.isoformat()}]
    rows[0]["id"] = 17
    drop_orders(tmp_path, rows)
    result = _materialize(tmp_path)
    # error-severity checks block: the run fails as `floe run` exits 1, the load stays landed
    assert not result.success
    assert len(result.get_asset_materialization_events()) == 1
    assert len(write_project(tmp_path).read("bronze.orders")) == 10
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "blocking asset checks failed with ERROR severity" in str(
        failure[0].event_specific_data)
    outcomes = _checks(result)
    assert outcomes["row_count"] == (True, "10 rows")
    assert outcomes["not_null__id__status"] == (False, "1 null values in status")
    assert outcomes["unique__id"] == (False, "2 duplicate id values: 17, 42")
    assert outcomes["accepted_values__status"] == (
        False, "1 rows with status outside ['new', 'paid', 'shipped']: lost")
    passed, message = outcomes["freshness__updated_at"]
    assert not passed
    assert message == f"newest updated_at is {stale.isoformat()}, 5h 0m old (max age 2h 0m)"


def test_row_count_and_severity(tmp_path: Path) -> None:
    drop_orders(tmp_path, fresh_orders(101))
    result = _materialize(tmp_path)
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == "row_count"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["message"].value == "101 rows, outside max 100"


def test_a_failed_load_fails_the_asset_and_leaves_the_table(tmp_path: Path) -> None:
    drop_orders(tmp_path, fresh_orders(2))
    project = write_project(tmp_path)
    assert _materialize(tmp_path).success
    (tmp_path / "landing" / "b.jsonl").write_text("{not json\n")
    result = _materialize(tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.error is not None
    assert ("bad row at b.jsonl:1: not JSON: Expecting property name enclosed in double quotes"
            in failure.step_failure_data.error.message)
    assert [r["id"] for r in project.read("bronze.orders")] == [1, 2]
