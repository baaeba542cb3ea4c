"""Strata of each person-year, care use, transitions and the events survival follows (polars).

The strata conditions are compiled from the spec (:mod:`respop.strata.conditions`); everything
is vectorised: no Python loop over people or rows (docs/strata.md).
"""

from __future__ import annotations

import polars as pl

from respop.case_finding.engine import DEATHS_SCHEMA, deaths, qualifying_stays, stays_only
from respop.spec.algorithm import AlgorithmSpec
from respop.errors import ConfigError
from respop.strata.conditions import to_polars

DEATH = "deces"
NOT_SEEN = "non_revu"
ALL = "all"
CARE_USE = {
    "stays": "stays_12m",
    "emergency_stays": "emergency_stays_12m",
    "bed_days": "bed_days_12m",
    "readmissions_30d": "readmissions_30d",
    "deaths": "died_in_year",
}
"""Care-use measures of the year (output name → person-year column)."""
RESIDENCE = "residence_zone"
"""The person-year column that places a case in the area. Every published result of the strata
step (care use, transitions, survival, the prediction's test figures) describes the person-years
with a residence zone: the area is the sum of its zones. A case without one (no stay with a usable
residence in the window) stays in person_strata.parquet (the private lists) but in no published
count, since any published total that held them would give their number away against the sum of
the zones (area minus territories, transitions minus the area's people and deaths)."""


def in_area(columns) -> pl.Expr:
    """True for the person-years the published results describe (:data:`RESIDENCE` known); true for
    every row of a frame without that column (unit tests' person-years)."""
    return pl.col(RESIDENCE).is_not_null() if RESIDENCE in columns else pl.lit(True)


