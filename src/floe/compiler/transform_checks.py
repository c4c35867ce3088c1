"""``transform:`` checked before anything runs: every expression parses and uses only allowed
functions (error at its line and column), a hash's salt is a secret, a mask's placeholders are
known, and nothing renames, drops or rewrites the primary key a merge and deletes match on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from floe.compiler.positions import SourceMap
from floe.errors import Diagnostic, KeyPath, format_key_path
from floe.expressions import ExpressionError, parse, parse_mask
from floe.secrets import has_secret_ref

_OWN_PREFIXES = ("_floe_", "_dlt_")


def _expression(text: Any, path: KeyPath, where: SourceMap) -> Iterator[Diagnostic]:
    if not isinstance(text, str):
        return
    try:
        parse(text)
    except ExpressionError as problem:
        line, column = where.locate_in(path, text, problem.offset)
        yield Diagnostic(where.file, line, column, format_key_path(path),
                         f"{problem.message} in {text!r}", problem.hint)


def _keys(source: dict[str, Any]) -> list[str]:
    key = source.get("primary_key")
    return [key] if isinstance(key, str) else [k for k in key or [] if isinstance(k, str)]


def check_transform(source: dict[str, Any], path: KeyPath, where: SourceMap
                    ) -> Iterator[Diagnostic]:
    transform = source.get("transform")
    if not isinstance(transform, dict):
        return
    keys = _keys(source)
    columns = transform.get("columns")
    columns = columns if isinstance(columns, dict) else {}
    for name, column in columns.items():
        yield from _check_column(str(name), column, (*path, "columns", name), keys, where)
    rename = transform.get("rename")
    rename = rename if isinstance(rename, dict) else {}
    drop = [d for d in transform.get("drop") or [] if isinstance(d, str)] \
        if isinstance(transform.get("drop"), list) else []
    targets: dict[str, str] = {}
    for old, new in rename.items():
        at = (*path, "rename", old)
        if old in keys:
            yield where.diagnostic(at, f"'{old}' is the primary key: renaming it would break "
                                   "matching rows and deletes", "keep the key's name", at_key=True)
        if old in drop:
            yield where.diagnostic(at, f"'{old}' is also dropped", "rename or drop it, not "
                                   "both", at_key=True)
        if isinstance(new, str):
            if new in targets:
                yield where.diagnostic(at, f"'{old}' and '{targets[new]}' are both renamed to "
                                       f"'{new}'")
            if new in columns:
                yield where.diagnostic(at, f"'{new}' is also a column of transform.columns")
            if new.startswith(_OWN_PREFIXES):
                yield where.diagnostic(at, f"'{new}' starts with a prefix floe keeps for its "
                                       "own columns")
            targets[new] = old
    for index, name in enumerate(drop):
        if name in keys:
            yield where.diagnostic((*path, "drop", index), f"'{name}' is the primary key: "
                                   "dropping it would break matching rows and deletes",
                                   "keep the key")
    yield from _expression(transform.get("where"), (*path, "where"), where)


_KINDS = ("expr", "hash", "mask")
_BELONGS = {"replace": "expr", "salt": "hash"}


def _check_shape(column: dict[str, Any], path: KeyPath, where: SourceMap
                 ) -> Iterator[Diagnostic]:
    """One kind per column, and each key with the kind it belongs to."""
    kinds = [k for k in _KINDS if k in column]
    if len(kinds) != 1:
        yield where.diagnostic(
            path, "a transform column has exactly one of expr, hash, mask"
            + (f" (it has {', '.join(kinds)})" if kinds else ""),
            "e.g. `{expr: \"upper(name)\"}`, `{hash: sha256, salt: ...}` or "
            "`{mask: \"****{last 4}\"}`", at_key=True)
        return
    for key, kind in _BELONGS.items():
        if key in column and kind not in column:
            yield where.diagnostic((*path, key), f"{key} applies to {kind}, not to "
                                   f"{kinds[0]}", f"remove {key}", at_key=True)
    if "column" in column and "expr" in column:
        yield where.diagnostic((*path, "column"), "column applies to hash and mask; an "
                               "expression names the columns it reads itself",
                               "remove column", at_key=True)
    if "hash" in column and "salt" not in column:
        yield where.diagnostic(path, "hash needs a salt",
                               "add `salt: \"{{ secret('PII_SALT') }}\"`", at_key=True)


def _check_column(name: str, column: Any, path: KeyPath, keys: list[str], where: SourceMap
                  ) -> Iterator[Diagnostic]:
    if name.startswith(_OWN_PREFIXES):
        yield where.diagnostic(path, f"'{name}' starts with a prefix floe keeps for its own "
                               "columns", at_key=True)
    if isinstance(column, str):
        yield from _expression(column, path, where)
        return
    if not isinstance(column, dict):
        return
    yield from _check_shape(column, path, where)
    if "expr" in column:
        yield from _expression(column["expr"], (*path, "expr"), where)
        if column.get("replace") is True and name in keys:
            yield where.diagnostic(
                (*path, "replace"), f"'{name}' is the primary key: rewriting it would break "
                "matching rows and deletes", "compute a new column instead", at_key=True)
        return
    replaces_key = column.get("column") in (None, name) and name in keys
    if "hash" in column:
        salt = column.get("salt")
        if isinstance(salt, str) and not has_secret_ref(salt):
            yield where.diagnostic(
                (*path, "salt"), "the salt is written literally: it would be stored in the "
                "artifact, and anyone who reads it can recompute every hash",
                "use `salt: \"{{ secret('PII_SALT') }}\"`")
        if replaces_key:
            yield where.diagnostic(path, f"'{name}' is the primary key: hashing it in place "
                                   "would break matching rows and deletes",
                                   f"hash it into a new column: `{name}_hash: {{hash: sha256, "
                                   f"column: {name}, salt: ...}}`", at_key=True)
    if "mask" in column:
        pattern = column.get("mask")
        if isinstance(pattern, str):
            try:
                parse_mask(pattern)
            except ExpressionError as problem:
                line, col = where.locate_in((*path, "mask"), pattern, problem.offset)
                yield Diagnostic(where.file, line, col, format_key_path((*path, "mask")),
                                 problem.message, problem.hint)
        if replaces_key:
            yield where.diagnostic(path, f"'{name}' is the primary key: masking it would "
                                   "break matching rows and deletes", at_key=True)
