"""Stage 2, render: evaluate Jinja2 in every string value, in a sandbox.

Templates are rendered per YAML value (not over the whole file) so positions survive and a
template can never change the document's structure.  ``env_var()`` and ``var()`` resolve now;
``secret()`` becomes a reference token (see ``floe.secrets``) and is never read.  A value that
is exactly one expression keeps the expression's type, so ``chunk_size: "{{ var('n') }}"`` stays
an integer when ``n`` is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NoReturn

from floe.compiler.positions import SourceMap
from floe.errors import Diagnostic, KeyPath
from floe.secrets import SECRET_NAME, secret_ref

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

_MISSING: Any = object()


class TemplateFunctionError(Exception):
    """Raised inside a template by env_var/var/secret; becomes a located diagnostic."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@lru_cache(maxsize=1)
def sandbox() -> ImmutableSandboxedEnvironment:
    """One shared sandbox: templates are cached per source text across values and sources.
    (Jinja2 is imported here, on the first template, not by every ``floe compile``.)"""
    from floe.compiler.sandbox import new_sandbox

    return new_sandbox()


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    return sandbox().from_string(source)


def check_template_syntax(source: str) -> str | None:
    """A message if ``source`` is not valid Jinja2, else None (for runtime templates)."""
    from jinja2 import TemplateSyntaxError

    try:
        sandbox().parse(source)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    return None


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


@dataclass
class TemplateContext:
    """What templates can see; records which environment variables were read (for the hash)."""

    environ: Mapping[str, str]
    variables: Mapping[str, Any]
    env_vars_read: dict[str, str | None] = field(default_factory=dict)

    def env_var(self, name: str, default: Any = _MISSING) -> Any:
        if not isinstance(name, str):
            self._fail("env_var() needs the variable name as a string")
        value = self.environ.get(name)
        self.env_vars_read[name] = value
        if value is not None:
            return value
        if default is _MISSING:
            self._fail(f"environment variable '{name}' is not set and env_var() has no default",
                       f"export {name}=..., or write env_var('{name}', 'default')")
        return default

    def var(self, name: str, default: Any = _MISSING) -> Any:
        if name in self.variables:
            return self.variables[name]
        if default is _MISSING:
            known = ", ".join(sorted(self.variables)) or "none"
            self._fail(f"var '{name}' is not defined (defined vars: {known})",
                       f"add it under vars:, pass --vars '{{{name}: ...}}', "
                       f"or write var('{name}', 'default')")
        return default

    @staticmethod
    def secret(name: str) -> str:
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            TemplateContext._fail(
                f"secret({name!r}): the name must be an environment variable name",
                "letters, digits and underscores, e.g. secret('PG_PASSWORD')")
        return secret_ref(name)

    @staticmethod
    def _fail(message: str, hint: str = "") -> NoReturn:
        raise TemplateFunctionError(message, hint)

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"env_var": self.env_var, "var": self.var, "secret": self.secret}


def render_value(
    value: Any,
    path: KeyPath,
    context: TemplateContext,
    source_map: SourceMap,
    diagnostics: list[Diagnostic],
    *,
    skip: Callable[[KeyPath], bool] = lambda _: False,
) -> Any:
    """Render every template string inside ``value``; problems are appended to ``diagnostics``."""
    if isinstance(value, dict):
        return {k: render_value(v, (*path, k), context, source_map, diagnostics, skip=skip)
                for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, (*path, i), context, source_map, diagnostics, skip=skip)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or not is_template(value) or skip(path):
        return value
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError, TemplateError

    try:
        return _compile(value).render(context.functions())
    except TemplateFunctionError as exc:
        diagnostics.append(source_map.diagnostic(path, exc.message, exc.hint))
    except TemplateSyntaxError as exc:
        diagnostics.append(source_map.diagnostic(
            path, f"template syntax error: {exc.message}",
            "templates look like {{ env_var('NAME', 'default') }}"))
    except SecurityError as exc:
        diagnostics.append(source_map.diagnostic(
            path, f"unsafe template refused: {exc}",
            "templates may only call env_var(), var() and secret()"))
    except UndefinedError as exc:
        diagnostics.append(source_map.diagnostic(
            path, f"template error: {exc.message}",
            "templates know env_var(name, default), var(name, default) and secret(name)"))
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        diagnostics.append(source_map.diagnostic(path, f"template error: {exc}"))
    return value

