"""One source's ``transform:`` applied to Arrow tables: what lands, and the keys it filtered.

Everything reads the source's columns under their source names; the engine computes only the
new, hashed, masked and replaced columns and the filter, and every other column is passed on
as the very Arrow array it came in (no type ever changes on the way through an engine).

Order of a row's journey: the expressions and the filter read the row as the source sent it;
then hashed, masked and replaced columns take the place of their source column, renames apply,
dropped columns go, and computed columns follow the source's, in floe.yaml's order.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from floe.artifacts import TransformColumn, TransformConfig
from floe.expressions import Expression, mask_sql, parse, quote
from floe.logs import mask, register_secret_value
from floe.runtime.ingestion.errors import PipelineConfigurationError, SourceFields
from floe.runtime.transforms.engine import Engine, EngineError
from floe.secrets import MissingSecretError, resolve_secrets

_KEEP = "__floe_keep"
_BLOCK = 64  # SHA-256's block size: HMAC pads its key to it


class TransformError(PipelineConfigurationError):
    """A transform that cannot apply to the rows that came (never retried; nothing commits)."""


@dataclass(frozen=True)
class Applied:
    rows: pa.Table  # what lands (every row, with ``filter_rows=False``)
    filtered: pa.Table  # the key columns of the rows ``where`` left out
    kept: pa.Array | pa.ChunkedArray | None = None  # per row of the input: ``where`` held


def _hmac_pads(salt: str) -> tuple[bytes, bytes]:
    """HMAC's outer and inner keys (RFC 2104): the engine hashes ``opad || H(ipad || value)``,
    which is HMAC-SHA256 (tested against Python's hmac)."""
    key = salt.encode("utf-8")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x5C for b in key), bytes(b ^ 0x36 for b in key)


def _hash_sql(column: str, index: int) -> str:
    value = f"encode(CAST({quote(column)} AS VARCHAR))"
    return f"sha256($outer{index}::BLOB || unhex(sha256($inner{index}::BLOB || {value})))"


@dataclass(frozen=True)
class _Plan:
    """How a table with given columns lands: each output column with the source column it
    passes on (None: computed), the computed columns' SQL, and the filter's SQL."""

    layout: list[tuple[str, str | None]]
    computed: dict[str, str]
    where_sql: str | None


def _own(name: str) -> bool:
    return name.startswith(("_floe_", "_dlt_"))


