"""floe.yaml's SQL expressions (``transform.columns`` and ``transform.where``): parsed by floe,
checked against an allowlist, and printed back as the SQL the run-time engine executes.

Why floe parses them itself: floe.yaml authors are not trusted with the machine that runs the
load, so an expression may only be what this grammar can say: columns, literals, operators,
``CASE``, casts and calls of the scalar functions in ``FUNCTIONS``.  There is no way to write a
subquery, a table function, a file or network read, or an environment lookup, and the engine
only ever receives SQL printed from the parsed tree (every operation parenthesized, every column
quoted), never the text as written.  The compiler and the runtime share this module (like
``floe.secrets``), and it imports nothing: sqlglot parses the same expressions, but importing
it costs ~0.2 s, as long as a whole ``floe compile`` of 100 sources (bench/transforms.py).

The grammar is PostgreSQL's/DuckDB's for scalar expressions, with their precedence:
``OR`` < ``AND`` < ``NOT`` < comparisons, ``IS``, ``IN``, ``BETWEEN``, ``LIKE`` < ``||`` <
``+ -`` < ``* / %`` < unary minus < ``::``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

FUNCTIONS = frozenset({
    # strings
    "lower", "upper", "trim", "ltrim", "rtrim", "length", "char_length", "substr",
    "substring", "left", "right", "concat", "concat_ws", "replace", "lpad", "rpad",
    "split_part", "strpos", "instr", "starts_with", "ends_with", "contains",
    "regexp_replace", "regexp_matches", "regexp_extract", "reverse", "strip_accents",
    "md5", "sha256",
    # numbers
    "abs", "round", "floor", "ceil", "ceiling", "sqrt", "cbrt", "power", "pow", "ln", "log",
    "log2", "log10", "exp", "sign", "mod", "greatest", "least", "trunc",
    # dates and times
    "date_trunc", "date_part", "datepart", "year", "month", "day", "hour", "minute", "second",
    "quarter", "week", "dayofweek", "dayofyear", "epoch", "epoch_ms", "strftime", "strptime",
    "make_date", "make_timestamp", "date_diff", "datediff", "last_day", "to_timestamp",
    # nulls and conditions
    "coalesce", "nullif", "ifnull", "if",
})
"""Deterministic scalar functions (a re-run lands the same values): no clock, no randomness,
nothing that reads files, the network, settings or the environment."""

_TYPES = {
    "varchar": "VARCHAR", "text": "VARCHAR", "string": "VARCHAR", "char": "VARCHAR",
    "integer": "INTEGER", "int": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT",
    "tinyint": "TINYINT", "hugeint": "HUGEINT", "double": "DOUBLE", "float": "FLOAT",
    "real": "FLOAT", "boolean": "BOOLEAN", "bool": "BOOLEAN", "date": "DATE",
    "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ", "time": "TIME",
    "decimal": "DECIMAL", "numeric": "DECIMAL", "blob": "BLOB", "uuid": "UUID",
}
_TYPED_LITERALS = {"date": "DATE", "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ",
                   "time": "TIME", "interval": "INTERVAL"}
_KEYWORDS = frozenset({
    "and", "or", "not", "is", "null", "true", "false", "in", "between", "like", "ilike", "case",
    "when", "then", "else", "end", "cast", "try_cast", "as", "select", "from", "distinct",
})
_COMPARISONS = {"=": "=", "==": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">",
                ">=": ">="}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op>\|\||::|<=|>=|<>|!=|==|[-+*/%=<>(),.;\[\]])
""", re.VERBOSE)


class ExpressionError(ValueError):
    """What is wrong and where: ``offset`` counts characters into the expression as written."""

    def __init__(self, message: str, offset: int, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.offset, self.hint = message, offset, hint


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, quoted, name, op, end
    text: str
    at: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "name" else ""


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            what = text[at]
            if what in "'\"":
                raise ExpressionError(f"unclosed quote {what}", at)
            raise ExpressionError(f"unexpected character {what!r}", at)
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(_Token(kind, match.group(), at))
        at = match.end()
    found.append(_Token("end", "", len(text)))
    return found


# The parsed tree: each node prints itself as SQL, with column names passed through ``name``.
Namer = Callable[[str], str]


class Node:
    at: int = 0

    def sql(self, name: Namer) -> str:
        raise NotImplementedError

    def columns(self) -> list[str]:
        return []


def quote(column: str) -> str:
    """A column name as a SQL identifier."""
    return '"' + column.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column(Node):
    name: str
    at: int = 0

    def sql(self, name: Namer) -> str:
        return quote(name(self.name))

    def columns(self) -> list[str]:
        return [self.name]


@dataclass(frozen=True)
class Literal(Node):
    text: str  # already SQL: a number, a quoted string, NULL, TRUE, DATE '...'
    at: int = 0

    def sql(self, name: Namer) -> str:
        return self.text


@dataclass(frozen=True)
class Apply(Node):
    """Everything else: a template filled with its parts' SQL (``({0} + {1})``, ``lower({0})``)."""

    template: str
    parts: tuple[Node, ...]
    at: int = 0

    def sql(self, name: Namer) -> str:
        return self.template.format(*(part.sql(name) for part in self.parts))

    def columns(self) -> list[str]:
        return [c for part in self.parts for c in part.columns()]


@dataclass(frozen=True)
class Expression:
    """One parsed expression: its text as written, its tree, the columns it reads."""

    text: str
    tree: Node

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.tree.columns()))

    def sql(self, name: Namer = str) -> str:
        return self.tree.sql(name)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expression:
    """Parse one expression; raises ``ExpressionError`` at the first problem.  (Cached: a
    compile checks each expression, then builds it; the trees are immutable.)"""
    parser = _Parser(text, _tokens(text))
    tree = parser.expression(0)
    token = parser.peek()
    if token.kind != "end":
        raise ExpressionError(_unexpected(token), token.at,
                              "one expression only (an operator may be missing)"
                              if token.text != ";" else "one expression only")
    return Expression(text, tree)


