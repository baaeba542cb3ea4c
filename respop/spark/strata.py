"""The Spark target of the strata: features, strata, events, care use and transitions in PySpark.

Mirrors :mod:`respop.strata.engine` and :func:`respop.strata.features.compute_features` (the polars
target) function by function, with the semantics of docs/strata.md. The lists are not repeated
here: the computed features and outcomes (``COMPUTED``, ``OUTCOMES``) and the case-of features
come from the features catalogue (:mod:`respop.spec.features`), the code features from
``algorithms/features.toml``, the care-use measures and the state names from the polars module;
this module holds only the Spark expression of each computed feature (:data:`FROM_CASE`,
:data:`STAY_SUMS`, :data:`DISEASE_STAY_SUMS`). The features have the columns, order and types the
spec gives (:func:`respop.strata.features.features_schema`); the other outputs those of the polars
target's, asked of the polars function on frames without rows, so the two engines' results
compare row for row (tests/spark/). Everything runs in Spark: no Python UDF, no
patient-level data collected to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from respop.spec.algorithm import AlgorithmSpec
from respop.errors import ConfigError
from respop.spark.cases import counted_stays, criterion_expr, deaths, prefix_match, qualifying_stays, stays_only
from respop.spark.frames import cast
from respop.strata import engine as polars_engine
from respop.spark.conditions import to_spark
from respop.strata.engine import ALL, CARE_USE, DEATH, NOT_SEEN
from respop.spec.features import CASE_OF, COMPUTED, OUTCOMES, FeaturesSpec
from respop.strata.features import features_schema

# --- the Spark expression of each computed feature and outcome ----------------------------------
# (functions: a Spark column can only be built once a session runs)

FROM_CASE: dict[str, Callable[[], Column]] = {
    "age": lambda: F.col("age"),
    "disease_stays_12m": lambda: F.col("stays_in_index_year"),
    "disease_stays_window": lambda: F.col("qualifying_stays"),
    "days_since_disease_stay": lambda: F.datediff(
        F.make_date(F.col("index_year").cast("int"), F.lit(12), F.lit(31)), F.col("last_stay_date")
    ),
    "died_in_year": lambda: F.col("died_in_year"),
}
"""Read from the case row of the year (``cases`` of respop.case_finding)."""

STAY_SUMS: dict[str, Callable[[], Column]] = {
    "stays_12m": lambda: F.count(F.lit(1)),
    "emergency_stays_12m": lambda: F.count_if(F.col("via_emergency")),
    "bed_days_12m": lambda: F.sum("length_of_stay"),
}
"""Aggregates over the person's kept stays exiting in the year (0 without any)."""

DISEASE_STAY_SUMS: dict[str, Callable[[], Column]] = {
    "disease_emergency_stays_12m": lambda: F.count_if(F.col("via_emergency")),
    "disease_bed_days_12m": lambda: F.sum("length_of_stay"),
    "readmissions_30d": lambda: F.count_if(F.col("_gap").between(0, 30)),
}
"""Aggregates over the person's qualifying stays exiting in the year (0 without any); ``_gap``: days
from the exit of the patient's previous qualifying stay to this one's entry."""

def missing_expressions() -> list[str]:
    """The computed features and outcomes of :mod:`respop.spec.features` without a Spark expression here."""
    known = {*FROM_CASE, *STAY_SUMS, *DISEASE_STAY_SUMS}
    return [name for name in (*COMPUTED, *OUTCOMES) if name not in known]


def _empty(sdf: DataFrame) -> pl.DataFrame:
    """A polars frame with ``sdf``'s columns and no row (to ask the polars target for its schema),
    from the schema alone: no Spark job."""
    out = pl.from_arrow(to_arrow_schema(sdf.schema).empty_table())
    assert isinstance(out, pl.DataFrame)
    return out


def _like(sdf: DataFrame, polars_result: pl.LazyFrame | pl.DataFrame | dict) -> DataFrame:
    """``sdf`` with the columns, order and types of the polars target's result (or of a schema)."""
    if isinstance(polars_result, dict):
        return cast(sdf, polars_result)
    schema = polars_result.collect_schema() if isinstance(polars_result, pl.LazyFrame) else polars_result.schema
    return cast(sdf, schema)


# --- features --------------------------------------------------------------------------------


