"""Safe evaluation of `concurrency="cores*4"` style expressions, without `eval`.

Grammar (a tiny recursive-descent parser over a hand-written tokenizer)::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/" | "//") unary)*
    unary  := ("+" | "-") unary | atom
    atom   := NUMBER | "cores" | "(" expr ")"

NUMBER is digits with an optional fraction (`2`, `0.5`); no exponents. The result is rounded down to an int.
Anything else (names, calls, attributes, `**`, exponents, over-long or over-deep input, huge values) raises
`WakaQError` naming the expression and the offending token.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from wakaq.constants import EXPR_MAX_DEPTH, EXPR_MAX_LENGTH, EXPR_MAX_VALUE
from wakaq.exceptions import WakaQError

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?(?![\w.]))|(?P<op>//|\*\*|[-+*/()])|(?P<name>cores\b)|(?P<bad>\S+))")


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "op", "name" or "end"
    text: str


def cpu_cores() -> int:
    """Number of processors (the `cores` variable); at least 1."""
    return os.cpu_count() or 1


def eval_expr(expr: str | int, cores: int | None = None) -> int:
    """Evaluate an int or a concurrency expression to an int (rounded down)."""
    if isinstance(expr, bool) or not isinstance(expr, int | str):
        raise WakaQError(f"invalid expression {expr!r}: expected an int or a str like 'cores*4'")
    if isinstance(expr, int):
        return expr
    if len(expr) > EXPR_MAX_LENGTH:
        raise WakaQError(f"invalid expression {expr[:40]!r}...: longer than {EXPR_MAX_LENGTH} characters")
    parser = _Parser(expr, cpu_cores() if cores is None else cores)
    return math.floor(parser.parse())


def _tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup
        if kind is None:  # trailing whitespace
            continue
        text = match.group(kind)
        if kind == "bad":
            raise WakaQError(f"invalid expression {expr!r}: unexpected {_first_token(text)!r}")
        tokens.append(_Token(kind, text))
    tokens.append(_Token("end", ""))
    return tokens


def _first_token(text: str) -> str:
    """The offending word of a bad chunk: `__import__('os')` -> `__import__`."""
    match = re.match(r"[\w.]+|\*\*|.", text)
    return match.group(0) if match else text


class _Parser:
    def __init__(self, expr: str, cores: int) -> None:
        self.expr = expr
        self.cores = cores
        self.tokens = _tokenize(expr)
        self.pos = 0
        self.depth = 0

    def parse(self) -> float:
        value = self._expr()
        if self._peek().kind != "end":
            self._fail(f"unexpected {self._peek().text!r}")
        return value

    def _peek(self) -> _Token:
        return self.tokens[self.pos]

    def _next(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _fail(self, why: str) -> None:
        raise WakaQError(f"invalid expression {self.expr!r}: {why}")

    def _expr(self) -> float:
        value = self._term()
        while self._peek().text in ("+", "-"):
            op = self._next().text
            value = self._checked(value + self._term() if op == "+" else value - self._term())
        return value

    def _term(self) -> float:
        value = self._unary()
        while self._peek().text in ("*", "/", "//"):
            op = self._next().text
            value = self._checked(self._apply(op, value, self._unary()))
        return value

    def _apply(self, op: str, left: float, right: float) -> float:
        if op == "*":
            return left * right
        if right == 0:
            self._fail("division by zero")
        return left / right if op == "/" else left // right

    def _unary(self) -> float:
        if self._peek().text in ("+", "-"):
            op = self._next().text
            value = self._nested(self._unary)
            return -value if op == "-" else value
        return self._atom()

    def _atom(self) -> float:
        token = self._next()
        if token.kind == "num":
            return self._checked(float(token.text) if "." in token.text else int(token.text))
        if token.kind == "name":
            return self.cores
        if token.text == "(":
            value = self._nested(self._expr)
            if self._next().text != ")":
                self._fail("missing ')'")
            return value
        self._fail(f"unexpected {token.text!r}" if token.text else "unexpected end")
        raise AssertionError("unreachable")

    def _nested(self, rule: Callable[[], float]) -> float:
        # WARN: without a depth bound `((((...` or `----...` would exhaust the recursion limit.
        self.depth += 1
        if self.depth > EXPR_MAX_DEPTH:
            self._fail(f"nested deeper than {EXPR_MAX_DEPTH}")
        try:
            return rule()
        finally:
            self.depth -= 1

    def _checked(self, value: float) -> float:
        if not math.isfinite(value) or abs(value) > EXPR_MAX_VALUE:
            self._fail(f"value {value} is out of range (max {EXPR_MAX_VALUE})")
        return value
