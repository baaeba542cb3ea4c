"""The polars compiler of the strata conditions (the parsed tree: :mod:`respop.spec.conditions`)."""

from __future__ import annotations

import polars as pl

from respop.spec.conditions import COMPARISONS, Node


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
