"""Cases, prevalence and incidence per zone, territory and the whole area (``indicators.parquet``).

One row per level × unit × index year × disease × sub-type (``all`` for every sub-type):

- **levels**: ``zone`` (every zone of the population table, with or without cases), ``territory``
  (sum of its zones) and ``area`` (``all``: sum of every zone of the population table);
- **counts**: ``cases`` and ``incident_cases`` (rows of ``cases`` with ``is_case``) by residence zone;
  ``population``: the denominator, the people of the disease's ages (its spec's ``[population]``)
  in the population table for the year (:func:`respop.case_finding.rates.denominator`);
- **crude rates** per 100,000 inhabitants with exact Poisson limits;
- **age-sex directly standardised rates** per 100,000, strata = the population table's age bands ×
  sex, weights from :func:`respop.case_finding.rates.reference_population`, Fay & Feuer gamma
  limits (:func:`respop.case_finding.rates.dsr_fay_feuer`).

Incidence uses the whole population as denominator (not the population free of the disease), as
prevalence does; at the low rates of chronic diseases the difference is negligible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from respop.case_finding.rates import (
    SEXES, band_of_age, band_shares, fay_feuer_interval, poisson_ci, population_bands,
)
from respop.errors import InputError

PER = 100_000
"""Rates are per 100,000 inhabitants."""

ALL = "all"
"""The sub-type of every case, and the unit of the area level."""

LEVELS = ("zone", "territory", "area")

RATE_COLUMNS = [
    f"{measure}_{kind}{suffix}"
    for measure in ("prevalence", "incidence")
    for kind in ("crude", "std")
    for suffix in ("", "_low", "_high")
]

INDICATOR_COLUMNS = [
    "level", "unit", "unit_name", "year", "disease", "subtype",
    "cases", "incident_cases", "population",
    *RATE_COLUMNS,
    "complete_history", "cases_outside", "cases_unstandardised",
]

INDICATOR_SCHEMA: dict[str, pl.DataType] = {
    "level": pl.String(), "unit": pl.String(), "unit_name": pl.String(), "year": pl.Int16(),
    "disease": pl.String(), "subtype": pl.String(),
    "cases": pl.Int64(), "incident_cases": pl.Int64(), "population": pl.Int64(),
    **{c: pl.Float64() for c in RATE_COLUMNS},
    "complete_history": pl.Boolean(), "cases_outside": pl.Int64(), "cases_unstandardised": pl.Int64(),
}

CASE_COLUMNS = [
    "disease", "index_year", "is_case", "subtype", "incident", "complete_history", "age", "sex",
    "residence_zone",
]
TERRITORY_COLUMNS = ["territory_id", "territory_name"]

_STRATUM = ["age_band", "sex"]
_CELL = ["unit", "year", "disease", "subtype"]


# ---------------------------------------------------------------------------------------------
# Inputs


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    for column in columns:
        if column not in df.columns:
            raise InputError(f"{what} has no column {column!r}", None, column)


def _population(population: pl.DataFrame) -> pl.DataFrame:
    """zone_code, sex, age_band, population (+ year): cast, checked, duplicates summed."""
    _require(population, ["zone_code", "sex", "age_band", "population"], "the population table")
    has_year = "year" in population.columns
    keys = ["zone_code", *(["year"] if has_year else []), "age_band", "sex"]
    pop = population.select(
        pl.col("zone_code").cast(pl.String),
        *([pl.col("year").cast(pl.Int16)] if has_year else []),
        pl.col("age_band").cast(pl.String),
        pl.col("sex").cast(pl.Int8),
        pl.col("population").cast(pl.Int64),
    )
    for column in keys + ["population"]:
        if pop[column].null_count():
            raise InputError(f"the population table has rows without {column}", None, column)
    if not pop["sex"].is_in(SEXES).all():
        raise InputError("the population table's sex must be 1 (male) or 2 (female)", None, "sex")
    if (pop["population"] < 0).any():
        raise InputError("the population table has negative populations", None, "population")
    population_bands(pop)  # the bands must tile 0…∞
    return pop.group_by(keys).agg(pl.col("population").sum())


def _population_by_year(pop: pl.DataFrame, years: list[int]) -> pl.DataFrame:
    """zone_code, year, age_band, sex, population for each index year."""
    year_frame = pl.DataFrame({"year": years}, schema={"year": pl.Int16})
    if "year" not in pop.columns:
        return pop.join(year_frame, how="cross")
    available = set(pop["year"].unique().to_list())
    missing = [y for y in years if y not in available]
    if missing:
        raise InputError(
            f"the population table has no row for the index year(s) {', '.join(map(str, missing))} "
            f"(it covers {', '.join(map(str, sorted(available)))}); give populations for every index "
            "year, or a table without a year column to use the same population every year",
            None,
            "year",
        )
    return pop.join(year_frame, on="year", how="semi")


WEIGHT = "n"
"""Optional column of ``cases``: how many people a row stands for (rows aggregated beforehand,
as the Spark engine does); 1 when absent."""


def _cases(cases: pl.DataFrame, subtypes: Mapping[str, Sequence[str]], need_territories: bool) -> pl.LazyFrame:
    """The rows of ``cases`` that are cases, with the columns used here, cast and checked."""
    _require(cases, CASE_COLUMNS + (TERRITORY_COLUMNS if need_territories else []), "the cases table")
    unknown = cases.select(pl.col("disease").cast(pl.String).unique()).filter(
        pl.col("disease").is_null() | ~pl.col("disease").is_in(list(subtypes))
    )
    if unknown.height:
        raise InputError(
            f"the cases table has diseases without sub-types given: {sorted(map(str, unknown['disease']))}",
            None,
            "disease",
        )
    found = cases.lazy().filter(pl.col("is_case").fill_null(False)).select(
        pl.col("disease").cast(pl.String),
        pl.col("index_year").cast(pl.Int16).alias("year"),
        pl.col("subtype").cast(pl.String),
        pl.col("incident").fill_null(False).cast(pl.Boolean),
        pl.col("age").cast(pl.Int16),
        pl.col("sex").cast(pl.Int8),
        pl.col("residence_zone").cast(pl.String).alias("zone_code"),
        (pl.col(WEIGHT).cast(pl.Int64) if WEIGHT in cases.columns else pl.lit(1, pl.Int64)).alias(WEIGHT),
    )
    allowed = pl.DataFrame(
        [(d, s) for d, names in subtypes.items() for s in names],
        schema={"disease": pl.String, "subtype": pl.String},
        orient="row",
    )
    bad = found.join(allowed.lazy(), on=["disease", "subtype"], how="anti").select("disease", "subtype").unique()
    bad_rows = bad.collect(engine="streaming")
    if bad_rows.height:
        pairs = sorted(f"{d}: {s}" for d, s in bad_rows.iter_rows())
        raise InputError(f"cases with a sub-type that is not among the given ones: {pairs}", None, "subtype")
    return found


def _zone_territory(cases: pl.DataFrame, zone_territory: pl.DataFrame | None) -> pl.DataFrame:
    """zone_code → territory_id (Int32), territory_name; a zone in two territories is an error."""
    if zone_territory is not None:
        _require(zone_territory, ["zone_code", "territory_id"], "the zone → territory table")
        name = pl.col("territory_name") if "territory_name" in zone_territory.columns else pl.lit(None)
        mapping = zone_territory.select(
            pl.col("zone_code").cast(pl.String),
            pl.col("territory_id").cast(pl.Int32),
            name.cast(pl.String).alias("territory_name"),
        ).drop_nulls(["zone_code", "territory_id"])
        what = "the zone → territory table"
    else:
        mapping = cases.select(
            pl.col("residence_zone").cast(pl.String).alias("zone_code"),
            pl.col("territory_id").cast(pl.Int32),
            pl.col("territory_name").cast(pl.String),
        ).drop_nulls(["zone_code", "territory_id"])
        what = "the cases table"
    mapping = mapping.unique(["zone_code", "territory_id"])
    twice = mapping.filter(pl.len().over("zone_code") > 1)
    if twice.height:
        zone = twice["zone_code"].sort()[0]
        raise InputError(f"{what} puts zone {zone!r} in several territories", None, "territory_id")
    names = mapping.group_by("territory_id").agg(pl.col("territory_name").drop_nulls().min())
    return mapping.select("zone_code", "territory_id").join(names, on="territory_id", how="left")


def _reference(reference: pl.DataFrame, bands: list[str]) -> pl.DataFrame:
    missing = [c for c in ("age_band", "sex", "weight") if c not in reference.columns]
    if missing:
        raise ValueError(f"the reference lacks the columns {missing}: build it with reference_population()")
    ref = reference.select(
        pl.col("age_band").cast(pl.String), pl.col("sex").cast(pl.Int8), pl.col("weight").cast(pl.Float64)
    )
    foreign = sorted(set(ref["age_band"].to_list()) - set(bands))
    if foreign:
        raise ValueError(
            f"the reference's age bands {foreign} are not bands of the population table: build it "
            "with reference_population(name, population)"
        )
    return ref.group_by(_STRATUM).agg(pl.col("weight").sum())


def _complete_history(
    cases: pl.DataFrame, combos: pl.DataFrame, years: list[int], complete_years: Mapping[str, Sequence[int]] | None
) -> pl.DataFrame:
    """disease, year, complete_history: from ``complete_years`` for the diseases it lists,
    otherwise whether every case of the disease and year (every row when there are no cases) has
    ``complete_history``; null when ``cases`` has no row for them."""
    from_data = (
        cases.lazy()
        .group_by(pl.col("disease").cast(pl.String), pl.col("index_year").cast(pl.Int16).alias("year"))
        .agg(
            pl.when(pl.col("is_case").fill_null(False).any())
            .then(pl.col("complete_history").filter(pl.col("is_case").fill_null(False)).all())
            .otherwise(pl.col("complete_history").all())
            .alias("_from_data")
        )
        .collect(engine="streaming")
    )
    listed = complete_years or {}
    given = pl.DataFrame(
        [(d, y, y in set(listed[d])) for d in listed for y in years],
        schema={"disease": pl.String, "year": pl.Int16, "_given": pl.Boolean},
        orient="row",
    )
    year_frame = pl.DataFrame({"year": years}, schema={"year": pl.Int16})
    grid = combos.select("disease").unique().join(year_frame, how="cross")
    return (
        grid.join(from_data, on=["disease", "year"], how="left")
        .join(given, on=["disease", "year"], how="left")
        .select("disease", "year", pl.coalesce("_given", "_from_data").alias("complete_history"))
    )


# ---------------------------------------------------------------------------------------------
# One level


def _level_rows(
    level: str,
    unit_map: pl.DataFrame,
    units: pl.DataFrame,
    pop: pl.DataFrame,
    counts: pl.DataFrame,
    ref: pl.DataFrame,
    combos: pl.DataFrame,
    years: list[int],
    confidence: float,
    shares: pl.DataFrame,
) -> pl.DataFrame:
    """The rows of one level. ``unit_map``: zone_code → unit; ``units``: unit, unit_name,
    _unit_order (every unit of the level, with or without population or cases); ``shares``:
    disease, age_band, _share (the share of each band within the disease's ages)."""
    # the denominator of each disease (rates.denominator: the population of its ages, a band cut
    # by an age limit pro rata), per unit, year and stratum
    pop_u = (
        pop.lazy().join(unit_map.lazy(), on="zone_code")
        .group_by("unit", "year", *_STRATUM).agg(pl.col("population").sum())
        .join(shares.lazy(), on="age_band")
        .with_columns((pl.col("population").cast(pl.Float64) * pl.col("_share")).alias("_eligible"))
    )
    counts_u = (
        counts.lazy().join(unit_map.lazy(), on="zone_code")
        .group_by(*_CELL, *_STRATUM).agg(pl.col("cases").sum(), pl.col("incident").sum())
    )

    # Fay & Feuer over the populated strata of each unit and year (see rates.dsr_fay_feuer), in
    # sparse form: with q_i = ref_i / n_i and R = Σ ref_i, y = Σ q_i d_i / R, v = Σ q_i² d_i / R²
    # and w_M = max q_i / R; R and w_M do not depend on the counts, the sums only need the strata
    # that have cases.
    # Strata a disease's ages leave out are not standardised over; a stratum an age limit cuts
    # keeps its rate (cases / people of the band within the ages) and the same share of its weight.
    populated = (
        pop_u.filter((pl.col("population") > 0) & (pl.col("_share") > 0))
        .join(ref.lazy(), on=_STRATUM, how="left")
        .with_columns(pl.col("weight").fill_null(0.0))
        .with_columns(
            (pl.col("weight") / pl.col("population")).alias("_q"), (pl.col("weight") * pl.col("_share")).alias("_w")
        )
    )
    denominators = populated.group_by("disease", "unit", "year").agg(
        pl.col("_w").sort_by(_STRATUM).cum_sum().last().alias("_R"), pl.col("_q").max().alias("_M")
    )
    eligible = pop_u.group_by("disease", "unit", "year").agg(
        pl.col("_eligible").sort_by(_STRATUM).cum_sum().last().alias("_denominator")
    )
    # float sums in a fixed order (the strata's): the same rates whatever the order of the rows
    # (threads, the Spark engine's pre-aggregated counts)
    q = pl.col("_q")
    # (a running sum: a plain sum may be reordered by the optimiser, which treats it as order-free)
    in_order = lambda e: e.sort_by(_STRATUM).cum_sum().last()  # noqa: E731
    numerators = (
        counts_u.join(
            populated.select("disease", "unit", "year", *_STRATUM, "_q"), on=["disease", "unit", "year", *_STRATUM]
        )
        .group_by(_CELL)
        .agg(
            pl.col("cases").sum().alias("_std_cases"),
            in_order(q * pl.col("cases")).alias("_A_prevalence"),
            in_order(q * q * pl.col("cases")).alias("_B_prevalence"),
            in_order(q * pl.col("incident")).alias("_A_incidence"),
            in_order(q * q * pl.col("incident")).alias("_B_incidence"),
        )
    )

    year_frame = pl.LazyFrame({"year": years}, schema={"year": pl.Int16})
    out = (
        units.lazy().join(year_frame, how="cross").join(combos.lazy(), how="cross")
        .join(eligible, on=["disease", "unit", "year"], how="left")
        .join(counts_u.group_by(_CELL).agg(pl.col("cases").sum(), pl.col("incident").sum()), on=_CELL, how="left")
        .join(denominators, on=["disease", "unit", "year"], how="left")
        .join(numerators, on=_CELL, how="left")
        .with_columns(
            pl.col("_denominator").fill_null(0.0),
            pl.col("_denominator").fill_null(0.0).round(0).cast(pl.Int64).alias("population"),
            pl.col("cases", "incident", "_std_cases").fill_null(0).cast(pl.Int64),
            pl.col("^_[AB]_.*$").fill_null(0.0),
        )
        .with_columns((pl.col("cases") - pl.col("_std_cases")).alias("cases_unstandardised"))
        .collect(engine="streaming")
    )

    population = out["_denominator"].to_numpy().astype(np.float64)
    total = out["_R"].to_numpy().astype(np.float64)  # null → NaN: no populated stratum
    with np.errstate(divide="ignore", invalid="ignore"):
        per_person = np.where(population > 0, PER / population, np.nan)
        total = np.where(total > 0, total, np.nan)
        max_weight = out["_M"].to_numpy().astype(np.float64) / total
    columns = []
    for measure, events in (("prevalence", "cases"), ("incidence", "incident")):
        k = out[events].to_numpy().astype(np.float64)
        low, high = poisson_ci(k, confidence)
        y = out[f"_A_{measure}"].to_numpy() / total
        v = out[f"_B_{measure}"].to_numpy() / total**2
        std_low, std_high = fay_feuer_interval(y, v, max_weight, confidence)
        for name, values in (
            (f"{measure}_crude", k * per_person),
            (f"{measure}_crude_low", low * per_person),
            (f"{measure}_crude_high", high * per_person),
            (f"{measure}_std", y * PER),
            (f"{measure}_std_low", std_low * PER),
            (f"{measure}_std_high", std_high * PER),
        ):
            columns.append(pl.Series(name, values, dtype=pl.Float64).fill_nan(None))
    return out.with_columns(*columns, pl.lit(level).alias("level"), pl.col("incident").alias("incident_cases"))


# ---------------------------------------------------------------------------------------------
# Public


def indicators(
    cases: pl.DataFrame,
    population: pl.DataFrame,
    reference: pl.DataFrame,
    subtypes: Mapping[str, Sequence[str]],
    complete_years: Mapping[str, Sequence[int]] | None = None,
    confidence: float = 0.95,
    *,
    zone_territory: pl.DataFrame | None = None,
    years: Sequence[int] | None = None,
    ages: Mapping[str, tuple[int | None, int | None]] | None = None,
) -> pl.DataFrame:
    """Cases, prevalence and incidence per level (zone, territory, area), unit, year, disease and
    sub-type; columns :data:`INDICATOR_COLUMNS`, rates per 100,000 inhabitants.

    - ``cases``: the case-finding rows (docs/case_finding.md); only rows with ``is_case`` count,
      each as many times as its :data:`WEIGHT` column says when there is one.
      A case whose ``residence_zone`` is null or absent from the population table is left out of
      every level and counted in ``cases_outside`` (area rows; 0 on the others).
    - ``population``: zone_code, sex (1/2), age_band (bands tiling 0…∞), population, and
      optionally year. **Without a year column the same population is used for every index
      year**; with one, each index year is joined to its own rows (a missing year: InputError).
    - ``reference``: standardisation weights in the population table's bands
      (:func:`respop.case_finding.rates.reference_population`).
    - ``subtypes``: disease → its sub-type names (a sub-type without cases still gets rows);
      a disease or sub-type of a case that is not listed is an InputError.
    - ``complete_years``: disease → the index years whose look-back the data cover entirely;
      for a disease not listed, ``complete_history`` is true when every case of the disease and
      year has ``complete_history`` (every row, when the year has no case).
    - ``zone_territory`` (zone_code, territory_id, territory_name): the zones' territories. When
      not given, the mapping comes from the rows of ``cases`` with both a zone and a territory, so
      **a zone without any row in ``cases`` is then in no territory** (its population is missing
      from its territory): pass the territories run's table when you have it. Territory units are
      the territories of the mapping; zones in no territory still count in their zone and the
      area.
    - ``years``: the index years (default: every ``index_year`` of ``cases``); cases of other
      years are ignored. Give them when an index year may have no row in ``cases``.
    - ``ages``: disease → (min_age, max_age), the ages of its spec's ``[population]`` (None: no
      limit; a disease not listed: every age). **The denominator** of a disease's rates, and its
      ``population`` column (rounded), is the population of those ages in the year
      (:func:`respop.case_finding.rates.denominator`, the definition ``respop cases validate``
      uses too): heart failure (adults) per 100,000 inhabitants aged 18 or more. Its standardised
      rates are standardised over the strata of those ages (a band an age limit cuts counts pro
      rata of its years, in the population and in the reference's weight).

    **Standardisation**: strata are the population table's age bands × sex; a case's age is
    mapped to its band. Cases with a null age or a sex other than 1/2, and cases of a stratum where
    the unit's population is 0, count in the crude rates but not in the standardised numerator;
    ``cases_unstandardised`` counts them. Strata of a unit with no population are left out and the
    reference renormalised over the others (see ``dsr_fay_feuer``). A unit with no population has
    null rates.
    """
    if ALL in {s for names in subtypes.values() for s in names}:
        raise ValueError(f"a sub-type cannot be named {ALL!r}: it is the name of every sub-type together")
    pop = _population(population)
    bands = [label for label, _, _ in population_bands(pop)]
    ref = _reference(reference, bands)
    found = _cases(cases, subtypes, need_territories=zone_territory is None)
    if years is None:
        years = sorted(cases.get_column("index_year").drop_nulls().unique().cast(pl.Int64).to_list())
    years = sorted({int(y) for y in years})
    if not years:
        return pl.DataFrame(schema=INDICATOR_SCHEMA)
    pop = _population_by_year(pop, years)
    limits = ages or {}
    shares = pl.DataFrame(
        [
            (d, band, share)
            for d in subtypes
            for band, share in band_shares(bands, *limits.get(d, (None, None))).items()
        ],
        schema={"disease": pl.String, "age_band": pl.String, "_share": pl.Float64},
        orient="row",
    )
    zones = pop.select("zone_code").unique().sort("zone_code")
    mapping = _zone_territory(cases, zone_territory)

    combos = pl.DataFrame(
        [(d, s, i, j) for i, (d, names) in enumerate(subtypes.items()) for j, s in enumerate([*names, ALL])],
        schema={
            "disease": pl.String, "subtype": pl.String, "_disease_order": pl.Int32, "_subtype_order": pl.Int32
        },
        orient="row",
    )

    # one pass over the cases: counts per zone, year, disease, sub-type and stratum (age band × sex;
    # null when unknown); then the cases outside the population's zones, and the sub-type "all"
    counted = (
        found.join(pl.LazyFrame({"year": years}, schema={"year": pl.Int16}), on="year", how="semi")
        .with_columns(
            band_of_age(pl.col("age"), bands).alias("age_band"),
            pl.when(pl.col("sex").is_in(SEXES)).then(pl.col("sex")).alias("sex"),
        )
        .group_by("zone_code", "year", "disease", "subtype", *_STRATUM)
        .agg(
            pl.col(WEIGHT).sum().cast(pl.Int64).alias("cases"),
            pl.col(WEIGHT).filter(pl.col("incident")).sum().cast(pl.Int64).alias("incident"),
        )
        .collect(engine="streaming")
    )
    counted = pl.concat([
        counted,
        counted.group_by("zone_code", "year", "disease", *_STRATUM)
        .agg(pl.col("cases", "incident").sum())
        .with_columns(pl.lit(ALL).alias("subtype"))
        .select(counted.columns),
    ])
    inside = pl.col("zone_code").is_in(zones["zone_code"].implode()).fill_null(False)
    counts = counted.filter(inside)
    outside = (
        counted.filter(~inside)
        .group_by("year", "disease", "subtype")
        .agg(pl.col("cases").sum().alias("cases_outside"))
        .with_columns(pl.lit("area").alias("level"))
    )

    null_name = pl.lit(None, dtype=pl.String).alias("unit_name")
    levels = {
        "zone": (
            zones.select("zone_code", pl.col("zone_code").alias("unit")),
            zones.select(
                pl.col("zone_code").alias("unit"), null_name, pl.int_range(pl.len()).alias("_unit_order")
            ),
        ),
        "territory": (
            mapping.select("zone_code", pl.col("territory_id").cast(pl.String).alias("unit")),
            mapping.select("territory_id", "territory_name").unique("territory_id").sort("territory_id").select(
                pl.col("territory_id").cast(pl.String).alias("unit"),
                pl.col("territory_name").alias("unit_name"),
                pl.col("territory_id").cast(pl.Int64).alias("_unit_order"),
            ),
        ),
        "area": (
            zones.select("zone_code", pl.lit(ALL).alias("unit")),
            pl.DataFrame({"unit": [ALL]}, schema={"unit": pl.String}).select(
                "unit", null_name, pl.lit(0).alias("_unit_order")
            ),
        ),
    }
    rows = [
        _level_rows(
            level, unit_map, units.with_columns(pl.col("_unit_order").cast(pl.Int64)), pop, counts, ref, combos, years,
            confidence, shares,
        )
        for level, (unit_map, units) in levels.items()
    ]
    out = (
        pl.concat(rows, how="vertical")
        .join(_complete_history(cases, combos, years, complete_years), on=["disease", "year"], how="left")
        .join(outside, on=["level", "year", "disease", "subtype"], how="left")
        .with_columns(
            pl.col("cases_outside").fill_null(0),
            pl.col("level")
            .replace_strict({lv: i for i, lv in enumerate(LEVELS)}, return_dtype=pl.Int8)
            .alias("_level_order"),
        )
        .sort("_level_order", "_unit_order", "year", "_disease_order", "_subtype_order")
    )
    return out.select(pl.col(c).cast(t) for c, t in INDICATOR_SCHEMA.items())
