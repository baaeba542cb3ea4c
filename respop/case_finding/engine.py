"""The polars target of the case-finding specs: a spec compiled into lazy polars expressions.

:func:`find_cases` and :func:`attach_residence` implement the semantics of docs/case_finding.md
over the canonical stays and diagnoses of every year, lazily, without a Python loop over patients
or rows (the loops below run over the spec's criteria, branches and sub-types). The parsed spec
(:mod:`respop.spec`) knows nothing of polars: another engine compiles the same spec.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from respop.pmsi.quality import residence_stays
from respop.spec.algorithm import AlgorithmSpec, Criterion, prefixes_by_length
from respop.spec.residence import check_residence

ORDER_DAYS = 10**13
"""``latest`` order of stays: exit date (days) × 10¹³ + stay id (stay ids are below 10¹³), one Int64."""

CASE_SCHEMA: dict[str, pl.DataType] = {
    "patient_key": pl.String,
    "disease": pl.String,
    "index_year": pl.Int16,
    "is_case": pl.Boolean,
    "subtype": pl.String,
    "first_stay_date": pl.Date,
    "last_stay_date": pl.Date,
    "qualifying_stays": pl.Int32,
    "stays_in_index_year": pl.Int32,
    "branches": pl.String,
    "incident": pl.Boolean,
    "complete_history": pl.Boolean,
    "age": pl.Int16,
    "sex": pl.Int8,
    "died_in_year": pl.Boolean,
}
"""Columns of :func:`find_cases` (one row per patient, disease and index year)."""

RESIDENCE_SCHEMA: dict[str, pl.DataType] = {
    "residence_zone": pl.String,
    "territory_id": pl.Int32,
    "territory_name": pl.String,
    "residence_share": pl.Float64,
    "residence_stays": pl.Int32,
}
"""Columns :func:`attach_residence` adds."""

# --- compiling criteria ----------------------------------------------------------------------


def prefix_match(code: pl.Expr, prefixes: Iterable[str]) -> pl.Expr:
    """``code`` starts with one of ``prefixes``: one ``is_in`` per prefix length (fast on many codes)."""
    groups = prefixes_by_length(prefixes)
    if not groups:
        return pl.lit(False)
    parts = [code.str.slice(0, n).is_in(ps) for n, ps in groups]
    out = parts[0]
    for p in parts[1:]:
        out = out | p
    return out.fill_null(False)


def criterion_expr(criterion: Criterion) -> pl.Expr:
    """A diagnosis row (code, position) satisfies the criterion."""
    code = pl.col("code")
    expr = pl.col("position").cast(pl.String).is_in(list(criterion.positions)) & prefix_match(code, criterion.codes)
    if criterion.exclude:
        expr = expr & ~prefix_match(code, criterion.exclude)
    return expr


def _flag(i: int) -> str:
    return f"_c{i}"


def stay_flags(spec: AlgorithmSpec, diagnoses: pl.LazyFrame) -> pl.LazyFrame:
    """One row per stay with at least one diagnosis the spec looks at: a boolean per criterion."""
    criteria = spec.criteria
    every_prefix = sorted({p for c in criteria for p in c.codes})
    return (
        diagnoses.select("stay_id", "code", "position")
        .filter(prefix_match(pl.col("code"), every_prefix))
        .group_by("stay_id")
        .agg([criterion_expr(c).any().alias(_flag(i)) for i, c in enumerate(criteria)])
    )


def qualifying_stays(spec: AlgorithmSpec, stays: pl.LazyFrame, diagnoses: pl.LazyFrame) -> pl.LazyFrame:
    """The stays that qualify, with a boolean per branch (``_b<j>``) and per code sub-type (``_t<k>``)."""
    flag = lambda c: pl.col(_flag(spec.criterion_index(c)))  # noqa: E731
    branches = []
    for b in spec.branches:
        expr = pl.all_horizontal([flag(c) for c in b.all])
        if b.unless:
            expr = expr & ~pl.any_horizontal([flag(c) for c in b.unless])
        branches.append(expr)
    qualifies = pl.any_horizontal(branches)
    exclusions = [flag(Criterion(codes=e.codes, exclude=e.exclude, positions=e.positions)) for e in spec.exclude_stays]
    if exclusions:
        qualifies = qualifies & ~pl.any_horizontal(exclusions)
    age = pl.col("age")
    in_population = pl.col("patient_key").is_not_null() & pl.col("exit_date").is_not_null()
    if spec.population.min_age is not None:
        in_population = in_population & (age >= spec.population.min_age)
    if spec.population.max_age is not None:
        in_population = in_population & (age <= spec.population.max_age)
    base = stays.select("stay_id", "patient_key", "exit_date", "age", "sex").filter(in_population.fill_null(False))
    return (
        base.join(stay_flags(spec, diagnoses), on="stay_id", how="inner")
        .filter(qualifies)
        .select(
            "stay_id",
            "patient_key",
            "exit_date",
            pl.col("exit_date").dt.year().cast(pl.Int16).alias("year"),
            "age",
            "sex",
            _order().alias("_order"),
            *[e.alias(f"_b{j}") for j, e in enumerate(branches)],
            *[flag(c).alias(f"_t{k}") for k, (_, c) in enumerate(spec.subtype_criteria())],
        )
    )


def stays_only(stays: pl.LazyFrame) -> pl.LazyFrame:
    """The stays without séances (which are not stays: docs/case_finding.md), whatever the caller passed."""
    if "is_session" in stays.collect_schema().names():
        return stays.filter(~pl.col("is_session").fill_null(False))
    return stays


def _order() -> pl.Expr:
    return pl.col("exit_date").cast(pl.Int64) * ORDER_DAYS + pl.col("stay_id")


# --- cases -----------------------------------------------------------------------------------


DEATHS_SCHEMA: dict[str, pl.DataType] = {"patient_key": pl.String, "death_date": pl.Date}
"""Columns of the deaths known outside the PMSI (the SNDS referential: respop.pmsi.deaths)."""


def death_dates(stays: pl.LazyFrame, known: pl.LazyFrame | pl.DataFrame | None = None) -> pl.LazyFrame:
    """patient_key, death_date: the earliest death known of each patient, in hospital (a stay with
    exit mode 9: its exit date) or, with ``known`` (patient_key, death_date: the referential), out
    of hospital."""
    frames = [
        stays.filter(pl.col("died") & pl.col("patient_key").is_not_null() & pl.col("exit_date").is_not_null())
        .select("patient_key", pl.col("exit_date").alias("death_date"))
    ]
    if known is not None:
        frames.append(known.lazy().select(*DEATHS_SCHEMA).cast(DEATHS_SCHEMA).filter(pl.col("death_date").is_not_null()))
    return pl.concat(frames).group_by("patient_key").agg(pl.col("death_date").min())


def deaths(stays: pl.LazyFrame, known: pl.LazyFrame | pl.DataFrame | None = None) -> pl.LazyFrame:
    """Year of the first death recorded for each patient: in hospital, or (``known``: the
    referential's deaths) out of hospital."""
    return death_dates(stays, known).select(
        "patient_key", pl.col("death_date").dt.year().cast(pl.Int16).alias("_death_year")
    )


def seen(stays: pl.LazyFrame, index_years: list[int], years: int) -> pl.LazyFrame:
    """(patient_key, index_year) of the patients with a stay exiting in the index year or the
    ``years`` − 1 years before it (``cases.drop_unseen_years``)."""
    offsets = pl.LazyFrame({"_offset": list(range(years))}, schema={"_offset": pl.Int16})
    wanted = pl.LazyFrame({"index_year": sorted(set(index_years))}, schema={"index_year": pl.Int16})
    year = pl.col("exit_date").dt.year().cast(pl.Int16)
    per_year = (
        stays.filter(pl.col("patient_key").is_not_null() & pl.col("exit_date").is_not_null())
        .select("patient_key", year.alias("year"))
        .unique()
    )
    return (
        per_year.join(offsets, how="cross")
        .select("patient_key", (pl.col("year") + pl.col("_offset")).cast(pl.Int16).alias("index_year"))
        .join(wanted, on="index_year", how="semi")
        .unique()
    )


def _windows(index_years: list[int], lookback: int) -> pl.LazyFrame:
    """(index year, year) pairs of every window."""
    return pl.LazyFrame(
        [(n, y) for n in sorted(set(index_years)) for y in range(n - lookback, n + 1)],
        schema={"index_year": pl.Int16, "year": pl.Int16},
        orient="row",
    )


def find_cases(
    spec: AlgorithmSpec,
    stays: pl.LazyFrame,
    diagnoses: pl.LazyFrame,
    index_years: list[int],
    first_year: int | None = None,
    known_deaths: pl.LazyFrame | pl.DataFrame | None = None,
    drop_unseen_years: int | None = None,
    death_years: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Cases of one disease for each index year (columns :data:`CASE_SCHEMA`), lazily.

    ``stays`` and ``diagnoses`` are the canonical frames of every year read (respop.pmsi);
    ``first_year`` is the first year the data cover (for ``complete_history``; by default the
    earliest exit year of ``stays``). ``known_deaths`` (patient_key, death_date: the SNDS
    referential, respop.pmsi.deaths): deaths out of hospital, which end a patient's rows as an
    in-hospital death does (a patient is counted in N when alive on 1 January of N).
    ``drop_unseen_years``: leave out a patient in N when none of their stays exits in N or the
    years before it, this many years in all (``cases.drop_unseen_years``). ``death_years``:
    :func:`deaths` of these stays (without séances) and ``known_deaths``, already collected (the
    cases step computes it once for every disease: 1.3 s a national year); when given,
    ``known_deaths`` is not read again, so the two must come from the same deaths.
    """
    if not index_years:
        raise ValueError("no index year")
    stays = stays_only(stays)
    if first_year is None:
        first_year = stays.select(pl.col("exit_date").dt.year().min()).collect(engine="streaming").item()
    lookback = spec.window.lookback_years
    subtype_names = [name for name, _ in spec.subtype_criteria()]
    n_branches = len(spec.branches)

    # only the stays of the windows are read (deaths look at every year before)
    in_windows = pl.col("exit_date").dt.year().is_between(min(index_years) - lookback, max(index_years))
    qualifying = qualifying_stays(spec, stays.filter(in_windows), diagnoses)
    per_year = qualifying.group_by("patient_key", "year").agg(
        pl.len().cast(pl.Int32).alias("n"),
        pl.col("exit_date").min().alias("first"),
        pl.col("exit_date").max().alias("last"),
        pl.col("_order").max().alias("last_order"),
        pl.col("age").sort_by("_order").last().alias("last_age"),
        pl.col("sex").sort_by("_order").last().alias("last_sex"),
        *[pl.col(f"_b{j}").any().alias(f"_b{j}") for j in range(n_branches)],
        *[pl.col(f"_t{k}").sum().cast(pl.Int32).alias(f"_tn{k}") for k in range(len(subtype_names))],
        *[pl.col("_order").filter(pl.col(f"_t{k}")).max().alias(f"_tl{k}") for k in range(len(subtype_names))],
    )
    n = pl.col("index_year")
    in_window = per_year.join(_windows(index_years, lookback), on="year", how="inner")
    grouped = in_window.group_by("patient_key", "index_year").agg(
        pl.col("n").sum().cast(pl.Int32).alias("qualifying_stays"),
        pl.col("n").filter(pl.col("year") == n).sum().cast(pl.Int32).alias("stays_in_index_year"),
        pl.col("first").min().alias("first_stay_date"),
        pl.col("last").max().alias("last_stay_date"),
        (pl.col("last_age").cast(pl.Int32) + (n.cast(pl.Int32) - pl.col("year").cast(pl.Int32)))
        .sort_by("last_order")
        .last()
        .cast(pl.Int16)
        .alias("age"),
        pl.col("last_sex").sort_by("last_order").last().cast(pl.Int8).alias("sex"),
        *[pl.col(f"_b{j}").any().alias(f"_b{j}") for j in range(n_branches)],
        *[pl.col(f"_tn{k}").sum().alias(f"_tn{k}") for k in range(len(subtype_names))],
        *[pl.col(f"_tl{k}").max().alias(f"_tl{k}") for k in range(len(subtype_names))],
    )
    is_case = pl.col("qualifying_stays") >= spec.window.min_stays
    branches = pl.concat_str(
        [pl.when(pl.col(f"_b{j}")).then(pl.lit(b.name)) for j, b in enumerate(spec.branches)],
        separator="+",
        ignore_nulls=True,
    )
    if drop_unseen_years is not None:
        grouped = grouped.join(seen(stays, index_years, drop_unseen_years), on=["patient_key", "index_year"], how="semi")
    return (
        grouped.join(deaths(stays, known_deaths) if death_years is None else death_years.lazy(), on="patient_key", how="left")
        .filter(pl.col("_death_year").is_null() | (pl.col("_death_year") >= n))
        .select(
            "patient_key",
            pl.lit(spec.disease).alias("disease"),
            "index_year",
            is_case.alias("is_case"),
            pl.when(is_case).then(_subtype(spec)).alias("subtype"),
            "first_stay_date",
            "last_stay_date",
            "qualifying_stays",
            "stays_in_index_year",
            branches.alias("branches"),
            (is_case & (pl.col("first_stay_date").dt.year() == n)).alias("incident"),
            ((n.cast(pl.Int32) - lookback) >= first_year).alias("complete_history"),
            "age",
            "sex",
            (pl.col("_death_year") == n).fill_null(False).alias("died_in_year"),
        )
        .cast(CASE_SCHEMA)
    )


def _subtype(spec: AlgorithmSpec) -> pl.Expr:
    subtypes = spec.subtypes
    if subtypes.by == "timing":
        now = next(t.name for t in subtypes.types if t.when == "index_year")
        before = next(t.name for t in subtypes.types if t.when == "before_index_year")
        return pl.when(pl.col("stays_in_index_year") > 0).then(pl.lit(now)).otherwise(pl.lit(before))
    # by codes: most stays, then the latest stay, then the first listed
    names = [name for name, _ in spec.subtype_criteria()]
    if not names:  # only a default type
        return pl.lit(subtypes.default)
    counts = [pl.col(f"_tn{k}") for k in range(len(names))]
    lasts = [pl.col(f"_tl{k}").fill_null(-1) for k in range(len(names))]
    most = pl.max_horizontal(counts)
    latest = pl.max_horizontal([pl.when(c == most).then(last) for c, last in zip(counts, lasts, strict=True)])
    chosen: pl.Expr = pl.lit(None, pl.String)
    for name, c, last in reversed(list(zip(names, counts, lasts, strict=True))):
        chosen = pl.when((c == most) & (c > 0) & (last == latest)).then(pl.lit(name)).otherwise(chosen)
    return chosen.fill_null(pl.lit(subtypes.default))


# --- residence -------------------------------------------------------------------------------


def attach_residence(
    cases: pl.LazyFrame | pl.DataFrame,
    stays: pl.LazyFrame,
    lookback_years: int,
    method: str = "modal",
    zone_territory: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Add the zone of residence over a long period (columns :data:`RESIDENCE_SCHEMA`).

    The zone comes from all the patient's ``stays`` exiting in the years N − ``lookback_years`` … N
    with a residence zone: the zone on most of them (``modal``; ties: the zone whose latest stay is
    the latest) or the zone of the latest (``latest``). ``zone_territory`` (zone_code,
    territory_id, territory_name) gives the territory. ``cases`` is collected first (it is read
    several times); the stays are read lazily, only for the years of the windows. Only the stays
    whose residence is used count (``residence_used``, when the frame has it: not a residence
    code invalid or abroad, not an inter-hospital service; respop.pmsi.quality).
    """
    check_residence(method, lookback_years)
    stays = residence_stays(stays_only(stays))
    # the cases are computed once here (they are read three times below)
    cases = (cases.collect(engine="streaming") if isinstance(cases, pl.LazyFrame) else cases).lazy()
    keys = cases.select("patient_key", "index_year").collect()
    patients = keys.select("patient_key").unique().lazy()
    index_years = keys.select("index_year").unique().lazy()
    lo, hi = (keys["index_year"].min(), keys["index_year"].max()) if keys.height else (0, 0)
    year = pl.col("exit_date").dt.year()
    per_zone_year = (
        stays.filter(
            pl.col("patient_key").is_not_null()
            & pl.col("residence_zone").is_not_null()
            & pl.col("exit_date").is_not_null()
            & year.is_between(int(lo) - lookback_years, int(hi))
        )
        .join(patients, on="patient_key", how="semi")
        .group_by("patient_key", year.cast(pl.Int16).alias("year"), "residence_zone")
        .agg(pl.len().cast(pl.Int32).alias("n"), _order().max().alias("last_order"))
    )
    windows = index_years.join(
        pl.LazyFrame({"offset": list(range(lookback_years + 1))}, schema={"offset": pl.Int16}), how="cross"
    ).select("index_year", (pl.col("index_year") - pl.col("offset")).cast(pl.Int16).alias("year"))
    per_zone = (
        per_zone_year.join(windows, on="year", how="inner")
        .join(keys.lazy(), on=["patient_key", "index_year"], how="semi")
        .group_by("patient_key", "index_year", "residence_zone")
        .agg(pl.col("n").sum().alias("n"), pl.col("last_order").max().alias("last_order"))
    )
    if method == "modal":
        order, descending = ["n", "last_order"], [True, True]
    else:
        order, descending = ["last_order"], [True]
    chosen = per_zone.group_by("patient_key", "index_year").agg(
        pl.col("residence_zone").sort_by(order, descending=descending).first(),
        pl.col("n").sort_by(order, descending=descending).first().alias("_n_zone"),
        pl.col("n").sum().alias("residence_stays"),
    )
    out = cases.join(chosen, on=["patient_key", "index_year"], how="left", maintain_order="left")
    territory = (
        zone_territory.lazy().select(
            pl.col("zone_code").cast(pl.String).alias("residence_zone"),
            pl.col("territory_id").cast(pl.Int32),
            pl.col("territory_name").cast(pl.String),
        )
        if zone_territory is not None
        else pl.LazyFrame(schema={"residence_zone": pl.String, "territory_id": pl.Int32, "territory_name": pl.String})
    )
    out = out.join(territory, on="residence_zone", how="left", maintain_order="left")
    return out.with_columns(
        (pl.col("_n_zone") / pl.col("residence_stays")).alias("residence_share"),
        pl.col("residence_stays").fill_null(0).cast(pl.Int32),
    ).select(*cases.collect_schema().names(), *RESIDENCE_SCHEMA).cast(RESIDENCE_SCHEMA)
