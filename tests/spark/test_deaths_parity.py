"""Deaths out of hospital (the SNDS referential) and ``cases.drop_unseen_years`` give the same
rows on Spark as on polars (respop.spark.cases / strata against respop.case_finding.engine /
respop.strata.engine), on the hand-made patients of tests/case_finding/test_deaths.py."""

from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

from respop.case_finding import engine
from respop.case_finding.engine import CASE_SCHEMA
from respop.spark import cases
from respop.spark import strata as spark_strata
from respop.spark.frames import from_polars, to_polars
from respop.strata import engine as polars_strata
from tests.case_finding.test_deaths import DEATHS, STAYS
from tests.case_finding.test_semantics_examples import frames, spec

KEYS = ["patient_key", "disease", "index_year"]


def test_cases_with_deaths_and_unseen_years_equal_on_both_engines(spark):
    stays, diagnoses = frames(*STAYS, {"id": 9, "patient": "S", "exit": dt.date(2019, 3, 1), "codes": {"DAS": ["E119"]}})
    s_stays, s_dx, s_deaths = from_polars(spark, stays), from_polars(spark, diagnoses), from_polars(spark, DEATHS)
    for deaths, unseen in ((None, None), (DEATHS, None), (DEATHS, 2), (None, 3)):
        want = engine.find_cases(spec(lookback=5), stays.lazy(), diagnoses.lazy(), [2021, 2022, 2023], 2019, deaths, unseen).collect()
        got = cases.find_cases(
            spec(lookback=5), s_stays, s_dx, [2021, 2022, 2023], 2019, s_deaths if deaths is not None else None, unseen
        )
        assert_frame_equal(to_polars(got, CASE_SCHEMA).sort(KEYS), want.select(list(CASE_SCHEMA)).sort(KEYS))


def test_strata_deaths_equal_on_both_engines(spark):
    stays, diagnoses = frames(*STAYS)
    s_stays, s_dx, s_deaths = from_polars(spark, stays), from_polars(spark, diagnoses), from_polars(spark, DEATHS)
    want = polars_strata.death_years(stays.lazy(), DEATHS).collect().sort("patient_key")
    got = to_polars(spark_strata.death_years(s_stays, s_deaths)).sort("patient_key")
    assert_frame_equal(got, want, check_dtypes=False)
    order = ["patient_key", "date", "kind"]
    want = polars_strata.outcome_events(spec(lookback=2), stays.lazy(), diagnoses.lazy(), known_deaths=DEATHS).collect()
    got = to_polars(spark_strata.outcome_events(spec(lookback=2), s_stays, s_dx, known_deaths=s_deaths))
    assert_frame_equal(got.sort(order).select(want.columns), want.sort(order), check_dtypes=False)
