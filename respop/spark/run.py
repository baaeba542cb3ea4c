"""The steps of ``respop run --engine spark``: the specs compiled to Spark, results handed back.

Spark reads the canonical stays and diagnoses that the input layer wrote once
(``PmsiData.canonical``: Parquet), runs case finding, residence, the strata features and levels,
the events, care use, transitions and the aggregation behind the indicators, and hands back
to the driver only what the rest of the pipeline needs: the cases and person-years (written as
the same private outputs as the polars engine's), the indicator counts (one row per zone × year ×
disease × sub-type × age × sex…, with the number of people), care use and transitions. The rates,
survival and prediction then run on the driver with the same code as the polars engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import polars as pl

from respop.case_finding.engine import CASE_SCHEMA, RESIDENCE_SCHEMA
from respop.case_finding.indicators import CASE_COLUMNS, TERRITORY_COLUMNS, WEIGHT
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.catalogue import Catalogue
from respop.spec.residence import residence_years
from respop.config import Config
from respop.spark.frames import to_polars

Progress = Callable[[str], None]


def canonical_frames(spark, data):
    """Spark frames over the canonical stays and diagnoses of ``data`` (written by ``canonical()``)."""
    paths = data.canonical_paths
    if paths is None:
        raise ValueError("the PMSI data are not canonical yet: call PmsiData.canonical() first")
    return spark.read.parquet(str(paths["stays"])), spark.read.parquet(str(paths["diagnoses"]))


def _known_deaths(spark, staged):
    """The SNDS referential's deaths (respop.pmsi.deaths, read on the driver) as a Spark frame, or None."""
    from respop.pmsi.deaths import deaths_of
    from respop.spark.frames import from_polars

    known = deaths_of(staged)
    return None if known is None else from_polars(spark, known)


def _union(frames):
    return reduce(lambda a, b: a.unionByName(b), frames)


def compute_cases(
    spark,
    config: Config,
    specs: list[AlgorithmSpec],
    staged,
    years: list[int],
    first_year: int,
    territories: pl.DataFrame | None,
    progress: Progress | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cases with residence of every spec (collected, sorted as the polars engine sorts them), and
    the same rows counted per the indicators' columns (column ``n``). The arguments after
    ``spark`` are those of ``respop.pipeline.Engine.cases`` (``polars_cases``): ``staged`` is the
    canonical PMSI (``PmsiData.canonical``)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from respop.spark.cases import attach_residence, find_cases

    step = progress or (lambda _label: None)
    stays, diagnoses = canonical_frames(spark, staged)
    known = _known_deaths(spark, staged)
    frames, kept = [], []
    for spec in specs:
        step(f"finding {spec.algorithm.name.lower()} cases (Spark)")
        # attach_residence reads the cases twice: computed once, kept
        cases = find_cases(
            spec, stays, diagnoses, years, first_year, known, config.cases.drop_unseen_years
        ).persist(StorageLevel.MEMORY_AND_DISK)
        lookback = residence_years(config.cases.residence_years, spec)
        kept.append(cases)
        frames.append(attach_residence(cases, stays, lookback, config.cases.residence, territories))
    both = _union(frames).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        schema = {**CASE_SCHEMA, **RESIDENCE_SCHEMA}
        cases = to_polars(both, schema).sort("disease", "index_year", "patient_key")
        keys = [*CASE_COLUMNS, *TERRITORY_COLUMNS]
        counted = to_polars(both.groupBy(*keys).agg(F.count(F.lit(1)).cast("bigint").alias(WEIGHT)))
        counted = counted.select(*keys, WEIGHT).cast({k: schema[k] for k in keys})
    finally:
        for frame in [both, *kept]:
            frame.unpersist()
    return cases, counted


def compute_strata(
    spark,
    catalogue: Catalogue,
    staged,
    cases_file: Path,
    territories: pl.DataFrame | None,
    last_year: int,
    order: dict[str, list[str]],
    progress: Progress | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, float]]:
    """Person-years with their strata, survival events, care use and transitions, from Spark;
    with the seconds of each part. The arguments after ``spark`` are those of
    ``respop.pipeline.Engine.strata`` (``polars_strata``): ``staged`` is the canonical PMSI
    (``PmsiData.canonical``), ``cases_file`` the cases step's ``cases.parquet``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from respop.spark import strata as engine
    from respop.strata import engine as polars_engine
    from respop.strata.features import person_strata_columns

    step = progress or (lambda _label: None)
    step("strata, events, care use and transitions on Spark")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    stays, diagnoses = canonical_frames(spark, staged)
    known = _known_deaths(spark, staged)
    cases = spark.read.parquet(str(cases_file))
    person_frames, event_frames, kept = [], [], []
    for spec in catalogue.specs:
        ids = engine.qualifying_ids(spec, stays, diagnoses).persist(StorageLevel.MEMORY_AND_DISK)
        kept.append(ids)
        person = engine.compute_features(spec, cases, stays, diagnoses, catalogue.features, ids, catalogue.case_of(spec.disease))
        person_frames.append(engine.assign(spec, person))
        # the disease's patients only (its cases: those of its person-years), as polars_strata
        own = cases.where(F.col("is_case") & (F.col("disease") == spec.disease)).select("patient_key").distinct()
        event_frames.append(engine.outcome_events(spec, stays, diagnoses, ids, known).join(own, "patient_key", "left_semi"))
    # each disease has the case-of features of the others: missing columns are null
    person_years = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), person_frames)
    person_years = person_years.select(*person_strata_columns(catalogue.features, catalogue.diseases))
    person_years = person_years.persist(StorageLevel.MEMORY_AND_DISK)
    person_strata = to_polars(person_years).sort("disease", "year", "patient_key")
    timings["features"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    events = to_polars(_union(event_frames))
    deaths = engine.death_years(stays, known).persist(StorageLevel.MEMORY_AND_DISK)
    timings["events"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    use = to_polars(engine.care_use(person_years, territories))
    use = use.sort("level", "unit", "year", "disease", "stratum")
    timings["care_use"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    moves = to_polars(engine.transitions(person_years, deaths, last_year, order))
    moves = polars_engine.sort_transitions(moves, order)
    timings["transitions"] = round(time.perf_counter() - t, 2)
    for frame in [person_years, deaths, *kept]:
        frame.unpersist()
    return person_strata, events, use, moves, timings
