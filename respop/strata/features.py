"""Features per person and year, in polars: the expressions of the features catalogue.

The names, their meaning and the code features are data of the specification layer
(:mod:`respop.spec.features`: the **computed** features, one **case-of** feature per other
configured disease, ``case_of_<disease>``, and the **code** features of
``algorithms/features.toml``). This module computes them per case-year
(:func:`compute_features`) and gives the columns and types of the result from the spec alone
(:func:`features_schema`), which the Spark target also uses. Adding a computed feature: one entry
in ``respop.spec.features.COMPUTED`` (and its French label), one expression in
:func:`compute_features`, its type in :data:`COMPUTED_TYPES`, and its Spark expression in
respop/spark/strata.py too (the Spark ``compute_features`` stops, naming it, until it has one).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from respop.case_finding.engine import CASE_SCHEMA, RESIDENCE_SCHEMA, criterion_expr, prefix_match, qualifying_stays, stays_only
from respop.pmsi.quality import counted_stays
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.features import CASE_OF, COMPUTED, OUTCOMES, FeaturesSpec

IDENTITY = ("patient_key", "disease", "year", "residence_zone", "territory_id", "territory_name", "sex")
"""The identity and residence columns of a person-year, first."""

COMPUTED_TYPES: dict[str, pl.DataType] = {
    "age": CASE_SCHEMA["age"],
    **{name: pl.Int32 for name in COMPUTED if name != "age"},
}
"""The type of each computed feature."""

OUTCOME_TYPES: dict[str, pl.DataType] = {"readmissions_30d": pl.Int32, "died_in_year": CASE_SCHEMA["died_in_year"]}


def features_schema(features: FeaturesSpec, case_of: Sequence[str] = ()) -> dict[str, pl.DataType]:
    """The columns and types of :func:`compute_features`' result, from the spec alone: identity,
    computed features, case-of features ``case_of``, code features, outcomes."""
    identity = {**CASE_SCHEMA, **RESIDENCE_SCHEMA, "year": pl.Int16}
    return {
        **{c: identity[c] for c in IDENTITY},
        **{c: COMPUTED_TYPES[c] for c in COMPUTED},
        **{c: pl.Boolean for c in case_of},
        **{c: pl.Boolean for c in features.codes},
        **{c: OUTCOME_TYPES[c] for c in OUTCOMES},
    }


def person_strata_columns(features: FeaturesSpec, diseases: Sequence[str]) -> list[str]:
    """The columns of the person strata of every configured disease stacked: those of
    :func:`features_schema` with the case-of feature of each disease (null on the disease's own
    rows; none when one disease is configured: no row would have it), then the stratum."""
    from respop.spec.features import case_feature

    case_of = [case_feature(d) for d in diseases] if len(diseases) > 1 else []
    return [*features_schema(features, case_of), "stratum", "stratum_level"]


def code_flags(diagnoses: pl.LazyFrame, features: FeaturesSpec) -> pl.LazyFrame:
    """``stay_id`` and one boolean per code feature of ``features``: the stays with at least one
    diagnosis of a code feature (every disease's :func:`compute_features` reads the same flags: the
    strata step computes them once, :func:`respop.strata.run.polars_strata`)."""
    prefixes = sorted({p for f in features.codes.values() for p in f.codes})
    return (
        diagnoses.select("stay_id", "code", "position")
        .filter(prefix_match(pl.col("code"), prefixes))
        .group_by("stay_id")
        .agg([criterion_expr(f).any().alias(n) for n, f in features.codes.items()])
    )


def _windows(years: Sequence[int], lookback: int) -> pl.LazyFrame:
    """(year, _stay_year, _offset): the stay years of each year's window of ``lookback`` years."""
    return pl.LazyFrame(
        [(n, n - k, k) for n in sorted(set(years)) for k in range(lookback + 1)],
        schema={"year": pl.Int16, "_stay_year": pl.Int16, "_offset": pl.Int16},
        orient="row",
    )


