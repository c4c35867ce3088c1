"""Evaluate a source's ``checks:`` against its Iceberg table, after a load.

Each check reads only the columns it needs and streams record batches, so a check on a large
table costs one column in memory at most (``unique`` needs the key columns; the others keep a
few counters).  Results say what failed in words a data engineer can act on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, EqualTo
from pyiceberg.table import Table

from floe.artifacts import (
    AcceptedValuesCheck,
    CheckConfig,
    CompiledSource,
    FreshnessCheck,
    NotNullCheck,
    NullRateCheck,
    ReconcileCheck,
    RowCountCheck,
    SchemaCheck,
    UniqueCheck,
    VolumeCheck,
)
from floe.logs import mask
from floe.runtime.iceberg.history import IS_CURRENT

SAMPLES = 5  # offending values quoted in a message


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: str  # warn | error
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_name(check: CheckConfig) -> str:
    """A stable, readable name: the Dagster check name and the key in results."""
    if isinstance(check, NotNullCheck | UniqueCheck):
        return f"{check.type}__{'__'.join(check.columns)}"
    if isinstance(check, AcceptedValuesCheck | FreshnessCheck | NullRateCheck):
        return f"{check.type}__{check.column}"
    return check.type


def describe(check: CheckConfig) -> str:
    if isinstance(check, RowCountCheck):
        bounds = [f">= {check.min}" if check.min is not None else "",
                  f"<= {check.max}" if check.max is not None else ""]
        return "row count " + " and ".join(b for b in bounds if b)
    if isinstance(check, NotNullCheck):
        return f"no nulls in {', '.join(check.columns)}"
    if isinstance(check, UniqueCheck):
        return f"{', '.join(check.columns)} unique"
    if isinstance(check, AcceptedValuesCheck):
        return f"{check.column} in {list(check.values)}"
    if isinstance(check, ReconcileCheck):
        lag = f", lag at most {_age(check.max_lag_seconds)}" if check.max_lag_seconds else ""
        return f"Bronze equals the source (floe verify){lag}"
    if isinstance(check, NullRateCheck):
        return f"at most {check.max:.1%} nulls in {check.column}"
    if isinstance(check, SchemaCheck):
        return "columns and types: " + ", ".join(f"{c} {t}" for c, t in check.columns.items())
    if isinstance(check, VolumeCheck):
        return (f"rows loaded between {check.min_ratio or 0}x and "
                f"{check.max_ratio if check.max_ratio is not None else 'any'}x the recent "
                "average")
    return f"newest {check.column} at most {_age(check.max_age_seconds)} old"


def _current(table: Table) -> BooleanExpression:
    """A history (scd2) table is checked on its current versions (docs/history.md): the
    closed ones already passed when they were current."""
    if IS_CURRENT in table.schema().column_names:
        return EqualTo(term=IS_CURRENT, value=True)
    return AlwaysTrue()


def _batches(table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    scan = table.scan(row_filter=_current(table), selected_fields=columns)
    yield from scan.to_arrow_batch_reader()


def _samples(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:SAMPLES])
    return shown + (", ..." if len(values) > SAMPLES else "")


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m {seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def _row_count(table: Table, check: RowCountCheck) -> tuple[bool, str, dict[str, Any]]:
    rows = table.scan(row_filter=_current(table)).count()
    too_few = check.min is not None and rows < check.min
    too_many = check.max is not None and rows > check.max
    bound = f"min {check.min}" if too_few else f"max {check.max}"
    message = (f"{rows} rows, outside {bound}" if too_few or too_many else f"{rows} rows")
    return not (too_few or too_many), message, {"row_count": rows}


def _not_null(table: Table, check: NotNullCheck) -> tuple[bool, str, dict[str, Any]]:
    nulls = dict.fromkeys(check.columns, 0)
    for batch in _batches(table, check.columns):
        for column in check.columns:
            nulls[column] += batch.column(column).null_count
    failing = {c: n for c, n in nulls.items() if n}
    message = "; ".join(f"{n} null values in {c}" for c, n in failing.items())
    return not failing, message or "no nulls", {"null_counts": nulls}


def _unique(table: Table, check: UniqueCheck) -> tuple[bool, str, dict[str, Any]]:
    keys = list(check.columns)
    data = table.scan(row_filter=_current(table),
                      selected_fields=check.columns).to_arrow()
    counts = data.group_by(keys, use_threads=False).aggregate([([], "count_all")])
    duplicated = counts.filter(pc.greater(counts["count_all"], 1))
    if duplicated.num_rows == 0:
        return True, f"{data.num_rows} unique values", {"duplicates": 0}
    rows = duplicated.select(keys).sort_by([(k, "ascending") for k in keys]).to_pylist()
    values = [r[keys[0]] if len(keys) == 1 else tuple(r.values()) for r in rows]
    label = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
    return (False, f"{len(values)} duplicate {label} values: {_samples(values)}",
            {"duplicates": len(values)})


def _accepted_values(table: Table, check: AcceptedValuesCheck
                     ) -> tuple[bool, str, dict[str, Any]]:
    bad = 0
    seen: list[Any] = []
    for batch in _batches(table, (check.column,)):
        column = batch.column(check.column)
        allowed = pa.array(list(check.values)).cast(column.type)
        outside = pc.filter(column, pc.invert(pc.is_in(column, value_set=allowed)))
        outside = outside.drop_null()
        bad += len(outside)
        for value in pc.unique(outside).to_pylist():
            if value not in seen and len(seen) <= SAMPLES:
                seen.append(value)
    if not bad:
        return True, f"all {check.column} values accepted", {"unexpected_rows": 0}
    return (False, f"{bad} rows with {check.column} outside {list(check.values)}: "
            f"{_samples(seen)}", {"unexpected_rows": bad})


def _newest(table: Table, column: str) -> dt.datetime | None:
    newest: dt.datetime | None = None
    for batch in _batches(table, (column,)):
        values = batch.column(column)
        if not pa.types.is_timestamp(values.type):
            values = pc.cast(values, pa.timestamp("us", tz="UTC"))
        value = pc.max(values).as_py()
        if value is not None:
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            newest = value if newest is None else max(newest, value)
    return newest


def _freshness(table: Table, check: FreshnessCheck) -> tuple[bool, str, dict[str, Any]]:
    newest = _newest(table, check.column)
    limit = _age(check.max_age_seconds)
    if newest is None:
        return False, f"no {check.column} values: the table is empty", {}
    age = (dt.datetime.now(dt.UTC) - newest).total_seconds()
    metadata = {"newest": newest.isoformat(), "age_seconds": round(age)}
    if age > check.max_age_seconds:
        return (False, f"newest {check.column} is {newest.isoformat()}, {_age(age)} old "
                f"(max age {limit})", metadata)
    return True, f"newest {check.column} is {_age(age)} old (max age {limit})", metadata


def _null_rate(table: Table, check: NullRateCheck) -> tuple[bool, str, dict[str, Any]]:
    rows = nulls = 0
    for batch in _batches(table, (check.column,)):
        rows += batch.num_rows
        nulls += batch.column(0).null_count
    rate = nulls / rows if rows else 0.0
    message = f"{rate:.1%} nulls in {check.column} ({nulls} of {rows} rows)"
    if rate > check.max:
        message += f", more than {check.max:.1%}"
    return rate <= check.max, message, {"null_rate": rate, "nulls": nulls, "rows": rows}


def _schema(table: Table, check: SchemaCheck) -> tuple[bool, str, dict[str, Any]]:
    actual = {f.name: str(f.field_type) for f in table.schema().fields}
    problems = []
    for column, expected in check.columns.items():
        found = actual.get(column)
        if found is None:
            problems.append(f"{column} is missing")
        elif found.replace(" ", "") != expected.replace(" ", "").lower():
            problems.append(f"{column} is {found}, not {expected}")
    if problems:
        return False, "; ".join(problems), {"columns": actual}
    return True, f"{len(check.columns)} column(s) as expected", {"columns": actual}


_RECENT_LOADS = 10


def _volume(table: Table, check: VolumeCheck) -> tuple[bool, str, dict[str, Any]]:
    """The last load's rows against the average of the loads before it (snapshot summaries:
    no data file is read)."""
    loads: list[int] = []
    snapshot = table.current_snapshot()
    while snapshot is not None and len(loads) <= _RECENT_LOADS:
        summary = snapshot.summary
        if summary is not None and summary["floe.load-id"] is not None:
            loads.append(int(summary["added-records"] or 0))
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    if len(loads) < 2:
        return True, "not enough loads yet to compare", {"loads": len(loads)}
    latest, history = loads[0], loads[1:]
    average = sum(history) / len(history)
    ratio = latest / average if average else float("inf") if latest else 1.0
    low = check.min_ratio if check.min_ratio is not None else 0.0
    high = check.max_ratio if check.max_ratio is not None else float("inf")
    message = (f"{latest} rows loaded, {ratio:.2f}x the average of the {len(history)} loads "
               f"before ({average:.0f})")
    passed = low <= ratio <= high
    if not passed:
        message += f", outside {low}x..{check.max_ratio if check.max_ratio is not None else 'any'}x"
    return passed, message, {"rows_loaded": latest, "ratio": ratio, "average": average}


def evaluate(table: Table, check: CheckConfig, source: CompiledSource | None = None,
             resource: str | None = None, project_root: Path | None = None) -> CheckOutcome:
    """Run one check; a column that does not exist fails the check instead of raising.
    ``reconcile`` also reads the source, so it needs the source, resource and project root."""
    if isinstance(check, ReconcileCheck):
        return _reconcile(table, check, source, resource, project_root)
    evaluators: dict[type, Callable[[Table, Any], tuple[bool, str, dict[str, Any]]]] = {
        RowCountCheck: _row_count, NotNullCheck: _not_null, UniqueCheck: _unique,
        AcceptedValuesCheck: _accepted_values, FreshnessCheck: _freshness,
        NullRateCheck: _null_rate, SchemaCheck: _schema, VolumeCheck: _volume}
    try:
        passed, message, metadata = evaluators[type(check)](table, check)
    except (ValueError, KeyError, pa.ArrowInvalid) as exc:
        passed, message, metadata = False, f"could not evaluate: {exc}", {}
    return CheckOutcome(check_name(check), passed, check.severity, message, metadata)


def _reconcile(table: Table, check: ReconcileCheck, source: CompiledSource | None,
               resource: str | None, project_root: Path | None) -> CheckOutcome:
    from floe.runtime.verify import reconcile

    assert source is not None and resource is not None and project_root is not None
    try:
        passed, message, metadata = reconcile(source, table, resource, project_root,
                                              check.max_lag_seconds)
    except Exception as exc:  # the source is down, a secret is missing: the check fails
        passed, message, metadata = False, f"could not compare: {type(exc).__name__}: " \
                                           f"{mask(str(exc))}", {}
    return CheckOutcome(check_name(check), passed, check.severity, message, metadata)


def check_source(catalog: Catalog, source: CompiledSource, resources: Sequence[str],
                 project_root: Path | None = None) -> list[tuple[str, CheckOutcome]]:
    """Every check of ``source`` on each of its resources' tables: (asset name, outcome)."""
    outcomes = []
    for resource in resources:
        try:
            table = catalog.load_table((source.namespace, source.table_for(resource)))
        except NoSuchTableError:
            continue  # nothing ever landed: there is nothing to check yet
        outcomes += [(source.asset_name(resource),
                      evaluate(table, check, source, resource, project_root))
                     for check in source.checks]
    return outcomes