def assign(spec: AlgorithmSpec, features: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``stratum`` (name) and ``stratum_level`` (1 = the least severe) to each person-year."""
    if spec.strata is None:
        raise ConfigError(f"the {spec.disease} algorithm has no [strata] part (docs/strata.md)")
    levels = spec.strata.levels
    name: pl.Expr = pl.lit(levels[-1].name)
    for level in reversed(levels[:-1]):
        name = pl.when(to_polars(level.condition)).then(pl.lit(level.name)).otherwise(name)
    level_of = {lv.name: spec.strata.level_of(lv.name) for lv in levels}
    return features.with_columns(name.alias("stratum")).with_columns(
        pl.col("stratum").replace_strict(level_of, return_dtype=pl.Int8).alias("stratum_level")
    )


def qualifying_ids(spec: AlgorithmSpec, stays: pl.LazyFrame, diagnoses: pl.LazyFrame) -> pl.LazyFrame:
    """``stay_id`` of the disease's qualifying stays (séances excluded): computed once, used by the
    features and the events."""
    return qualifying_stays(spec, stays_only(stays), diagnoses).select("stay_id")


def outcome_events(
    spec: AlgorithmSpec,
    stays: pl.LazyFrame,
    diagnoses: pl.LazyFrame,
    qualifying: pl.LazyFrame | None = None,
    known_deaths: pl.LazyFrame | pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Entry dates of the disease's qualifying stays and dates of deaths, per patient: in-hospital
    deaths, and with ``known_deaths`` (patient_key, death_date: the SNDS referential) the deaths
    out of hospital, which end a follow-up as deaths (not as censoring).
    ``qualifying``: the qualifying stay ids when already computed (:func:`qualifying_ids`)."""
    kept = stays_only(stays)
    ids = qualifying if qualifying is not None else qualifying_ids(spec, kept, diagnoses)
    disease_stays = (
        ids
        .join(kept.select("stay_id", "patient_key", "entry_date"), on="stay_id")
        .select("patient_key", pl.col("entry_date").alias("date"), pl.lit("disease_stay").alias("kind"))
    )
    died = kept.filter(pl.col("died") & pl.col("patient_key").is_not_null() & pl.col("exit_date").is_not_null()).select(
        "patient_key", pl.col("exit_date").alias("date"), pl.lit("death").alias("kind")
    )
    parts = [disease_stays, died]
    if known_deaths is not None:
        parts.append(
            known_deaths.lazy().select(*DEATHS_SCHEMA).cast(DEATHS_SCHEMA)
            .select("patient_key", pl.col("death_date").alias("date"), pl.lit("death").alias("kind"))
        )
    return pl.concat(parts).filter(pl.col("date").is_not_null()).with_columns(
        pl.lit(spec.disease).alias("disease")
    ).select("patient_key", "disease", "date", "kind")


def transitions(person_strata: pl.DataFrame, death_years: pl.DataFrame, last_year: int, order: dict[str, list[str]]) -> pl.DataFrame:
    """Stratum in N → state in N + 1 (a stratum, ``deces``, ``non_revu``): counts and row proportions.

    ``death_years``: patient_key, death year (:func:`death_years`). People who died in N are not followed
    from N, nor people without a residence zone in N (:data:`RESIDENCE`); their state in N + 1 is
    read wherever they live then. ``order``: disease → stratum names, most severe first (for sorting).
    """
    current = person_strata.filter(~pl.col("died_in_year") & (pl.col("year") < last_year) & in_area(person_strata.columns)).select(
        "patient_key", "disease", "year", "stratum"
    )
    following = person_strata.select(
        "patient_key", "disease", (pl.col("year") - 1).cast(pl.Int16).alias("year"), pl.col("stratum").alias("_next")
    )
    died_next = death_years.select("patient_key", (pl.col("death_year") - 1).cast(pl.Int16).alias("year")).with_columns(
        pl.lit(True).alias("_died_next")
    )
    joined = (
        current.join(following, on=["patient_key", "disease", "year"], how="left")
        .join(died_next, on=["patient_key", "year"], how="left")
        .with_columns(
            pl.when(pl.col("_died_next").fill_null(False))
            .then(pl.lit(DEATH))
            .when(pl.col("_next").is_null())
            .then(pl.lit(NOT_SEEN))
            .otherwise(pl.col("_next"))
            .alias("to")
        )
    )
    counts = joined.group_by("disease", "year", pl.col("stratum").alias("from"), "to").agg(pl.len().cast(pl.Int64).alias("count"))
    counts = counts.with_columns((pl.col("count") / pl.col("count").sum().over("disease", "year", "from")).alias("proportion"))
    return sort_transitions(counts, order)


def sort_transitions(counts: pl.DataFrame, order: dict[str, list[str]]) -> pl.DataFrame:
    """Transition rows in the strata's order (most severe first), then death, then not seen."""
    rank = pl.DataFrame(
        [(d, s, i) for d, names in order.items() for i, s in enumerate([*names, DEATH, NOT_SEEN])],
        schema={"disease": pl.String, "state": pl.String, "rank": pl.Int32},
        orient="row",
    )
    return (
        counts.join(rank.rename({"state": "from", "rank": "_r_from"}), on=["disease", "from"], how="left")
        .join(rank.rename({"state": "to", "rank": "_r_to"}), on=["disease", "to"], how="left")
        .sort("disease", "year", "_r_from", "_r_to")
        .select("disease", "year", "from", "to", "count", "proportion")
    )


def care_use(person_strata: pl.DataFrame, zone_territory: pl.DataFrame | None = None) -> pl.DataFrame:
    """People and care use of the year per level (zone, territory, area), year, disease and stratum
    (``all`` too), with rates per person-year."""
    ps = person_strata.with_columns(pl.col("died_in_year").cast(pl.Int64))
    measures = [pl.len().cast(pl.Int64).alias("people"), *[pl.col(c).sum().cast(pl.Int64).alias(n) for n, c in CARE_USE.items()]]
    frames = []
    levels = [
        ("zone", pl.col("residence_zone"), pl.lit(None, pl.String)),
        ("territory", pl.col("territory_id").cast(pl.String), pl.col("territory_name")),
        # the area is its zones (RESIDENCE): a case without a residence zone is in no level, as in
        # the indicators (counted there in cases_outside)
        ("area", pl.when(in_area(person_strata.columns)).then(pl.lit(ALL)), pl.lit(None, pl.String)),
    ]
    for level, unit, unit_name in levels:
        base = ps.with_columns(unit.alias("unit"), unit_name.alias("unit_name")).filter(pl.col("unit").is_not_null())
        by_stratum = base.group_by("unit", "year", "disease", "stratum").agg(pl.col("unit_name").first(), *measures)
        overall = base.group_by("unit", "year", "disease").agg(pl.col("unit_name").first(), *measures).with_columns(
            pl.lit(ALL).alias("stratum")
        )
        frames.append(pl.concat([by_stratum, overall.select(by_stratum.columns)]).with_columns(pl.lit(level).alias("level")))
    out = pl.concat(frames)
    return out.with_columns(
        *[(pl.col(n) / pl.col("people")).alias(f"{n}_per_person") for n in CARE_USE]
    ).select(
        "level", "unit", "unit_name", "year", "disease", "stratum", "people", *CARE_USE, *[f"{n}_per_person" for n in CARE_USE]
    ).sort("level", "unit", "year", "disease", "stratum")


def death_years(stays: pl.LazyFrame, known_deaths: pl.LazyFrame | pl.DataFrame | None = None) -> pl.LazyFrame:
    """patient_key, death_year: the first death recorded, in hospital (séances excluded) or, with
    ``known_deaths`` (the SNDS referential), out of hospital."""
    return deaths(stays_only(stays), known_deaths).rename({"_death_year": "death_year"})