def _unexpected(token: _Token) -> str:
    return "unexpected end of expression" if token.kind == "end" \
        else f"unexpected {token.text!r}"


def _mark(index: int) -> str:
    """Where an ``Apply`` template takes its ``index``-th part."""
    return "{" + str(index) + "}"


_INFIX = {"or": 1, "and": 2, "=": 4, "==": 4, "<>": 4, "!=": 4, "<": 4, "<=": 4, ">": 4,
          ">=": 4, "is": 4, "in": 4, "between": 4, "like": 4, "ilike": 4, "not": 4,
          "||": 5, "+": 6, "-": 6, "*": 7, "/": 7, "%": 7, "::": 9}


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text, self.tokens, self.at = text, tokens, 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.at += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.take()
        if token.text.lower() != text:
            raise ExpressionError(f"expected {text.upper() if text.isalpha() else repr(text)}"
                                  f", found {_unexpected(token).removeprefix('unexpected ')}",
                                  token.at)
        return token

    def _infix_power(self, token: _Token) -> int:
        key = token.word or (token.text if token.kind == "op" else "")
        if key == "not":  # NOT IN / NOT BETWEEN / NOT LIKE after an operand
            following = self.peek(1).word
            return 4 if following in ("in", "between", "like", "ilike") else 0
        return _INFIX.get(key, 0)

    def expression(self, power: int) -> Node:
        left = self.prefix()
        while True:
            token = self.peek()
            bound = self._infix_power(token)
            if bound <= power:
                return left
            left = self.infix(left, bound)

    def infix(self, left: Node, bound: int) -> Node:
        token = self.take()
        word = token.word or token.text
        if word == "::":
            return Apply("CAST({0} AS " + self.type_name() + ")", (left,), token.at)
        if word == "is":
            negated = self.peek().word == "not"
            if negated:
                self.take()
            value = self.take()
            if value.word not in ("null", "true", "false"):
                raise ExpressionError("IS takes NULL, TRUE or FALSE", value.at)
            return Apply("({0} IS " + ("NOT " if negated else "") + value.word.upper() + ")",
                         (left,), token.at)
        negated = word == "not"
        if negated:
            word = self.take().word
        prefix = "NOT " if negated else ""
        if word == "in":
            self.expect("(")
            if self.peek().word == "select":
                raise ExpressionError("subqueries are not allowed", self.peek().at)
            items = self.items()
            marks = ", ".join(_mark(i + 1) for i in range(len(items)))
            return Apply("({0} " + prefix + "IN (" + marks + "))", (left, *items), token.at)
        if word == "between":
            low = self.expression(5)
            self.expect("and")
            high = self.expression(5)
            return Apply("({0} " + prefix + "BETWEEN {1} AND {2})", (left, low, high), token.at)
        if word in ("like", "ilike"):
            pattern = self.expression(bound)
            return Apply("({0} " + prefix + word.upper() + " {1})", (left, pattern), token.at)
        right = self.expression(bound)
        operator = _COMPARISONS.get(word, word.upper())
        return Apply("({0} " + operator + " {1})", (left, right), token.at)

    def items(self) -> tuple[Node, ...]:
        """A comma-separated list up to and including ``)``."""
        found = [self.expression(0)]
        while self.peek().text == ",":
            self.take()
            found.append(self.expression(0))
        self.expect(")")
        return tuple(found)

    def type_name(self) -> str:
        token = self.take()
        kind = _TYPES.get(token.word) if token.kind == "name" else None
        if kind is None:
            raise ExpressionError(f"unknown type {token.text or 'at the end'!r}", token.at,
                                  "use one of " + ", ".join(sorted(set(_TYPES.values()))))
        if self.peek().text == "(" and kind in ("DECIMAL", "VARCHAR"):
            self.take()
            sizes = [self.take()]
            while self.peek().text == ",":
                self.take()
                sizes.append(self.take())
            self.expect(")")
            if any(size.kind != "number" or not size.text.isdigit() for size in sizes):
                raise ExpressionError("a type's size is a whole number", token.at)
            kind += "(" + ", ".join(size.text for size in sizes) + ")"
        return kind

    def prefix(self) -> Node:
        token = self.take()
        word = token.word
        if token.kind == "number":
            return Literal(token.text, token.at)
        if token.kind == "string":
            return Literal(token.text, token.at)
        if token.kind == "quoted":
            return self.column(token.text[1:-1].replace('""', '"'), token)
        if token.text in ("-", "+"):
            return Apply("(" + token.text + "{0})", (self.expression(8),), token.at)
        if token.text == "(":
            if self.peek().word == "select":
                raise ExpressionError("subqueries are not allowed", self.peek().at,
                                      "an expression reads the columns of its own row")
            inner = self.expression(0)
            self.expect(")")
            return inner
        if token.kind != "name":
            raise ExpressionError(_unexpected(token), token.at)
        if word == "not":
            return Apply("(NOT {0})", (self.expression(3),), token.at)
        if word in ("null", "true", "false"):
            return Literal(word.upper(), token.at)
        if word == "case":
            return self.case(token)
        if word in ("cast", "try_cast"):
            self.expect("(")
            value = self.expression(0)
            self.expect("as")
            kind = self.type_name()
            self.expect(")")
            return Apply(word.upper() + "({0} AS " + kind + ")", (value,), token.at)
        if word == "select":
            raise ExpressionError("subqueries are not allowed", token.at,
                                  "an expression reads the columns of its own row")
        if word in _TYPED_LITERALS and self.peek().kind == "string":
            return Literal(_TYPED_LITERALS[word] + " " + self.take().text, token.at)
        if self.peek().text == "(":
            return self.call(token)
        if word in _KEYWORDS:
            raise ExpressionError(_unexpected(token), token.at)
        return self.column(token.text, token)

    def column(self, name: str, token: _Token) -> Node:
        if self.peek().text == ".":
            raise ExpressionError("qualified names are not allowed", self.peek().at,
                                  f"name the column alone: {name!r} is not a table here")
        if self.peek().text == "[":
            raise ExpressionError("subscripts are not allowed", self.peek().at)
        return Column(name, token.at)

    def call(self, token: _Token) -> Node:
        name = token.text.lower()
        if name not in FUNCTIONS:
            raise ExpressionError(
                f"function {token.text}() is not allowed in floe.yaml expressions", token.at,
                "floe allows deterministic scalar functions only (strings, numbers, dates, "
                "coalesce...); nothing that reads files, the network or the environment")
        self.expect("(")
        if self.peek().text == ")":
            self.take()
            return Apply(name + "()", (), token.at)
        if self.peek().word in ("select", "distinct") or self.peek().text == "*":
            raise ExpressionError(f"{name}() takes values of the row", self.peek().at)
        args = self.items()
        marks = ", ".join(_mark(i) for i in range(len(args)))
        return Apply(name + "(" + marks + ")", args, token.at)

    def case(self, token: _Token) -> Node:
        parts: list[Node] = []
        template = "CASE"
        if self.peek().word != "when":
            parts.append(self.expression(0))
            template += " {0}"
        while self.peek().word == "when":
            self.take()
            parts.append(self.expression(0))
            self.expect("then")
            parts.append(self.expression(0))
            template += f" WHEN {_mark(len(parts) - 2)} THEN {_mark(len(parts) - 1)}"
        if len(parts) < 2:
            raise ExpressionError("CASE needs at least one WHEN ... THEN", self.peek().at)
        if self.peek().word == "else":
            self.take()
            parts.append(self.expression(0))
            template += f" ELSE {_mark(len(parts) - 1)}"
        self.expect("end")
        return Apply(template + " END", tuple(parts), token.at)