def qualifying_ids(spec: AlgorithmSpec, stays: DataFrame, diagnoses: DataFrame) -> DataFrame:
    """``stay_id`` of the disease's qualifying stays (séances excluded)."""
    return qualifying_stays(spec, stays_only(stays), diagnoses).select("stay_id")


def compute_features(
    spec: AlgorithmSpec,
    cases: DataFrame,
    stays: DataFrame,
    diagnoses: DataFrame,
    features: FeaturesSpec,
    qualifying: DataFrame | None = None,
    case_of: Sequence[str] = (),
) -> DataFrame:
    """One row per case-year of ``spec``'s disease: identity, residence, every feature and the
    outcomes of the year (as :func:`respop.strata.features.compute_features`). ``qualifying``: the
    ids (``stay_id``) of the disease's qualifying stays when already computed (:func:`qualifying_ids`);
    ``case_of``: the case-of features (one per other configured disease, ``Catalogue.case_of``).

    A computed feature of ``COMPUTED`` without a Spark expression here is an error naming it.
    """
    missing = missing_expressions()
    if missing:
        raise NotImplementedError(
            f"computed feature(s) {missing} have no Spark expression: add one to respop/spark/strata.py "
            "(FROM_CASE, STAY_SUMS or DISEASE_STAY_SUMS)"
        )
    schema = features_schema(features, case_of)
    disease = spec.disease
    mine = cases.where(F.col("is_case") & (F.col("disease") == disease))
    person_years = mine.select(
        "patient_key",
        "disease",
        F.col("index_year").cast("smallint").alias("year"),
        "residence_zone",
        "territory_id",
        "territory_name",
        "sex",
        *[make().alias(name) for name, make in FROM_CASE.items()],
    )
    patients = mine.select("patient_key").distinct()
    kept = stays_only(stays).where(F.col("patient_key").isNotNull() & F.col("exit_date").isNotNull())
    theirs = kept.join(patients, on="patient_key", how="left_semi").withColumn(
        "_stay_year", F.year("exit_date").cast("smallint")
    )
    # care-use counts: the stays counted as stays of their own (as respop.strata.features)
    counted = counted_stays(theirs)
    all_use = counted.groupBy("patient_key", F.col("_stay_year").alias("year")).agg(
        *[make().alias(name) for name, make in STAY_SUMS.items()]
    )
    ids = qualifying if qualifying is not None else qualifying_stays(spec, theirs, diagnoses).select("stay_id")
    previous = Window.partitionBy("patient_key").orderBy("entry_date", "exit_date", "stay_id")
    disease_stays = ids.join(
        counted.select("stay_id", "patient_key", "entry_date", "exit_date", "_stay_year", "via_emergency", "length_of_stay"),
        on="stay_id",
    ).withColumn("_gap", F.datediff(F.col("entry_date"), F.lag("exit_date").over(previous)))
    disease_use = disease_stays.groupBy("patient_key", F.col("_stay_year").alias("year")).agg(
        *[make().alias(name) for name, make in DISEASE_STAY_SUMS.items()]
    )
    keys = ["patient_key", "year"]
    out = person_years.join(all_use, on=keys, how="left").join(disease_use, on=keys, how="left")
    # code features: flags per stay, per (patient, stay year), then over each feature's window
    if features.codes:
        prefixes = sorted({p for f in features.codes.values() for p in f.codes})
        flags = (
            diagnoses.select("stay_id", "code", "position")
            .where(prefix_match(F.col("code"), prefixes))
            .groupBy("stay_id")
            .agg(*[F.bool_or(criterion_expr(f)).alias(name) for name, f in features.codes.items()])
        )
        per_year = (
            theirs.select("stay_id", "patient_key", "_stay_year")
            .join(flags, on="stay_id", how="inner")
            .groupBy("patient_key", "_stay_year")
            .agg(*[F.bool_or(name).alias(name) for name in features.codes])
        )
        # each year with its stay years N - offset, offset up to the longest look-back; a feature
        # holds when a stay year within its own look-back carries it
        longest = max(f.lookback_years for f in features.codes.values())
        windows = (
            person_years.select("year")
            .distinct()
            .select("year", F.explode(F.sequence(F.lit(0), F.lit(longest))).alias("_offset"))
            .withColumn("_stay_year", (F.col("year") - F.col("_offset")).cast("smallint"))
        )
        code_features = (
            per_year.join(windows, on="_stay_year", how="inner")
            .groupBy("patient_key", "year")
            .agg(*[F.bool_or(F.col(name) & (F.col("_offset") <= f.lookback_years)).alias(name) for name, f in features.codes.items()])
        )
        out = out.join(code_features, on=keys, how="left")
    for name in case_of:
        other_cases = (
            cases.where(F.col("is_case") & (F.col("disease") == name.removeprefix(CASE_OF)))
            .select("patient_key", F.col("index_year").cast("smallint").alias("year"))
            .distinct()
            .withColumn(name, F.lit(True))
        )
        out = out.join(other_cases, on=keys, how="left")
    out = out.withColumns(
        {
            **{c: F.coalesce(F.col(c), F.lit(0)) for c in [*STAY_SUMS, *DISEASE_STAY_SUMS]},
            **{c: F.coalesce(F.col(c), F.lit(False)) for c in [*case_of, *features.codes]},
        }
    )
    return _like(out, schema)