def compute_features(
    spec: AlgorithmSpec,
    cases: pl.LazyFrame,
    stays: pl.LazyFrame,
    diagnoses: pl.LazyFrame,
    features: FeaturesSpec,
    qualifying: pl.LazyFrame | None = None,
    case_of: Sequence[str] = (),
    flags: pl.LazyFrame | pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """One row per case-year of ``spec``'s disease (``cases`` of respop.case_finding, every disease):
    identity, residence, every feature and the outcomes of the year (columns
    :func:`features_schema`). ``qualifying``: the ids (``stay_id``) of the disease's qualifying
    stays when already computed (see :func:`respop.strata.engine.qualifying_ids`). ``case_of``:
    the case-of features, ``case_of_<disease>`` for each other configured disease
    (``Catalogue.case_of``): true when the person is a case of that disease the same year.
    ``flags``: :func:`code_flags` of ``diagnoses`` when already computed.

    Only the stays the features look at are read: the care-use counts read the stays of the case
    years, the code features those of their windows (the years before, up to the longest
    ``lookback_years``), each window computed once for every code feature; the 30-day
    readmissions read the disease's qualifying stays of every year (the stay before a stay may be
    much older)."""
    disease = spec.disease
    mine = cases.filter(pl.col("is_case") & (pl.col("disease") == disease))
    person_years = mine.select(
        "patient_key",
        "disease",
        pl.col("index_year").cast(pl.Int16).alias("year"),
        "residence_zone",
        "territory_id",
        "territory_name",
        "sex",
        "age",
        pl.col("stays_in_index_year").cast(pl.Int32).alias("disease_stays_12m"),
        pl.col("qualifying_stays").cast(pl.Int32).alias("disease_stays_window"),
        (pl.date(pl.col("index_year").cast(pl.Int32), 12, 31) - pl.col("last_stay_date")).dt.total_days().cast(pl.Int32).alias("days_since_disease_stay"),
        "died_in_year",
    )
    # the case years (one column of the cases: cheap), to read only the stays of the years needed
    years = mine.select(pl.col("index_year").cast(pl.Int16).unique()).collect(engine="streaming").to_series().drop_nulls().to_list()
    patients = mine.select("patient_key").unique()
    stay_year = pl.col("exit_date").dt.year().cast(pl.Int16)
    kept = stays_only(stays).filter(pl.col("patient_key").is_not_null() & pl.col("exit_date").is_not_null())
    theirs = kept.join(patients, on="patient_key", how="semi").with_columns(stay_year.alias("_stay_year"))

    # care-use counts: the stays counted as stays of their own (not an inter-hospital service,
    # whose stay is the sending hospital's: respop.pmsi.quality); code features see every stay
    counted = counted_stays(theirs)
    all_use = counted.filter(pl.col("_stay_year").is_in(years)).group_by("patient_key", pl.col("_stay_year").alias("year")).agg(
        pl.len().cast(pl.Int32).alias("stays_12m"),
        pl.col("via_emergency").sum().cast(pl.Int32).alias("emergency_stays_12m"),
        pl.col("length_of_stay").sum().cast(pl.Int32).alias("bed_days_12m"),
    )
    ids = qualifying if qualifying is not None else qualifying_stays(spec, theirs, diagnoses).select("stay_id")
    qualifying = (
        ids
        .join(counted.select("stay_id", "patient_key", "entry_date", "exit_date", "_stay_year", "via_emergency", "length_of_stay"), on="stay_id")
        .sort("patient_key", "entry_date", "exit_date", "stay_id")
        .with_columns(
            # the previous stay of the same patient: the row before, the rows being sorted by patient
            # (a window over patient_key hashed every key: 1.5 of the diabetes features' seconds)
            (pl.col("entry_date") - pl.when(pl.col("patient_key") == pl.col("patient_key").shift(1)).then(pl.col("exit_date").shift(1)))
            .dt.total_days()
            .alias("_gap")
        )
    )
    disease_use = qualifying.group_by("patient_key", pl.col("_stay_year").alias("year")).agg(
        pl.col("via_emergency").sum().cast(pl.Int32).alias("disease_emergency_stays_12m"),
        pl.col("length_of_stay").sum().cast(pl.Int32).alias("disease_bed_days_12m"),
        pl.col("_gap").is_between(0, 30).sum().cast(pl.Int32).alias("readmissions_30d"),
    )
    out = person_years.join(all_use, on=["patient_key", "year"], how="left").join(
        disease_use, on=["patient_key", "year"], how="left"
    )
    # code features: flags per stay, per (patient, stay year), then one pass over the windows of
    # the longest look-back, each feature true when a flagged stay year is within its own
    if features.codes and not years:  # no case: the columns, empty
        out = out.with_columns(*[pl.lit(None, pl.Boolean).alias(n) for n in features.codes])
    elif features.codes:
        names = list(features.codes)
        longest = max(f.lookback_years for f in features.codes.values())
        flags = (flags if flags is not None else code_flags(diagnoses, features)).lazy()
        per_year = (
            theirs.filter(pl.col("_stay_year").is_between(min(years) - longest, max(years)))
            .select("stay_id", "patient_key", "_stay_year")
            .join(flags.select("stay_id", *names), on="stay_id", how="inner")
            .group_by("patient_key", "_stay_year")
            .agg([pl.col(n).any() for n in names])
        )
        hits = (
            per_year.join(_windows(years, longest), on="_stay_year", how="inner")
            .group_by("patient_key", "year")
            .agg([(pl.col(n) & (pl.col("_offset") <= f.lookback_years)).any().alias(n) for n, f in features.codes.items()])
        )
        out = out.join(hits, on=["patient_key", "year"], how="left")
    for name in case_of:
        other = name.removeprefix(CASE_OF)
        other_cases = (
            cases.filter(pl.col("is_case") & (pl.col("disease") == other))
            .select("patient_key", pl.col("index_year").cast(pl.Int16).alias("year"))
            .unique()
            .with_columns(pl.lit(True).alias(name))
        )
        out = out.join(other_cases, on=["patient_key", "year"], how="left")
    counts = ["stays_12m", "emergency_stays_12m", "bed_days_12m", "disease_emergency_stays_12m", "disease_bed_days_12m", "readmissions_30d"]
    return out.with_columns(
        *[pl.col(c).fill_null(0) for c in counts],
        *[pl.col(n).fill_null(False) for n in [*case_of, *features.codes]],
    ).select(*features_schema(features, case_of))
