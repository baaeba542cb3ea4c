"""The Spark compiler of the strata conditions (the parsed tree: :mod:`respop.spec.conditions`),
with the semantics of the polars one (:func:`respop.strata.conditions.to_polars`)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from respop.spec.conditions import COMPARISONS, Node


def to_spark(node: Node) -> Column:
    """The condition as a Spark boolean column (nulls count as false, as in polars)."""
    return _is_true(_spark(node))


def _is_true(column: Column) -> Column:
    """True where ``column`` is true, false where it is false or null. ``<=> true`` rather than
    ``coalesce(column, false)``: Spark's optimizer takes exponential time on nested coalesces (a
    20-deep ``not`` took 7 s to plan, each level doubling it); the null-safe equality stays linear."""
    return column.eqNullSafe(F.lit(True))


def _spark(node: Node) -> Column:
    if node.op == "feature":
        return F.col(str(node.value))
    if node.op == "const":
        return F.lit(node.value)
    if node.op == "not":
        return ~_is_true(_spark(node.args[0]))
    if node.op in ("and", "or"):
        columns = [_is_true(_spark(a)) for a in node.args]
        out = columns[0]
        for c in columns[1:]:
            out = (out & c) if node.op == "and" else (out | c)
        return out
    # compared as numbers, as polars does (a boolean feature is 0/1: ``ckd == 1`` holds when ckd
    # does); Spark's ANSI mode would otherwise refuse a boolean beside a number
    left, right = (_spark(a).cast("double") for a in node.args)
    return COMPARISONS[str(node.value)](left, right)