# --- strata and events -----------------------------------------------------------------------


def assign(spec: AlgorithmSpec, features: DataFrame) -> DataFrame:
    """Add ``stratum`` (name) and ``stratum_level`` (1 = the least severe) to each person-year."""
    if spec.strata is None:
        raise ConfigError(f"the {spec.disease} algorithm has no [strata] part (docs/strata.md)")
    levels = spec.strata.levels
    name: Column = F.lit(levels[-1].name)
    for level in reversed(levels[:-1]):
        name = F.when(to_spark(level.condition), F.lit(level.name)).otherwise(name)
    level_of = F.create_map(*[F.lit(v) for lv in levels for v in (lv.name, spec.strata.level_of(lv.name))])
    out = features.withColumn("stratum", name).withColumn("stratum_level", level_of[F.col("stratum")])
    return _like(out, polars_engine.assign(spec, _empty(features).lazy()))


def outcome_events(
    spec: AlgorithmSpec,
    stays: DataFrame,
    diagnoses: DataFrame,
    qualifying: DataFrame | None = None,
    known_deaths: DataFrame | None = None,
) -> DataFrame:
    """Entry dates of the disease's qualifying stays and dates of deaths, per patient: in hospital,
    and with ``known_deaths`` (the SNDS referential) out of hospital.
    ``qualifying``: the qualifying stay ids when already computed (:func:`qualifying_ids`)."""
    kept = stays_only(stays)
    ids = qualifying if qualifying is not None else qualifying_ids(spec, kept, diagnoses)
    disease_stays = ids.join(kept.select("stay_id", "patient_key", "entry_date"), on="stay_id").select(
        "patient_key", F.col("entry_date").alias("date"), F.lit("disease_stay").alias("kind")
    )
    died = kept.where(F.col("died") & F.col("patient_key").isNotNull() & F.col("exit_date").isNotNull()).select(
        "patient_key", F.col("exit_date").alias("date"), F.lit("death").alias("kind")
    )
    if known_deaths is not None:
        died = died.unionByName(
            known_deaths.select("patient_key", F.col("death_date").cast("date").alias("date"), F.lit("death").alias("kind"))
        )
    out = disease_stays.unionByName(died).where(F.col("date").isNotNull()).withColumn("disease", F.lit(spec.disease))
    return _like(out, polars_engine.outcome_events(spec, _empty(stays).lazy(), _empty(diagnoses).lazy()))


def death_years(stays: DataFrame, known_deaths: DataFrame | None = None) -> DataFrame:
    """patient_key, death_year: the first death recorded, in hospital (séances excluded) or, with
    ``known_deaths`` (the SNDS referential), out of hospital."""
    out = deaths(stays_only(stays), known_deaths).withColumnRenamed("_death_year", "death_year")
    return _like(out, polars_engine.death_years(_empty(stays).lazy()))


# --- aggregates ------------------------------------------------------------------------------