class TableTransform:
    """A source's transform, ready for its tables: secrets resolved, expressions parsed once.

    ``normalize`` maps a name as floe.yaml wrote it to the name a dlt load gives the column
    (snake_case); a name found neither way is a mistake named with the table's columns."""

    def __init__(self, config: TransformConfig, environ: Mapping[str, str], where: str,
                 normalize: Callable[[str], str] | None = None,
                 error_fields: SourceFields | None = None) -> None:
        self.config = config
        self.label = where  # "source <name>": how errors name the transform's owner
        self.normalize = normalize
        self.error_fields = error_fields
        self.expressions: dict[str, Expression] = {
            c.name: parse(c.expression) for c in config.columns
            if c.kind == "expression" and c.expression is not None}
        self.where = parse(config.where) if config.where else None
        self.params: dict[str, bytes] = {}
        for index, column in enumerate(config.columns):
            if column.kind == "hash" and column.salt is not None:
                try:
                    salt = str(resolve_secrets(column.salt, environ))
                except MissingSecretError as missing:
                    raise self.error(f"transform.columns.{column.name}: {missing}") from None
                register_secret_value(salt)
                self.params[f"outer{index}"], self.params[f"inner{index}"] = _hmac_pads(salt)
        self._engine: Engine | None = None

    def error(self, message: str) -> TransformError:
        if self.error_fields is None:
            return TransformError(mask(message))
        return TransformError(mask(message), **self.error_fields)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    # names -------------------------------------------------------------------------------

    def _resolver(self, table_name: str, names: Sequence[str]) -> Callable[[str, str], str]:
        present = set(names)

        def resolve(name: str, used_by: str) -> str:
            if name in present:
                return name
            if self.normalize is not None and self.normalize(name) in present:
                return self.normalize(name)
            theirs = [n for n in names if not _own(n)]
            close = difflib.get_close_matches(name, theirs, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.error(f"{used_by} reads column '{name}', which {table_name} does not "
                             f"have{hint}; its columns: {', '.join(theirs)}")
        return resolve

    def output_names(self, names: Sequence[str]) -> list[str]:
        """The columns a table with ``names`` lands with (for ``floe verify`` and lineage)."""
        return [out for out, _ in self._plan("", list(names), ()).layout]

    def passed_through(self, names: Sequence[str]) -> dict[str, str]:
        """{Bronze column: source column} of the columns that land as the source sent them
        (renamed at most): Bronze's value of one is the source's value."""
        return {out: source for out, source in self._plan("", list(names), ()).layout
                if source is not None}

    def reshaped(self) -> set[str]:
        """Source columns that do not land as they came: dropped, renamed, or replaced by a
        value of maybe another type (a dlt column hint for one would be wrong)."""
        config = self.config
        names = {*config.drop, *config.rename,
                 *(c.name for c in config.columns if c.replace)}
        if self.normalize is not None:
            names |= {self.normalize(n) for n in names}
        return names

    def depending_on(self, columns: set[str]) -> set[str]:
        """The Bronze columns whose value is computed from any of the source ``columns``."""
        found = set()
        for column in self.config.columns:
            if columns & set(column.reads):
                found.add(self.config.output_name(column.name) if column.replace
                          else column.name)
        return found

    def _plan(self, table_name: str, names: list[str], key: Sequence[str]) -> _Plan:
        """What a table with ``names`` lands as, every name resolved once."""
        resolve = self._resolver(table_name, names)
        config = self.config
        dropped = {resolve(n, f"transform.drop '{n}'") for n in config.drop}
        renamed = {resolve(old, f"transform.rename '{old}'"): new
                   for old, new in config.rename.items()}
        for key_column in key:
            if key_column in dropped or key_column in renamed:
                verb = "drop" if key_column in dropped else "rename"
                raise self.error(f"transform would {verb} '{key_column}', the primary key of "
                                 f"{table_name}: matching rows and deletes need it")
        sql: dict[str, str] = {}
        replaced: dict[str, str] = {}  # source column -> the transform column taking its place
        added: list[str] = []
        for index, column in enumerate(config.columns):
            label = f"transform.columns.{column.name}"
            written = f"{label} {column.expression!r}" if column.expression else label
            reads = [resolve(name, written) for name in column.reads]
            sql[column.name] = self._column_sql(column, index, reads)
            target = resolve(column.name, label) if column.replace else None
            if target is not None:
                if target in key:
                    raise self.error(f"{label} would rewrite '{target}', the primary key of "
                                     f"{table_name}: matching rows and deletes need it")
                replaced[target] = column.name
            else:
                added.append(column.name)
        where_sql = self.where.sql(
            lambda n: resolve(n, f"transform.where {self.config.where!r}")) \
            if self.where else None
        passed = [(renamed.get(n, n), n) for n in names if n not in dropped]
        taken = {out for out, _ in passed}
        for name in added:
            if name in taken:
                raise self.error(f"transform.columns.{name}: '{name}' is already a column of "
                                 f"{table_name}; add `replace: true` to overwrite it, or choose "
                                 "another name")
        layout: list[tuple[str, str | None]] = [
            (out, None if source in replaced else source) for out, source in passed]
        layout += [(name, None) for name in added]
        sources_of = {out: replaced.get(source, source) for out, source in passed}
        sources_of.update({name: name for name in added})
        return _Plan(layout, {out: sql[sources_of[out]] for out, source in layout
                              if source is None}, where_sql)

    def _column_sql(self, column: TransformColumn, index: int, reads: list[str]) -> str:
        if column.kind == "hash":
            return _hash_sql(reads[0], index)
        if column.kind == "mask":
            return mask_sql(column.mask, reads[0])
        expression = self.expressions[column.name]
        mapping = dict(zip(column.reads, reads, strict=True))
        return expression.sql(lambda name: mapping.get(name, name))

    # applying ----------------------------------------------------------------------------

    def apply(self, table: pa.Table, table_name: str, key: Sequence[str],
              filter_rows: bool = True) -> Applied:
        plan = self._plan(table_name, table.column_names, key)
        layout, computed, where_sql = plan.layout, plan.computed, plan.where_sql
        selects = [f"{sql} AS \"c{i}\"" for i, sql in enumerate(computed.values())]
        if where_sql is not None:
            selects.append(f"({where_sql}) AS \"{_KEEP}\"")
        result = self._run(selects, table, table_name, key, list(computed), where_sql) \
            if selects else None
        values = {name: result[f"c{i}"] for i, name in enumerate(computed)} \
            if result is not None else {}
        fields = [table.schema.field(source).with_name(out) if source is not None  # as sent
                  else pa.field(out, values[out].type) for out, source in layout]
        rows = pa.Table.from_arrays(
            [table[source] if source is not None else values[out] for out, source in layout],
            schema=pa.schema(fields))
        if where_sql is None or result is None:
            return Applied(rows, table.select(list(key)).slice(0, 0))
        keep = result[_KEEP]
        if not pa.types.is_boolean(keep.type) and not pa.types.is_null(keep.type):
            raise self.error(f"transform.where {self.config.where!r} gives "
                             f"{keep.type} values, not true/false: write a condition, "
                             "e.g. \"status <> 'test'\"")
        keep = pc.fill_null(keep.cast(pa.bool_()), False)
        return Applied(rows.filter(keep) if filter_rows else rows,
                       table.select(list(key)).filter(pc.invert(keep)), keep)

    def _run(self, selects: list[str], table: pa.Table, table_name: str, key: Sequence[str],
             computed: list[str], where_sql: str | None) -> pa.Table:
        try:
            return self.engine.select(selects, table, self._params_for(selects))
        except EngineError as failure:
            raise self._explain(failure, selects, table, table_name, key, computed,
                                where_sql) from None

    def _params_for(self, selects: list[str]) -> dict[str, Any]:
        used = set(re.findall(r"\$(\w+)", " ".join(selects)))
        return {name: value for name, value in self.params.items() if name in used}

    def _explain(self, failure: Exception, selects: list[str], table: pa.Table,
                 table_name: str, key: Sequence[str], computed: list[str],
                 where_sql: str | None) -> TransformError:
        """Which expression failed, and on the first row it fails for (a bisection of the
        table: ~20 small queries for 1M rows)."""
        labels = [f"transform.columns.{name}" for name in computed] + (
            ["transform.where"] if where_sql is not None else [])
        for select, label in zip(selects, labels, strict=True):
            def fails(rows: int, select: str = select) -> bool:
                try:
                    self.engine.select([select], table.slice(0, rows), self._params_for([select]))
                except EngineError:
                    return True
                return False

            if not fails(table.num_rows):
                continue
            low, high = 0, table.num_rows  # fails(high); find the first row that does
            always = fails(0)
            if always:
                high = 0
            while low < high:
                middle = (low + high) // 2
                if fails(middle + 1):
                    high = middle
                else:
                    low = middle + 1
            written = self._written(label)
            row = min(high, table.num_rows - 1)
            named = ", ".join(f"{k}={table[k][row].as_py()!r}" for k in key
                              if k in table.column_names)
            first = " (it fails for every row)" if always or not table.num_rows else \
                f" at the row with {named}" if named else f" at row {row + 1}"
            return self.error(f"{label} {written!r} failed on {table_name}{first}: "
                              f"{str(failure).splitlines()[0]}")
        return self.error(f"transform failed on {table_name}: {str(failure).splitlines()[0]}")

    def _written(self, label: str) -> str:
        if label == "transform.where":
            return self.config.where or ""
        name = label.removeprefix("transform.columns.")
        column = next(c for c in self.config.columns if c.name == name)
        return column.expression or column.kind
