"""The Spark target of case finding (respop.spark.cases) equals the polars target
(respop.case_finding.engine) row for row: on the `tiny` world for both shipped specs, on random
specs and data (the strategies of tests/case_finding/test_spec_properties.py), on hand-made
patients at the tie-breaks and edge cases. The `demo` world is compared by the whole pipeline's
outputs (tests/spark/test_pipeline_parity.py, slow): its cases.parquet holds what find_cases and
attach_residence give there."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from respop.case_finding import engine
from respop.case_finding.engine import CASE_SCHEMA, RESIDENCE_SCHEMA
from respop.spec.loaders import available_diseases, load_specs
from respop.spark import cases
from respop.spark.frames import from_polars, spark_type, to_polars
from tests.case_finding.test_semantics_examples import frames
from tests.case_finding.test_semantics_examples import spec as hand_spec
from tests.case_finding.test_spec_properties import YEARS as RANDOM_YEARS
from tests.case_finding.test_spec_properties import ZONE_TERRITORY as RANDOM_ZONE_TERRITORY
from tests.case_finding.test_spec_properties import scenarios
from tests.conftest import TINY_YEARS

KEYS = ["patient_key", "disease", "index_year"]
RESIDENT_SCHEMA = {**CASE_SCHEMA, **RESIDENCE_SCHEMA}
DISEASES = available_diseases()
"""Every shipped spec (algorithms/*.toml)."""
D = dt.date


def assert_same(sdf, expected: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The Spark frame has the columns of ``schema`` in its order with its types (as Spark types),
    and the rows of ``expected`` exactly once sorted by patient, disease and index year; returns
    them as polars."""
    assert [(f.name, f.dataType.simpleString()) for f in sdf.schema.fields] == [
        (c, spark_type(t)) for c, t in schema.items()
    ]
    got = to_polars(sdf, schema).sort(KEYS)
    assert_frame_equal(got, expected.select(list(schema)).sort(KEYS), check_exact=True)
    return got


def polars_cases(spec, stays, diagnoses, index_years, first_year=None) -> pl.DataFrame:
    return engine.find_cases(spec, stays.lazy(), diagnoses.lazy(), index_years, first_year=first_year).collect()


def polars_residence(found, stays, lookback, method, zone_territory=None) -> pl.DataFrame:
    return engine.attach_residence(found, stays.lazy(), lookback, method, zone_territory).collect()


@pytest.fixture(scope="module")
def specs():
    return dict(zip(DISEASES, load_specs(DISEASES), strict=True))


@pytest.fixture(scope="module")
def expected(specs, tiny_canonical):
    """The polars target's cases of tiny, every year, per disease."""
    stays, diagnoses, _ = tiny_canonical
    return {d: polars_cases(specs[d], stays, diagnoses, TINY_YEARS) for d in DISEASES}


# --- tiny ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("disease", DISEASES)
def test_find_cases_equals_polars_on_tiny(specs, expected, tiny_spark, disease):
    stays, diagnoses, _ = tiny_spark
    got = assert_same(cases.find_cases(specs[disease], stays, diagnoses, TINY_YEARS), expected[disease], CASE_SCHEMA)
    # not trivial: cases every year, incident and prevalent ones, every sub-type, deaths
    assert got.height > 100 and set(got["index_year"]) == set(TINY_YEARS)
    assert got["incident"].any() and not got["incident"].all()
    assert got["died_in_year"].any()
    assert got["subtype"].n_unique() == len(specs[disease].subtypes.types)
    assert got["stays_in_index_year"].min() == 0 and got["qualifying_stays"].max() > 1


@pytest.mark.parametrize("disease", DISEASES)
def test_find_cases_equals_polars_with_a_first_year_and_some_index_years(specs, tiny_canonical, tiny_spark, disease):
    stays, diagnoses, _ = tiny_canonical
    want = polars_cases(specs[disease], stays, diagnoses, [2023, 2021], first_year=2017)
    got = assert_same(cases.find_cases(specs[disease], *tiny_spark[:2], [2023, 2021], first_year=2017), want, CASE_SCHEMA)
    assert got["complete_history"].any() and set(got["index_year"]) == {2021, 2023}


def modal_ties(found: pl.DataFrame, stays: pl.DataFrame, lookback: int) -> int:
    """Rows whose residence window has two zones or more on the most stays (a modal tie)."""
    per_zone = (
        found.select("patient_key", "index_year")
        .join(stays.filter(pl.col("residence_zone").is_not_null()), on="patient_key")
        .filter(pl.col("exit_date").dt.year().is_between(pl.col("index_year") - lookback, pl.col("index_year")))
        .group_by("patient_key", "index_year", "residence_zone")
        .len()
    )
    top = per_zone.filter(pl.col("len") == pl.col("len").max().over("patient_key", "index_year"))
    return top.group_by("patient_key", "index_year").len().filter(pl.col("len") > 1).height


@pytest.mark.parametrize("territories", [True, False], ids=["territories", "no_territories"])
@pytest.mark.parametrize("method", ["modal", "latest"])
@pytest.mark.parametrize("disease", DISEASES)
def test_attach_residence_equals_polars_on_tiny(specs, expected, tiny_canonical, tiny_spark, disease, method, territories):
    """On the polars target's cases (shown equal above), turned into a Spark frame."""
    stays, _, zone_territory = tiny_canonical
    zone_territory = zone_territory if territories else None
    lookback = specs[disease].window.lookback_years
    found = expected[disease]
    want = polars_residence(found, stays, lookback, method, zone_territory)
    sstays = tiny_spark[0]
    sdf = cases.attach_residence(from_polars(sstays.sparkSession, found), sstays, lookback, method, zone_territory)
    got = assert_same(sdf, want, RESIDENT_SCHEMA)
    assert (got["residence_share"] < 1).any()  # some people moved
    # no territory: only the cases without a stay whose residence is used in the window (found
    # through stays kept for clinical events only: docs/pmsi.md §5)
    without_zone = got["residence_zone"].null_count()
    assert without_zone < 0.01 * got.height
    assert got["territory_id"].null_count() == (without_zone if territories else got.height)


def test_tiny_exercises_the_modal_tie_break(specs, expected, tiny_canonical):
    """The parity test above covers the modal method's tie-break (cases with two residence zones
    used equally often in the window) on at least one disease of tiny: which diseases have ties
    depends on the generated world (COPD had some before the generator's vulnerable phase,
    75be052, and none after)."""
    stays = tiny_canonical[0]
    ties = {d: modal_ties(expected[d], stays, specs[d].window.lookback_years) for d in DISEASES}
    assert sum(ties.values()) > 0, ties


# --- random specs and data -----------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    scenario=scenarios(),
    index_years=st.lists(st.sampled_from(RANDOM_YEARS), min_size=1, max_size=5, unique=True),
    first_year=st.one_of(st.none(), st.sampled_from([2017, 2019, 2020, 2021])),
    residence_years=st.integers(0, 3),
    method=st.sampled_from(["modal", "latest"]),
    territories=st.booleans(),
)
def test_spark_equals_polars_on_random_specs(spark, scenario, index_years, first_year, residence_years, method, territories):
    """find_cases then attach_residence, in one Spark query (its rows hold every column of both)."""
    spec, stays, diagnoses = scenario
    zone_territory = RANDOM_ZONE_TERRITORY if territories else None
    want = polars_residence(
        polars_cases(spec, stays, diagnoses, index_years, first_year), stays, residence_years, method, zone_territory
    )
    sstays = from_polars(spark, stays)
    found = cases.find_cases(spec, sstays, from_polars(spark, diagnoses), index_years, first_year)
    assert_same(cases.attach_residence(found, sstays, residence_years, method, zone_territory), want, RESIDENT_SCHEMA)


# --- hand-made patients --------------------------------------------------------------------------

HAND_MADE = frames(
    # sub-type ties: type_1 and type_2 on two stays each, the latest of them type_2 → type_2
    {"id": 1, "patient": "TIE", "exit": D(2022, 1, 10), "codes": {"DAS": ["E109"]}},
    {"id": 2, "patient": "TIE", "exit": D(2022, 3, 10), "codes": {"DAS": ["E119"]}},
    {"id": 3, "patient": "TIE", "exit": D(2022, 10, 10), "codes": {"DAS": ["E101"]}},
    {"id": 4, "patient": "TIE", "exit": D(2022, 11, 10), "codes": {"DAS": ["E110"]}},
    {"id": 5, "patient": "TIE", "exit": D(2022, 12, 10), "codes": {"DAS": ["E149"]}},
    # ... on one date: the greater stay id (type_1); on one stay: the first listed (type_1)
    {"id": 20, "patient": "DAY", "exit": D(2022, 5, 1), "codes": {"DAS": ["E109"]}},
    {"id": 10, "patient": "DAY", "exit": D(2022, 5, 1), "codes": {"DAS": ["E119"]}},
    {"id": 30, "patient": "ONE", "exit": D(2022, 5, 1), "codes": {"DAS": ["E119", "E109"]}},
    # age and sex of the latest stay (same date: the greater id), null ones kept as null
    {"id": 49, "patient": "AGE", "exit": D(2021, 12, 31), "codes": {"DAS": ["E119"]}, "age": 60, "sex": 2},
    {"id": 45, "patient": "AGE", "exit": D(2021, 12, 31), "codes": {"DAS": ["E119"]}, "age": 59, "sex": 1},
    {"id": 47, "patient": "AGE", "exit": D(2022, 3, 1), "age": 70, "sex": 1},
    {"id": 48, "patient": "NUL", "exit": D(2022, 3, 1), "codes": {"DP": ["E119"]}, "age": None, "sex": None},
    # a death before the index year drops the row; one in it is flagged
    {"id": 61, "patient": "DIE", "exit": D(2021, 2, 1), "codes": {"DAS": ["E119"]}},
    {"id": 62, "patient": "DIE", "exit": D(2021, 6, 1), "died": True},
    {"id": 63, "patient": "Q", "exit": D(2021, 6, 1), "codes": {"DAS": ["E119"]}},
    {"id": 64, "patient": "Q", "exit": D(2022, 6, 1), "codes": {"DAS": ["E119"]}, "died": True},
    # residence: 01001 ×2, 01002 ×2 (the latest later), 01003 ×1 on the latest 01002 date with a
    # greater id, one stay without a zone, one before the window; modal 01002, latest 01003
    {"id": 71, "patient": "RES", "exit": D(2021, 1, 1), "zone": "01001", "codes": {"DAS": ["E119"]}},
    {"id": 72, "patient": "RES", "exit": D(2022, 1, 1), "zone": "01001"},
    {"id": 73, "patient": "RES", "exit": D(2021, 2, 1), "zone": "01002"},
    {"id": 74, "patient": "RES", "exit": D(2022, 6, 1), "zone": "01002"},
    {"id": 75, "patient": "RES", "exit": D(2022, 6, 1), "zone": "01003"},
    {"id": 76, "patient": "RES", "exit": D(2022, 12, 1), "zone": None},
    {"id": 77, "patient": "RES", "exit": D(2019, 1, 1), "zone": "01003"},
    # no stay with a zone; a zone without a territory
    {"id": 81, "patient": "NOZ", "exit": D(2022, 4, 1), "zone": None, "codes": {"DAS": ["E119"]}},
    {"id": 82, "patient": "OUT", "exit": D(2022, 4, 1), "zone": "09999", "codes": {"DAS": ["E119"]}},
    # séances are not stays: neither a row, nor a death, nor a zone
    {"id": 91, "patient": "SEA", "exit": D(2022, 5, 1), "codes": {"DAS": ["E119"]}, "session": True},
    {"id": 92, "patient": "Q", "exit": D(2021, 7, 1), "session": True, "died": True, "zone": "01009"},
    # population and exclusions act on each stay; a stay without a patient key is not a case
    {"id": 101, "patient": "POP", "exit": D(2022, 1, 1), "codes": {"DAS": ["E119"]}, "age": 17},
    {"id": 102, "patient": "POP", "exit": D(2022, 2, 1), "codes": {"DP": ["O800"], "DAS": ["E119"]}},
    {"id": 103, "patient": "POP", "exit": D(2022, 4, 1), "codes": {"DP": ["E119"]}, "age": 18},
    {"id": 111, "patient": None, "exit": D(2022, 4, 1), "codes": {"DP": ["E119"]}},
)
HAND_TERRITORIES = pl.DataFrame(
    {"zone_code": ["01001", "01002", "01003"], "territory_id": [1, 2, 3], "territory_name": ["A", "B", "C"]}
)


def row(df: pl.DataFrame, patient: str, year: int) -> dict:
    found = df.filter((pl.col("patient_key") == patient) & (pl.col("index_year") == year))
    assert found.height == 1, (patient, year, df)
    return found.row(0, named=True)


@pytest.mark.parametrize("variant", ["codes", "timing_adults_two_stays"])
def test_find_cases_equals_polars_on_hand_made_patients(spark, variant):
    spec = hand_spec(lookback=1) if variant == "codes" else hand_spec(lookback=1, by="timing", min_age=18, min_stays=2)
    stays, diagnoses = HAND_MADE
    want = polars_cases(spec, stays, diagnoses, [2021, 2022])
    sdf = cases.find_cases(spec, from_polars(spark, stays), from_polars(spark, diagnoses), [2021, 2022])
    got = assert_same(sdf, want, CASE_SCHEMA)
    assert "SEA" not in set(got["patient_key"]) and got["patient_key"].null_count() == 0
    assert got.filter((pl.col("patient_key") == "DIE") & (pl.col("index_year") == 2022)).is_empty()
    if variant == "codes":
        assert [row(got, p, 2022)["subtype"] for p in ("TIE", "DAY", "ONE")] == ["type_2", "type_1", "type_1"]
        assert (row(got, "AGE", 2022)["age"], row(got, "AGE", 2022)["sex"]) == (61, 2)
        assert (row(got, "NUL", 2022)["age"], row(got, "NUL", 2022)["sex"]) == (None, None)
        assert row(got, "DIE", 2021)["died_in_year"] and row(got, "Q", 2022)["died_in_year"]
        assert not row(got, "Q", 2021)["died_in_year"]  # the séance's death does not count
        assert row(got, "POP", 2022)["qualifying_stays"] == 2 and row(got, "POP", 2022)["branches"] == "diabete+dp_e11"
    else:
        assert row(got, "POP", 2022)["qualifying_stays"] == 1 and not row(got, "POP", 2022)["is_case"]
        assert row(got, "TIE", 2022)["subtype"] == "acute"


@pytest.mark.parametrize("method, zone, share", [("modal", "01002", 0.4), ("latest", "01003", 0.2)])
def test_attach_residence_equals_polars_on_hand_made_patients(spark, method, zone, share):
    stays, diagnoses = HAND_MADE
    spec = hand_spec(lookback=1)
    want = polars_residence(polars_cases(spec, stays, diagnoses, [2022]), stays, 1, method, HAND_TERRITORIES)
    sstays = from_polars(spark, stays)
    found = cases.find_cases(spec, sstays, from_polars(spark, diagnoses), [2022])
    got = assert_same(cases.attach_residence(found, sstays, 1, method, HAND_TERRITORIES), want, RESIDENT_SCHEMA)
    res = row(got, "RES", 2022)
    assert (res["residence_zone"], res["residence_stays"], res["territory_id"]) == (zone, 5, int(zone[-1]))
    assert res["residence_share"] == pytest.approx(share)
    assert (row(got, "NOZ", 2022)["residence_zone"], row(got, "NOZ", 2022)["residence_stays"]) == (None, 0)
    assert row(got, "OUT", 2022)["residence_zone"] == "09999" and row(got, "OUT", 2022)["territory_id"] is None
    assert row(got, "Q", 2022)["residence_zone"] == "01001"  # not the séance's 01009


def test_attach_residence_rejects_bad_arguments(spark):
    found = from_polars(spark, pl.DataFrame(schema=CASE_SCHEMA))
    with pytest.raises(ValueError, match="residence method"):
        cases.attach_residence(found, found, 1, "oldest")
    with pytest.raises(ValueError, match="lookback_years"):
        cases.attach_residence(found, found, -1)
    with pytest.raises(ValueError, match="no index year"):
        cases.find_cases(hand_spec(), found, found, [])