def transitions(person_strata: DataFrame, death_years: DataFrame, last_year: int, order: dict[str, list[str]]) -> DataFrame:
    """Stratum in N → state in N + 1 (a stratum, ``deces``, ``non_revu``): counts and row proportions,
    sorted as :func:`respop.strata.engine.transitions`.

    ``death_years``: patient_key, death year (in-hospital). People who died in N are not followed
    from N. ``order``: disease → stratum names, most severe first (for sorting).
    """
    # the published person-years: with a residence zone (respop.strata.engine.RESIDENCE)
    current = person_strata.where(~F.col("died_in_year") & (F.col("year") < last_year) & F.col(polars_engine.RESIDENCE).isNotNull()).select(
        "patient_key", "disease", "year", "stratum"
    )
    following = person_strata.select(
        "patient_key", "disease", (F.col("year") - 1).cast("smallint").alias("year"), F.col("stratum").alias("_next")
    )
    died_next = death_years.select(
        "patient_key", (F.col("death_year") - 1).cast("smallint").alias("year"), F.lit(True).alias("_died_next")
    )
    joined = (
        current.join(following, on=["patient_key", "disease", "year"], how="left")
        .join(died_next, on=["patient_key", "year"], how="left")
        .withColumn(
            "to",
            F.when(F.coalesce(F.col("_died_next"), F.lit(False)), F.lit(DEATH))
            .when(F.col("_next").isNull(), F.lit(NOT_SEEN))
            .otherwise(F.col("_next")),
        )
    )
    counts = joined.groupBy("disease", "year", F.col("stratum").alias("from"), "to").agg(F.count(F.lit(1)).alias("count"))
    row = Window.partitionBy("disease", "year", "from")
    counts = counts.withColumn("proportion", F.col("count") / F.sum("count").over(row))
    rank = person_strata.sparkSession.createDataFrame(
        [(d, s, i) for d, names in order.items() for i, s in enumerate([*names, DEATH, NOT_SEEN])],
        "disease string, state string, rank int",
    )
    ranked = (
        counts.join(rank.withColumnsRenamed({"state": "from", "rank": "_r_from"}), on=["disease", "from"], how="left")
        .join(rank.withColumnsRenamed({"state": "to", "rank": "_r_to"}), on=["disease", "to"], how="left")
        .orderBy("disease", "year", "_r_from", "_r_to")
    )
    return _like(ranked, polars_engine.transitions(_empty(person_strata), _empty(death_years), last_year, order))


def care_use(person_strata: DataFrame, zone_territory: pl.DataFrame | None = None) -> DataFrame:
    """People and care use of the year per level (zone, territory, area), year, disease and stratum
    (``all`` too), with rates per person-year, sorted as :func:`respop.strata.engine.care_use`.

    The units and territory names come from the person strata; ``zone_territory`` is taken for the
    polars target's signature, which does not read it either.
    """
    # each person-year once per level (zone, territory, area), then one aggregation
    units = F.explode(
        F.array(
            F.struct(F.lit("zone").alias("level"), F.col("residence_zone").alias("unit"), F.lit(None).cast("string").alias("unit_name")),
            F.struct(F.lit("territory").alias("level"), F.col("territory_id").cast("string").alias("unit"), F.col("territory_name").alias("unit_name")),
            F.struct(F.lit("area").alias("level"), F.when(F.col(polars_engine.RESIDENCE).isNotNull(), F.lit(ALL)).alias("unit"),
                     F.lit(None).cast("string").alias("unit_name")),
        )
    )
    measures = {"people": F.lit(1).cast("bigint"), **{n: F.col(c).cast("bigint") for n, c in CARE_USE.items()}}
    base = (
        person_strata.select(units.alias("_u"), "year", "disease", "stratum", *[m.alias(n) for n, m in measures.items()])
        .select("_u.*", "year", "disease", "stratum", *measures)
        .where(F.col("unit").isNotNull())
    )
    # one name per unit (the territory's): the smallest, where the polars target takes the first
    sums = [F.min("unit_name").alias("unit_name"), *[F.coalesce(F.sum(n), F.lit(0)).alias(n) for n in measures]]
    by_stratum = base.groupBy("level", "unit", "year", "disease", "stratum").agg(*sums)
    overall = by_stratum.groupBy("level", "unit", "year", "disease").agg(*sums).withColumn("stratum", F.lit(ALL))
    out = by_stratum.unionByName(overall).withColumns({f"{n}_per_person": F.col(n) / F.col("people") for n in CARE_USE})
    expected = polars_engine.care_use(_empty(person_strata), zone_territory)
    return _like(out, expected).orderBy("level", "unit", "year", "disease", "stratum")
