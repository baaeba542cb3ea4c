"""The Spark target of the case-finding specs: the same parsed spec compiled to PySpark.

Mirrors :mod:`respop.case_finding.engine` (the polars target) function by function, with the
semantics of docs/case_finding.md; the rules themselves exist only in ``algorithms/*.toml``.
Inputs are Spark frames of the canonical stays and diagnoses (respop.pmsi's staged tables, read
from Parquet); outputs have the columns and types of the polars target, so the two engines'
results compare row for row (tests/spark/).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from respop.case_finding.engine import ORDER_DAYS
from respop.case_finding.spec import AlgorithmSpec, Criterion, prefixes_by_length


# --- compiling criteria ----------------------------------------------------------------------


def prefix_match(code: Column, prefixes: Iterable[str]) -> Column:
    """``code`` starts with one of ``prefixes`` (null codes: false)."""
    groups = prefixes_by_length(prefixes)
    if not groups:
        return F.lit(False)
    out = None
    for n, ps in groups:
        part = F.substring(code, 1, n).isin(ps)
        out = part if out is None else (out | part)
    return F.coalesce(out, F.lit(False))


def criterion_expr(criterion: Criterion) -> Column:
    """A diagnosis row (code, position) satisfies the criterion."""
    code = F.col("code")
    expr = F.col("position").cast("string").isin(list(criterion.positions)) & prefix_match(code, criterion.codes)
    if criterion.exclude:
        expr = expr & ~prefix_match(code, criterion.exclude)
    return F.coalesce(expr, F.lit(False))


def _flag(i: int) -> str:
    return f"_c{i}"


def _all(columns: list[Column]) -> Column:
    out = columns[0]
    for c in columns[1:]:
        out = out & c
    return out


def _any(columns: list[Column]) -> Column:
    out = columns[0]
    for c in columns[1:]:
        out = out | c
    return out


def stay_flags(spec: AlgorithmSpec, diagnoses: DataFrame) -> DataFrame:
    """One row per stay with at least one diagnosis the spec looks at: a boolean per criterion."""
    criteria = spec.criteria
    every_prefix = sorted({p for c in criteria for p in c.codes})
    return (
        diagnoses.select("stay_id", "code", "position")
        .where(prefix_match(F.col("code"), every_prefix))
        .groupBy("stay_id")
        .agg(*[F.bool_or(criterion_expr(c)).alias(_flag(i)) for i, c in enumerate(criteria)])
    )


def order() -> Column:
    """``latest`` order of stays: exit date (days since 1970) × 10¹³ + stay id (as the polars target)."""
    days = F.datediff(F.col("exit_date"), F.lit("1970-01-01").cast("date")).cast("bigint")
    return days * F.lit(ORDER_DAYS) + F.col("stay_id")


def stays_only(stays: DataFrame) -> DataFrame:
    """The stays without séances."""
    if "is_session" in stays.columns:
        return stays.where(~F.coalesce(F.col("is_session"), F.lit(False)))
    return stays


def qualifying_stays(spec: AlgorithmSpec, stays: DataFrame, diagnoses: DataFrame) -> DataFrame:
    """The stays that qualify, with a boolean per branch (``_b<j>``) and per code sub-type (``_t<k>``)."""
    flag = lambda c: F.col(_flag(spec.criterion_index(c)))  # noqa: E731
    branches = []
    for b in spec.branches:
        expr = _all([flag(c) for c in b.all])
        if b.unless:
            expr = expr & ~_any([flag(c) for c in b.unless])
        branches.append(expr)
    qualifies = _any(branches)
    exclusions = [flag(Criterion(codes=e.codes, exclude=e.exclude, positions=e.positions)) for e in spec.exclude_stays]
    if exclusions:
        qualifies = qualifies & ~_any(exclusions)
    age = F.col("age")
    in_population = F.col("patient_key").isNotNull() & F.col("exit_date").isNotNull()
    if spec.population.min_age is not None:
        in_population = in_population & (age >= spec.population.min_age)
    if spec.population.max_age is not None:
        in_population = in_population & (age <= spec.population.max_age)
    base = stays.select("stay_id", "patient_key", "exit_date", "age", "sex").where(F.coalesce(in_population, F.lit(False)))
    return (
        base.join(stay_flags(spec, diagnoses), on="stay_id", how="inner")
        .where(qualifies)
        .select(
            "stay_id",
            "patient_key",
            "exit_date",
            F.year("exit_date").cast("smallint").alias("year"),
            "age",
            "sex",
            order().alias("_order"),
            *[e.alias(f"_b{j}") for j, e in enumerate(branches)],
            *[flag(c).alias(f"_t{k}") for k, (_, c) in enumerate(spec.subtype_criteria())],
        )
    )


def deaths(stays: DataFrame) -> DataFrame:
    """Year of the first in-hospital death recorded for each patient (``_death_year``)."""
    return (
        stays.where(F.col("died") & F.col("patient_key").isNotNull() & F.col("exit_date").isNotNull())
        .groupBy("patient_key")
        .agg(F.min(F.year("exit_date")).cast("smallint").alias("_death_year"))
    )
