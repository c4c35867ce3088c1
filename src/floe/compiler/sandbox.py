"""The Jinja2 sandbox floe.yaml templates render in: immutable, native types, bounded
``**`` and ``*`` (a template cannot build a gigabyte string).  Its own module so that Jinja2
is imported only when a file has a template."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

_JSON_SCALARS = (bool, int, float, type(None), list, dict)
_MAX_REPEAT = 100_000


def _native_concat(values: Iterable[Any]) -> Any:
    """Keep a lone expression's JSON type; join anything else as text (Undefined raises here)."""
    head = list(islice(values, 2))
    if len(head) == 1 and isinstance(head[0], _JSON_SCALARS):
        return head[0]
    return "".join(str(v) for v in chain(head, values))


class _SandboxedNativeEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus native types, with ``**`` and ``*`` bounded against bombs."""

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(_native_concat)
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large in template")
            return left**right
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list) and isinstance(count, int) and count > _MAX_REPEAT:
                    raise SecurityError("repetition too large in template")
            return left * right
        return super().call_binop(context, operator, left, right)


def new_sandbox() -> ImmutableSandboxedEnvironment:
    return _SandboxedNativeEnvironment(undefined=StrictUndefined, autoescape=False)
