"""How a load's columns meet the table's: the schema contract, applied against the real table.

A source drifts: a column appears, is widened (``int`` -> ``bigint``, ``numeric(10,2)`` ->
``numeric(14,2)``) or changes type outright (``bigint`` -> ``double precision``).  Bronze is the
system of record, so under ``evolve`` none of this may block a source for good:

- a new column is added;
- a legal Iceberg promotion (int -> long, float -> double, decimal precision widened at the same
  scale) is applied to the column in the same commit;
- a value that fits the existing column (a narrower integer, an integer into a double, anything
  into a string) is cast to it;
- any other type lands in a variant column ``<column>__v_<type>`` (dlt's convention) and the
  existing column is left null for those rows.

``discard_value`` drops new columns and values that do not fit; ``freeze`` rejects any change
with ``SchemaContractViolation`` naming the column and both types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from floe.artifacts import SchemaContract
from floe.runtime.iceberg.pyiceberg_internals import arrow_to_iceberg_type
from floe.runtime.ingestion.errors import SchemaContractViolation

_INTEGERS = (IntegerType, LongType)
_FLOATS = (FloatType, DoubleType)


@dataclass(frozen=True)
class TypeChange:
    column: str
    old: str
    new: str
    variant: str | None = None  # the column the values went to, when not promoted

    def __str__(self) -> str:
        """``price: long -> double (price__v_double)``: in logs, run tables and metadata."""
        return f"{self.column}: {self.old} -> {self.new}" + (
            f" ({self.variant})" if self.variant else "")


@dataclass
class SchemaPlan:
    """What to do to the table's schema, and how to project each incoming batch onto it."""

    projection: dict[str, pc.Expression] = field(default_factory=dict)
    new_columns: list[pa.Field] = field(default_factory=list)
    promotions: list[tuple[str, IcebergType]] = field(default_factory=list)
    changes: list[TypeChange] = field(default_factory=list)

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.new_columns)

    @property
    def changes_schema(self) -> bool:
        return bool(self.new_columns or self.promotions)

    def reader(self, files: Sequence[str], incoming: pa.Schema,
               batch_size: int = 256_000) -> pa.RecordBatchReader:
        return ds.dataset(list(files), schema=incoming, format="parquet").scanner(
            columns=self.projection, batch_size=batch_size).to_reader()

    def read_all(self, files: Sequence[str], incoming: pa.Schema) -> pa.Table:
        return ds.dataset(list(files), schema=incoming, format="parquet").to_table(
            columns=self.projection)


def widens(old: IcebergType, new: IcebergType) -> bool:
    """Iceberg's legal type promotions (the spec's list, not pyiceberg's read-time one)."""
    if isinstance(old, IntegerType):
        return isinstance(new, LongType)
    if isinstance(old, FloatType):
        return isinstance(new, DoubleType)
    if isinstance(old, DecimalType) and isinstance(new, DecimalType):
        return new.scale == old.scale and new.precision > old.precision
    return False


def fits(value_type: IcebergType, column_type: IcebergType) -> bool:
    """Values of ``value_type`` can be stored in a ``column_type`` column without loss
    (Arrow's safe cast still refuses any single value that would not)."""
    if value_type == column_type or widens(value_type, column_type):
        return True
    if isinstance(value_type, _INTEGERS) and isinstance(column_type, _FLOATS):
        return True  # an integer that a float column cannot hold exactly fails the cast
    if isinstance(column_type, StringType):
        return not isinstance(value_type, BinaryType) and value_type.is_primitive
    return isinstance(value_type, DecimalType) and isinstance(column_type, DecimalType) and (
        value_type.scale == column_type.scale and value_type.precision <= column_type.precision)


def type_label(iceberg_type: IcebergType) -> str:
    """dlt's data type names, used in variant column names (``amount__v_double``)."""
    labels: list[tuple[type | tuple[type, ...], str]] = [
        (StringType, "text"), (_INTEGERS, "bigint"), (_FLOATS, "double"),
        (BooleanType, "bool"), ((TimestampType, TimestamptzType), "timestamp"),
        (DateType, "date"), (TimeType, "time"), (DecimalType, "decimal"),
        (BinaryType, "binary")]
    for kind, label in labels:
        if isinstance(iceberg_type, kind):
            return label
    return "json"


def _freeze(column: str, old: IcebergType, new: IcebergType) -> SchemaContractViolation:
    return SchemaContractViolation(
        f"schema contract 'freeze' rejects the type change of column {column} from {old} to "
        f"{new}; the table was left unchanged (use schema_contract: evolve to accept it, or "
        "floe run --full-refresh to recreate the table)")


def plan_schema(table_schema: Schema, incoming: pa.Schema, contract: SchemaContract,
                primary_key: Sequence[str] = ()) -> SchemaPlan:
    """Decide, column by column, how ``incoming`` lands in a table of ``table_schema``."""
    plan = SchemaPlan()
    existing = {f.name: f for f in table_schema.fields}
    new: list[str] = []
    for column in incoming:
        name = column.name
        if pa.types.is_null(column.type):  # no value yet: nothing to decide
            if name in existing:
                target = schema_to_pyarrow(existing[name].field_type)
                plan.projection[name] = ds.field(name).cast(target)
            continue
        current = existing.get(name)
        if current is None:
            new.append(name)
            plan.projection[name] = ds.field(name)
            plan.new_columns.append(column)
            continue
        old, arriving = current.field_type, arrow_to_iceberg_type(column.type)
        if fits(arriving, old):
            target = schema_to_pyarrow(old, include_field_ids=False)
            plan.projection[name] = (ds.field(name) if arriving == old
                                     else ds.field(name).cast(target))
            continue
        if contract == "freeze":
            raise _freeze(name, old, arriving)
        if widens(old, arriving):
            plan.projection[name] = ds.field(name)
            plan.promotions.append((name, arriving))
            plan.changes.append(TypeChange(name, str(old), str(arriving)))
            continue
        if name in primary_key:
            raise SchemaContractViolation(
                f"primary key column {name} changed type from {old} to {arriving}; rows can no "
                "longer be matched (run floe run --full-refresh to recreate the table)")
        if contract == "discard_value":
            plan.changes.append(TypeChange(name, str(old), str(arriving)))
            continue
        variant = f"{name}__v_{type_label(arriving)}"
        plan.changes.append(TypeChange(name, str(old), str(arriving), variant))
        held = existing.get(variant)
        if held is not None and fits(arriving, held.field_type):
            target = schema_to_pyarrow(held.field_type, include_field_ids=False)
            plan.projection[variant] = ds.field(name).cast(target)
        else:
            plan.projection[variant] = ds.field(name)
            plan.new_columns.append(pa.field(variant, column.type))
    if new and contract == "freeze":
        raise SchemaContractViolation(
            f"schema contract 'freeze' rejects new column(s) {', '.join(new)}; the table was "
            "left unchanged (use schema_contract: evolve to accept them, or discard_value to "
            "drop them)")
    if contract == "discard_value":
        plan.new_columns = []
        for name in new:
            del plan.projection[name]
    return plan
