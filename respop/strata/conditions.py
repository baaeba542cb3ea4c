"""Stratum conditions: small boolean expressions on features, parsed once, compiled per engine.

``"disease_stays_12m >= 2 or (ckd and age >= 80)"`` is parsed with Python's own parser (``ast``,
``mode="eval"``) into a tiny tree of :class:`Node` objects; only comparisons, ``and``, ``or``,
``not``, parentheses, numbers, ``true``/``false`` and feature names are accepted. The tree is
engine-neutral: :func:`to_polars` compiles it to a polars expression, :func:`to_spark` to a
Spark column (respop.spark.strata), with the same semantics.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from pyspark.sql import Column

OPERATORS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
COMPARISONS = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
"""Each comparison of the language as a function of two operands (polars expressions, Spark columns)."""


class ConditionError(ValueError):
    """A condition that is not valid (the message says why)."""


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
    # true/false in lower case, as TOML and clinicians write them
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid condition: {exc.msg} in {source!r}") from None
    return _convert(tree.body, source)


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
                raise ConditionError(f"operator not allowed in {source!r}: use >, >=, <, <=, == or !=")
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
        f"{ast.unparse(node)!r} is not allowed in {source!r}: write comparisons of features with numbers, "
        "joined by and / or / not"
    )


def check(node: Node, known: set[str]) -> None:
    """Every feature named must be known."""
    unknown = sorted(node.features() - known)
    if unknown:
        raise ConditionError(f"unknown feature(s) {unknown}; known: {sorted(known)}")


def to_polars(node: Node) -> pl.Expr:
    """The condition as a polars boolean expression (nulls count as false)."""
    return _polars(node).fill_null(False)


def _polars(node: Node) -> pl.Expr:
    if node.op == "feature":
        return pl.col(str(node.value))
    if node.op == "const":
        return pl.lit(node.value)
    if node.op == "not":
        return ~_polars(node.args[0]).fill_null(False)
    if node.op in ("and", "or"):
        exprs = [_polars(a).fill_null(False) for a in node.args]
        return pl.all_horizontal(exprs) if node.op == "and" else pl.any_horizontal(exprs)
    left, right = (_polars(a) for a in node.args)
    return COMPARISONS[str(node.value)](left, right)


def to_spark(node: Node) -> Column:
    """The condition as a Spark boolean column (nulls count as false, as in :func:`to_polars`).
    pyspark is imported here only: this module imports without it."""
    from pyspark.sql import functions as F

    return F.coalesce(_spark(node), F.lit(False))


def _spark(node: Node) -> Column:
    from pyspark.sql import functions as F

    if node.op == "feature":
        return F.col(str(node.value))
    if node.op == "const":
        return F.lit(node.value)
    if node.op == "not":
        return ~F.coalesce(_spark(node.args[0]), F.lit(False))
    if node.op in ("and", "or"):
        columns = [F.coalesce(_spark(a), F.lit(False)) for a in node.args]
        out = columns[0]
        for c in columns[1:]:
            out = (out & c) if node.op == "and" else (out | c)
        return out
    # compared as numbers, as polars does (a boolean feature is 0/1: ``ckd == 1`` holds when ckd
    # does); Spark's ANSI mode would otherwise refuse a boolean beside a number
    left, right = (_spark(a).cast("double") for a in node.args)
    return COMPARISONS[str(node.value)](left, right)
