"""Features per person and year, on which the strata conditions are written: the one place.

Two kinds (docs/strata.md): the **computed** features of :data:`COMPUTED` (hospital use, the
latest disease stay, the other target disease), written here in polars; and the **code**
features of ``algorithms/features.toml`` (a stay of the window carries one of the codes), which
clinicians extend without touching Python. Adding a computed feature: one entry in
:data:`COMPUTED` and one expression in :func:`compute_features`, and its Spark expression in
respop/spark/strata.py too (the Spark ``compute_features`` stops, naming it, until it has one).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import Field

from respop.case_finding.engine import prefix_match, criterion_expr, qualifying_stays, stays_only
from respop.case_finding.spec import ALGORITHMS_DIR, AlgorithmSpec, Criterion, MAX_LOOKBACK_YEARS, _Model
from respop.errors import ConfigError

COMPUTED: dict[str, str] = {
    "age": "age in the year",
    "disease_stays_12m": "qualifying stays of the disease exiting in the year",
    "disease_stays_window": "qualifying stays over the case's look-back window (the year included)",
    "disease_emergency_stays_12m": "… of them admitted through the emergency department",
    "disease_bed_days_12m": "length of stay summed over the disease's stays of the year",
    "days_since_disease_stay": "days from the latest qualifying stay's exit to 31 December",
    "stays_12m": "all kept stays exiting in the year (séances excluded)",
    "emergency_stays_12m": "… admitted through the emergency department",
    "bed_days_12m": "length of stay summed over the stays of the year",
    "other_disease": "a case of the other target disease in the year",
}
"""Computed features (name → meaning)."""

OUTCOMES = ("readmissions_30d", "died_in_year")
"""Outcomes of the year kept beside the features (not for conditions)."""

OTHER = {"diabetes": "heart_failure", "heart_failure": "diabetes"}


class CodeFeature(Criterion):
    """A boolean feature: a stay of the window carries one of ``codes`` at one of ``positions``."""

    lookback_years: int = Field(0, ge=0, le=MAX_LOOKBACK_YEARS)


class FeaturesSpec(_Model):
    codes: dict[str, CodeFeature] = Field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.codes)


RESERVED = {
    "true", "false", "True", "False", "and", "or", "not", "patient_key", "disease", "year", "residence_zone",
    "territory_id", "territory_name", "sex", "stratum", "stratum_level",
}
"""Names a code feature cannot take: words of the condition language and columns of the output."""


def load_features(folder: str | Path | None = None) -> FeaturesSpec:
    """``features.toml`` of the algorithms folder; a folder without one uses the shipped file."""
    path = Path(folder or ALGORITHMS_DIR) / "features.toml"
    if not path.is_file():
        path = ALGORITHMS_DIR / "features.toml"
    if not path.is_file():
        return FeaturesSpec()
    from respop.config import load_toml_model

    spec = load_toml_model(path, FeaturesSpec, "features file")
    for name in spec.codes:
        if name in COMPUTED or name in OUTCOMES:
            raise ConfigError(f"{path}: key 'codes.{name}': a computed feature already has this name; choose another")
        if name in RESERVED or not name.isidentifier() or not name.islower():
            raise ConfigError(
                f"{path}: key 'codes.{name}': not usable as a feature name (lower-case identifier, not one of {sorted(RESERVED)})"
            )
    return spec


def model_features(features: FeaturesSpec) -> list[str]:
    """The columns of the person strata a prediction model may use (features and 30-day
    re-hospitalisations; not the deaths of the year, which are outcomes)."""
    return [*COMPUTED, *features.names(), "readmissions_30d"]


def known_features(folder: str | Path | None = None) -> set[str]:
    return set(COMPUTED) | set(load_features(folder).names())


def _windows(years: pl.LazyFrame, lookback: int) -> pl.LazyFrame:
    offsets = pl.LazyFrame({"_offset": list(range(lookback + 1))}, schema={"_offset": pl.Int16})
    return years.join(offsets, how="cross").select("year", (pl.col("year") - pl.col("_offset")).cast(pl.Int16).alias("_stay_year"))


def compute_features(
    spec: AlgorithmSpec,
    cases: pl.LazyFrame,
    stays: pl.LazyFrame,
    diagnoses: pl.LazyFrame,
    features: FeaturesSpec,
    qualifying: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One row per case-year of ``spec``'s disease (``cases`` of respop.case_finding, every disease):
    identity, residence, every feature and the outcomes of the year. ``qualifying``: the ids
    (``stay_id``) of the disease's qualifying stays when already computed (see
    :func:`respop.strata.engine.qualifying_ids`)."""
    disease = spec.disease
    other = OTHER[disease]
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
    patients = mine.select("patient_key").unique()
    kept = stays_only(stays).filter(pl.col("patient_key").is_not_null() & pl.col("exit_date").is_not_null())
    theirs = kept.join(patients, on="patient_key", how="semi").with_columns(pl.col("exit_date").dt.year().cast(pl.Int16).alias("_stay_year"))

    all_use = theirs.group_by("patient_key", pl.col("_stay_year").alias("year")).agg(
        pl.len().cast(pl.Int32).alias("stays_12m"),
        pl.col("via_emergency").sum().cast(pl.Int32).alias("emergency_stays_12m"),
        pl.col("length_of_stay").sum().cast(pl.Int32).alias("bed_days_12m"),
    )
    ids = qualifying if qualifying is not None else qualifying_stays(spec, theirs, diagnoses).select("stay_id")
    qualifying = (
        ids
        .join(theirs.select("stay_id", "patient_key", "entry_date", "exit_date", "_stay_year", "via_emergency", "length_of_stay"), on="stay_id")
        .sort("patient_key", "entry_date", "exit_date", "stay_id")
        .with_columns(
            (pl.col("entry_date") - pl.col("exit_date").shift(1).over("patient_key")).dt.total_days().alias("_gap")
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
    # code features: flags per stay, per (patient, stay year), then over each feature's window
    if features.codes:
        names = list(features.codes)
        prefixes = sorted({p for f in features.codes.values() for p in f.codes})
        flags = (
            diagnoses.select("stay_id", "code", "position")
            .filter(prefix_match(pl.col("code"), prefixes))
            .group_by("stay_id")
            .agg([criterion_expr(f).any().alias(n) for n, f in features.codes.items()])
        )
        per_year = (
            theirs.select("stay_id", "patient_key", "_stay_year")
            .join(flags, on="stay_id", how="inner")
            .group_by("patient_key", "_stay_year")
            .agg([pl.col(n).any() for n in names])
        )
        years = person_years.select("year").unique()
        for name, f in features.codes.items():
            hit = (
                per_year.filter(pl.col(name))
                .join(_windows(years, f.lookback_years), on="_stay_year", how="inner")
                .select("patient_key", "year")
                .unique()
                .with_columns(pl.lit(True).alias(name))
            )
            out = out.join(hit, on=["patient_key", "year"], how="left")
    other_cases = (
        cases.filter(pl.col("is_case") & (pl.col("disease") == other))
        .select("patient_key", pl.col("index_year").cast(pl.Int16).alias("year"))
        .unique()
        .with_columns(pl.lit(True).alias("other_disease"))
    )
    out = out.join(other_cases, on=["patient_key", "year"], how="left")
    counts = ["stays_12m", "emergency_stays_12m", "bed_days_12m", "disease_emergency_stays_12m", "disease_bed_days_12m", "readmissions_30d"]
    return out.with_columns(
        *[pl.col(c).fill_null(0) for c in counts],
        *[pl.col(n).fill_null(False) for n in [*features.codes, "other_disease"]],
    ).select(
        "patient_key", "disease", "year", "residence_zone", "territory_id", "territory_name", "sex",
        *COMPUTED, *features.codes, *OUTCOMES,
    )
