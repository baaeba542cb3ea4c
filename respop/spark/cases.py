"""The Spark target of the case-finding specs: the same parsed spec compiled to PySpark.

Mirrors :mod:`respop.case_finding.engine` (the polars target) function by function, with the
semantics of docs/case_finding.md; the rules themselves exist only in ``algorithms/*.toml``.
Inputs are Spark frames of the canonical stays and diagnoses (respop.pmsi's staged tables, read
from Parquet); outputs have the columns and types of the polars target, so the two engines'
results compare row for row (tests/spark/).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from respop.case_finding.engine import CASE_SCHEMA, DEATHS_SCHEMA, ORDER_DAYS, RESIDENCE_SCHEMA
from respop.pmsi.quality import RESIDENCE_USED, STAY_COUNTED
from respop.spec.algorithm import AlgorithmSpec, Criterion, prefixes_by_length
from respop.spec.residence import check_residence
from respop.spark.frames import cast, from_polars, spark_type


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


def residence_stays(stays: DataFrame) -> DataFrame:
    """The stays whose residence is used (``residence_used``, when the frame has it), as
    respop.pmsi.quality.residence_stays."""
    if RESIDENCE_USED in stays.columns:
        return stays.where(F.coalesce(F.col(RESIDENCE_USED), F.lit(True)))
    return stays


def counted_stays(stays: DataFrame) -> DataFrame:
    """The stays counted as stays of their own (``stay_counted``, when the frame has it), as
    respop.pmsi.quality.counted_stays."""
    if STAY_COUNTED in stays.columns:
        return stays.where(F.coalesce(F.col(STAY_COUNTED), F.lit(True)))
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


# --- cases -----------------------------------------------------------------------------------


def death_dates(stays: DataFrame, known: DataFrame | None = None) -> DataFrame:
    """patient_key, death_date: the earliest death known of each patient, in hospital or, with
    ``known`` (patient_key, death_date: the SNDS referential), out of hospital."""
    died = stays.where(F.col("died") & F.col("patient_key").isNotNull() & F.col("exit_date").isNotNull()).select(
        "patient_key", F.col("exit_date").alias("death_date")
    )
    if known is not None:
        died = died.unionByName(cast(known, DEATHS_SCHEMA).where(F.col("death_date").isNotNull()))
    return died.groupBy("patient_key").agg(F.min("death_date").alias("death_date"))


def deaths(stays: DataFrame, known: DataFrame | None = None) -> DataFrame:
    """Year of the first death recorded for each patient (``_death_year``): in hospital, or (``known``:
    the referential's deaths) out of hospital."""
    return death_dates(stays, known).select("patient_key", F.year("death_date").cast("smallint").alias("_death_year"))


def seen(stays: DataFrame, index_years: list[int], years: int) -> DataFrame:
    """(patient_key, index_year) of the patients with a stay exiting in the index year or the
    ``years`` − 1 years before it (``cases.drop_unseen_years``)."""
    spark = stays.sparkSession
    offsets = spark.createDataFrame([(k,) for k in range(years)], "_offset smallint")
    wanted = spark.createDataFrame([(n,) for n in sorted(set(index_years))], "index_year smallint")
    per_year = (
        stays.where(F.col("patient_key").isNotNull() & F.col("exit_date").isNotNull())
        .select("patient_key", F.year("exit_date").cast("smallint").alias("year"))
        .distinct()
    )
    return (
        per_year.crossJoin(F.broadcast(offsets))
        .select("patient_key", (F.col("year") + F.col("_offset")).cast("smallint").alias("index_year"))
        .join(F.broadcast(wanted), on="index_year", how="left_semi")
        .distinct()
    )


def _windows(spark, index_years: list[int], lookback: int) -> DataFrame:
    """(index year, year) pairs of every window (a few rows, built on the driver from the years)."""
    rows = [(n, y) for n in sorted(set(index_years)) for y in range(n - lookback, n + 1)]
    return spark.createDataFrame(rows, "index_year smallint, year smallint")


def _greatest(columns: list[Column]) -> Column:
    """The greatest non-null value of ``columns`` (``F.greatest`` wants two columns or more)."""
    return columns[0] if len(columns) == 1 else F.greatest(*columns)


def find_cases(
    spec: AlgorithmSpec,
    stays: DataFrame,
    diagnoses: DataFrame,
    index_years: list[int],
    first_year: int | None = None,
    known_deaths: DataFrame | None = None,
    drop_unseen_years: int | None = None,
) -> DataFrame:
    """Cases of one disease for each index year (columns and types of :data:`CASE_SCHEMA`).
    ``known_deaths`` and ``drop_unseen_years``: as in :func:`respop.case_finding.engine.find_cases`.

    ``stays`` and ``diagnoses`` are the canonical frames of every year read (respop.pmsi);
    ``first_year`` is the first year the data cover (for ``complete_history``; by default the
    earliest exit year of ``stays``, the only value read on the driver).
    """
    if not index_years:
        raise ValueError("no index year")
    stays = stays_only(stays)
    if first_year is None:
        first_year = stays.select(F.min(F.year("exit_date"))).first()[0]
    lookback = spec.window.lookback_years
    n_subtypes = len(spec.subtype_criteria())
    n_branches = len(spec.branches)

    # only the stays of the windows are read (deaths look at every year before)
    in_windows = F.year("exit_date").between(min(index_years) - lookback, max(index_years))
    qualifying = qualifying_stays(spec, stays.where(in_windows), diagnoses)
    per_year = qualifying.groupBy("patient_key", "year").agg(
        F.count(F.lit(1)).cast("int").alias("n"),
        F.min("exit_date").alias("first"),
        F.max("exit_date").alias("last"),
        F.max("_order").alias("last_order"),
        F.max_by("age", "_order").alias("last_age"),
        F.max_by("sex", "_order").alias("last_sex"),
        *[F.bool_or(f"_b{j}").alias(f"_b{j}") for j in range(n_branches)],
        *[F.sum(F.col(f"_t{k}").cast("int")).cast("int").alias(f"_tn{k}") for k in range(n_subtypes)],
        *[F.max(F.when(F.col(f"_t{k}"), F.col("_order"))).alias(f"_tl{k}") for k in range(n_subtypes)],
    )
    n = F.col("index_year")
    age = F.col("last_age").cast("int") + (n.cast("int") - F.col("year").cast("int"))
    grouped = (
        per_year.join(F.broadcast(_windows(stays.sparkSession, index_years, lookback)), on="year", how="inner")
        .groupBy("patient_key", "index_year")
        .agg(
            F.sum("n").cast("int").alias("qualifying_stays"),
            F.sum(F.when(F.col("year") == n, F.col("n")).otherwise(0)).cast("int").alias("stays_in_index_year"),
            F.min("first").alias("first_stay_date"),
            F.max("last").alias("last_stay_date"),
            F.max_by(age, F.col("last_order")).alias("age"),
            F.max_by("last_sex", "last_order").alias("sex"),
            *[F.bool_or(f"_b{j}").alias(f"_b{j}") for j in range(n_branches)],
            *[F.sum(f"_tn{k}").alias(f"_tn{k}") for k in range(n_subtypes)],
            *[F.max(f"_tl{k}").alias(f"_tl{k}") for k in range(n_subtypes)],
        )
    )
    is_case = F.col("qualifying_stays") >= spec.window.min_stays
    branches = F.concat_ws("+", *[F.when(F.col(f"_b{j}"), F.lit(b.name)) for j, b in enumerate(spec.branches)])
    death_year = F.col("_death_year")
    if drop_unseen_years is not None:
        grouped = grouped.join(seen(stays, index_years, drop_unseen_years), on=["patient_key", "index_year"], how="left_semi")
    out = (
        grouped.join(deaths(stays, known_deaths), on="patient_key", how="left")
        .where(death_year.isNull() | (death_year >= n))
        .select(
            "patient_key",
            F.lit(spec.disease).alias("disease"),
            "index_year",
            is_case.alias("is_case"),
            F.when(is_case, _subtype(spec)).alias("subtype"),
            "first_stay_date",
            "last_stay_date",
            "qualifying_stays",
            "stays_in_index_year",
            branches.alias("branches"),
            (is_case & (F.year("first_stay_date") == n)).alias("incident"),
            ((n.cast("int") - lookback) >= F.lit(first_year).cast("int")).alias("complete_history"),
            "age",
            "sex",
            F.coalesce(death_year == n, F.lit(False)).alias("died_in_year"),
        )
    )
    return cast(out, CASE_SCHEMA)


def _subtype(spec: AlgorithmSpec) -> Column:
    subtypes = spec.subtypes
    if subtypes.by == "timing":
        now = next(t.name for t in subtypes.types if t.when == "index_year")
        before = next(t.name for t in subtypes.types if t.when == "before_index_year")
        return F.when(F.col("stays_in_index_year") > 0, F.lit(now)).otherwise(F.lit(before))
    # by codes: most stays, then the latest stay, then the first listed
    names = [name for name, _ in spec.subtype_criteria()]
    if not names:  # only a default type
        return F.lit(subtypes.default)
    counts = [F.col(f"_tn{k}") for k in range(len(names))]
    lasts = [F.coalesce(F.col(f"_tl{k}"), F.lit(-1)) for k in range(len(names))]
    most = _greatest(counts)
    latest = _greatest([F.when(c == most, last) for c, last in zip(counts, lasts, strict=True)])
    wins = [(c == most) & (c > 0) & (last == latest) for c, last in zip(counts, lasts, strict=True)]
    chosen = F.when(wins[0], F.lit(names[0]))
    for win, name in zip(wins[1:], names[1:], strict=True):
        chosen = chosen.when(win, F.lit(name))
    return chosen.otherwise(F.lit(subtypes.default))


# --- residence -------------------------------------------------------------------------------


def attach_residence(
    cases: DataFrame,
    stays: DataFrame,
    lookback_years: int,
    method: str = "modal",
    zone_territory: pl.DataFrame | None = None,
) -> DataFrame:
    """Add the zone of residence over a long period (columns :data:`RESIDENCE_SCHEMA`).

    The zone comes from all the patient's ``stays`` exiting in the years N − ``lookback_years`` … N
    with a residence zone: the zone on most of them (``modal``; ties: the zone whose latest stay is
    the latest) or the zone of the latest (``latest``). ``zone_territory`` (zone_code,
    territory_id, territory_name; a small polars frame) gives the territory. ``cases`` is read
    twice (its keys, then the rows): cache it beforehand when it is costly to compute.
    """
    check_residence(method, lookback_years)
    stays = residence_stays(stays_only(stays))  # not a residence invalid or abroad, not an inter-hospital service
    index_year = F.col("index_year").cast("int")
    windows = (
        cases.select("patient_key", "index_year")
        .distinct()
        .select("patient_key", "index_year", F.explode(F.sequence(index_year - lookback_years, index_year)).alias("year"))
    )
    per_zone = (
        stays.where(
            F.col("patient_key").isNotNull() & F.col("residence_zone").isNotNull() & F.col("exit_date").isNotNull()
        )
        .select("patient_key", F.year("exit_date").alias("year"), "residence_zone", order().alias("_order"))
        .join(windows, on=["patient_key", "year"], how="inner")
        .groupBy("patient_key", "index_year", "residence_zone")
        .agg(F.count(F.lit(1)).cast("int").alias("n"), F.max("_order").alias("last_order"))
    )
    # the chosen zone is the greatest (n, last order) or (last order): last orders of a patient's
    # zones differ (each is a stay's), so there is no tie left
    fields = ["n", "last_order"] if method == "modal" else ["last_order", "n"]
    best = F.max(F.struct(*fields, "residence_zone"))
    chosen = per_zone.groupBy("patient_key", "index_year").agg(
        best["residence_zone"].alias("residence_zone"),
        best["n"].alias("_n_zone"),
        F.sum("n").alias("residence_stays"),
    )
    out = cases.join(chosen, on=["patient_key", "index_year"], how="left")
    if zone_territory is not None:
        territory = from_polars(
            cases.sparkSession,
            zone_territory.select(
                pl.col("zone_code").cast(pl.String).alias("residence_zone"),
                pl.col("territory_id").cast(pl.Int32),
                pl.col("territory_name").cast(pl.String),
            ),
        )
        out = out.join(F.broadcast(territory), on="residence_zone", how="left")
    else:
        out = out.withColumns({"territory_id": F.lit(None), "territory_name": F.lit(None)})
    out = out.withColumns({
        "residence_share": F.col("_n_zone") / F.col("residence_stays"),
        "residence_stays": F.coalesce(F.col("residence_stays"), F.lit(0)),
    })
    return out.select(
        *[F.col(c) for c in cases.columns],
        *[F.col(c).cast(spark_type(t)).alias(c) for c, t in RESIDENCE_SCHEMA.items()],
    )