_MASK_PART = re.compile(r"\{\s*(first|last)\s+(\d+)\s*\}|\{[^}]*\}?")


def parse_mask(pattern: str) -> list[str | tuple[str, int]]:
    """``'****{last 4}'`` -> ``['****', ('last', 4)]``: literal text and kept characters."""
    parts: list[str | tuple[str, int]] = []
    at = 0
    for match in _MASK_PART.finditer(pattern):
        if match.group(1) is None:
            raise ExpressionError(f"{match.group()!r} is not a mask placeholder", match.start(),
                                  "use {first N} or {last N}, e.g. '****{last 4}'")
        if match.start() > at:
            parts.append(pattern[at:match.start()])
        parts.append((match.group(1), int(match.group(2))))
        at = match.end()
    if at < len(pattern):
        parts.append(pattern[at:])
    return parts


def mask_sql(pattern: str | None, column: str) -> str:
    """The SQL that masks ``column`` (null stays null)."""
    if pattern is None:
        return "CAST(NULL AS VARCHAR)"
    value = f"CAST({quote(column)} AS VARCHAR)"
    pieces = [("'" + part.replace("'", "''") + "'") if isinstance(part, str)
              else f"{'left' if part[0] == 'first' else 'right'}({value}, {part[1]})"
              for part in parse_mask(pattern)]
    text = " || ".join(pieces) if pieces else "''"
    return f"CASE WHEN {quote(column)} IS NULL THEN NULL ELSE {text} END"
