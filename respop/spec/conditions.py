"""Stratum conditions: small boolean expressions on features, parsed once, compiled per engine.

``"disease_stays_12m >= 2 or (ckd and age >= 80)"`` is parsed with Python's own parser (``ast``,
``mode="eval"``) into a tiny tree of :class:`Node` objects; only comparisons, ``and``, ``or``,
``not``, parentheses, numbers, ``true``/``false`` and feature names are accepted. The tree is
engine-neutral (this module imports no engine): ``respop.strata.conditions.to_polars`` compiles it
to a polars expression, ``respop.spark.conditions.to_spark`` to a Spark column, with the same
semantics.

A condition nests at most :data:`MAX_DEPTH` levels (:func:`nesting`, measured on the text before
Python's parser sees it, without recursion): the parser, the tree and both compilers recurse once
per level, and a condition thousands of ``not`` deep would otherwise end in a ``RecursionError``.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
OPERATORS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
COMPARISONS = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
"""Each comparison of the language as a function of two operands (polars expressions, Spark columns)."""


MAX_DEPTH = 50
"""The deepest nesting a condition may have: each parenthesis open and each ``not`` (or sign) in
force at a point of the text counts one level (:func:`nesting`). The shipped conditions nest 2."""

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9_.eE]*|\S")
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
_SIGNS = frozenset("-+~")


class ConditionError(ValueError):
    """A condition that is not valid (the message says why)."""


class ConditionTooDeep(ConditionError):
    """A condition that nests more than :data:`MAX_DEPTH` levels; ``reason`` says so without
    quoting the condition."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def nesting(text: str) -> int:
    """How deep ``text`` nests: the most parentheses open plus ``not`` and signs in force at one
    point. A loop over the tokens (no recursion, no parser): safe on any text.

    A ``not`` or a sign stays in force until the ``and`` / ``or`` that ends its operand or the
    parenthesis that closes around it: ``not not (a and not b)`` nests 4, ``not a and not b`` 1.
    """
    pending = [0]  # per open parenthesis (and the top level): not / signs in force there
    depth = deepest = 0
    previous = None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in _OPEN:
            pending.append(0)
            depth += 1
        elif token in _CLOSE:
            if len(pending) > 1:
                depth -= 1 + pending.pop()
        elif token == "not" and previous != "is":  # ``is not`` compares, ``not in`` is rejected later
            pending[-1] += 1
            depth += 1
        elif token in _SIGNS and not _is_operand(previous):
            pending[-1] += 1
            depth += 1
        elif token in ("and", "or"):
            depth -= pending[-1]
            pending[-1] = 0
        deepest = max(deepest, depth)
        previous = token
    return deepest


def _is_operand(token: str | None) -> bool:
    """Whether a token ends an operand (then a following ``-`` or ``+`` is binary, not a sign)."""
    if token is None or token in ("and", "or", "not", "is", "in"):
        return False
    return token in _CLOSE or token[0].isalnum() or token[0] == "_"


def _shown(source: str) -> str:
    """A condition as quoted in a message: long ones cut in the middle."""
    return repr(source) if len(source) <= 120 else repr(f"{source[:60]} … {source[-40:]}") + f" ({len(source):,} characters)"


def _too_deep(source: str, depth: int | None = None) -> ConditionTooDeep:
    levels = f"{depth} levels" if depth is not None else "too many levels"
    reason = (
        f"the condition nests too deeply ({levels} of parentheses and not; at most {MAX_DEPTH}): "
        "write it flatter ('not not x' is 'x')"
    )
    return ConditionTooDeep(f"{reason}, in {_shown(source)}", reason)


@dataclass(frozen=True)
class Node:
    """``op`` is one of: and, or, not, cmp, feature, const. ``args`` are child nodes; for ``cmp``,
    ``args`` = (left, right) and ``value`` the operator; for ``feature`` / ``const``, ``value``."""

    op: str
    args: tuple[Node, ...] = ()
    value: object = None

    def features(self) -> set[str]:
        if self.op == "feature":
            return {str(self.value)}
        out: set[str] = set()
        for a in self.args:
            out |= a.features()
        return out


def parse(text: str) -> Node:
    """Parse a condition; :class:`ConditionError` on anything outside the small language."""
    if not text or not text.strip():
        raise ConditionError("empty condition")
    source = " ".join(text.split())
    depth = nesting(source)
    if depth > MAX_DEPTH:
        raise _too_deep(source, depth)
    # true/false in lower case, as TOML and clinicians write them
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid condition: {exc.msg} in {_shown(source)}") from None
    except (RecursionError, MemoryError):  # a deep chain nesting() does not count (a.b.b…, a+a+…)
        raise _too_deep(source) from None
    try:
        return _convert(tree.body, source)
    except RecursionError:
        raise _too_deep(source) from None


def _convert(node: ast.AST, source: str) -> Node:
    if isinstance(node, ast.BoolOp):
        op = "and" if isinstance(node.op, ast.And) else "or"
        return Node(op, tuple(_convert(v, source) for v in node.values))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Node("not", (_convert(node.operand, source),))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Node("const", value=-value)
    if isinstance(node, ast.Compare):
        parts = [node.left, *node.comparators]
        pairs = []
        for left, op, right in zip(parts, node.ops, parts[1:], strict=False):
            if type(op) not in OPERATORS:
                raise ConditionError(f"operator not allowed in {_shown(source)}: use >, >=, <, <=, == or !=")
            pairs.append(Node("cmp", (_convert(left, source), _convert(right, source)), OPERATORS[type(op)]))
        return pairs[0] if len(pairs) == 1 else Node("and", tuple(pairs))
    if isinstance(node, ast.Name):
        if node.id in ("true", "True"):
            return Node("const", value=True)
        if node.id in ("false", "False"):
            return Node("const", value=False)
        return Node("feature", value=node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float)):
        return Node("const", value=node.value)
    raise ConditionError(
        f"{_shown(ast.unparse(node))} is not allowed in {_shown(source)}: write comparisons of features with numbers, "
        "joined by and / or / not"
    )


def check(node: Node, known: set[str]) -> None:
    """Every feature named must be known."""
    unknown = sorted(node.features() - known)
    if unknown:
        raise ConditionError(f"unknown feature(s) {unknown}; known: {sorted(known)}")
