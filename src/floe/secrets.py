"""Secret references: how ``secret('NAME')`` travels from floe.yaml to the runtime.

The compiler never reads a secret.  ``{{ secret('PG_PASSWORD') }}`` compiles to the token
``${secret:PG_PASSWORD}`` inside the string it appeared in; the runtime replaces tokens with the
environment variable of that name right before handing config to dlt/pyiceberg, and never logs
the result.  This module is shared by both halves, so it imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingSecretError(KeyError):
    """A ``secret()`` reference whose environment variable is not set at run time."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (f"secret '{self.name}' is not set: export the environment variable {self.name} "
                "before running (its value is never stored by floe)")


def secret_ref(name: str) -> str:
    """The token that stands for a secret in compiled artifacts."""
    if not SECRET_NAME.match(name):
        raise ValueError(f"secret name {name!r} must be an environment variable name "
                         "(letters, digits, underscores)")
    return "${secret:" + name + "}"


def has_secret_ref(value: str) -> bool:
    return _TOKEN.search(value) is not None


def secret_names(value: Any) -> set[str]:
    """Every secret referenced anywhere inside ``value`` (nested dicts/lists included)."""
    if isinstance(value, str):
        return set(_TOKEN.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(secret_names(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(secret_names(v) for v in value)) if value else set()
    return set()


def resolve_secrets(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace every token in ``value`` by its environment variable; raises MissingSecretError."""
    if isinstance(value, str):
        def _lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise MissingSecretError(name)
            return environ[name]

        return _TOKEN.sub(_lookup, value)
    if isinstance(value, Mapping):
        return {k: resolve_secrets(v, environ) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_secrets(v, environ) for v in value]
    return value
