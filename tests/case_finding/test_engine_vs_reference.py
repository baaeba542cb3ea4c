"""The engine equals the plain reference (tests/case_finding/reference.py) row for row on the `tiny`
synthetic world, for both shipped specs and variants of them, every index year, and both residence
methods."""

from __future__ import annotations

import polars as pl
import pytest

from respop.spec.algorithm import AlgorithmSpec

from respop.spec.loaders import load_spec, spec_path
from tests.conftest import TINY_YEARS
from tests.case_finding.helpers import check_cases, check_residence
from tests.case_finding.reference import CASE_SCHEMA, reference_cases, to_polars

YEARS = TINY_YEARS


@pytest.fixture(scope="module")
def tiny(tiny_canonical):
    return tiny_canonical


def variant(disease: str, **changes) -> AlgorithmSpec:
    """A shipped spec with some sections replaced (validated again)."""
    raw = load_spec(spec_path(disease)).model_dump()
    for section, values in changes.items():
        raw[section] = {**(raw.get(section) or {}), **values} if isinstance(values, dict) else values
    return AlgorithmSpec.model_validate(raw)


SPECS = {
    "diabetes": lambda: load_spec(spec_path("diabetes")),
    "heart_failure": lambda: load_spec(spec_path("heart_failure")),
    "diabetes_two_stays": lambda: variant("diabetes", window={"lookback_years": 2, "min_stays": 2}),
    "heart_failure_short": lambda: variant("heart_failure", window={"lookback_years": 1, "min_stays": 2}),
    "diabetes_adults_index_year_only": lambda: variant(
        "diabetes", window={"lookback_years": 0, "min_stays": 1}, population={"min_age": 18, "max_age": 79}
    ),
}


@pytest.fixture(scope="module")
def results(tiny):
    """Engine and reference rows of every spec above, index years = every year of tiny."""
    stays, diagnoses, _ = tiny
    return {name: check_cases(make(), stays, diagnoses, YEARS) for name, make in SPECS.items()}


@pytest.mark.parametrize("name", list(SPECS))
def test_engine_equals_reference(results, name):
    got, expected = results[name]  # check_cases compared them already
    assert got.height == expected.height > 0


@pytest.mark.parametrize("first_year", [2019, 2022])
@pytest.mark.parametrize("disease", ["diabetes", "heart_failure"])
def test_engine_equals_reference_with_given_first_year_and_some_index_years(tiny, disease, first_year):
    stays, diagnoses, _ = tiny
    check_cases(load_spec(spec_path(disease)), stays, diagnoses, [2023, 2022], first_year=first_year)


@pytest.mark.parametrize("method", ["modal", "latest"])
@pytest.mark.parametrize("name", ["diabetes", "heart_failure", "diabetes_two_stays"])
def test_residence_equals_reference(tiny, results, name, method):
    stays, _, zone_territory = tiny
    got, expected = results[name]
    lookback = SPECS[name]().window.lookback_years
    with_res = check_residence(got, expected, stays, lookback, method, zone_territory)
    # a case without a zone has no stay whose residence is used in the window: it was found
    # through stays kept for clinical events only (residence invalid or abroad, inter-hospital
    # services: docs/pmsi.md §5); every other case of tiny has a zone and a territory
    no_zone = with_res.filter(pl.col("residence_zone").is_null())
    assert (no_zone["residence_stays"] == 0).all()
    clinical_only = stays.filter(~pl.col("residence_used")).select("patient_key").unique()
    assert no_zone.join(clinical_only, on="patient_key", how="anti").is_empty()
    assert no_zone.height < 0.01 * with_res.height
    assert with_res["territory_id"].null_count() == no_zone.height
    assert (with_res["residence_share"] < 1).any(), "nobody moved: residence is not exercised"


@pytest.mark.parametrize("lookback", [0, 2])
def test_residence_other_lookbacks_and_no_territories(tiny, results, lookback):
    stays, _, _ = tiny
    got, expected = results["heart_failure"]
    with_res = check_residence(got, expected, stays, lookback, "modal", None)
    assert with_res["territory_id"].null_count() == with_res.height
    assert with_res["territory_name"].null_count() == with_res.height


def test_modal_and_latest_differ_somewhere(tiny, results):
    stays, _, zone_territory = tiny
    got, expected = results["heart_failure"]
    modal = check_residence(got, expected, stays, 5, "modal", zone_territory)
    latest = check_residence(got, expected, stays, 5, "latest", zone_territory)
    keys = ["patient_key", "disease", "index_year"]
    joined = modal.join(latest, on=keys, suffix="_latest")
    assert (joined["residence_zone"] != joined["residence_zone_latest"]).any()


# --- the data are not trivial ----------------------------------------------------------------


def test_every_subtype_occurs(results):
    for name, types in [("diabetes", {"type_1", "type_2", "unspecified"}), ("heart_failure", {"acute", "chronic"})]:
        got, _ = results[name]
        cases = got.filter(pl.col("is_case"))
        assert set(cases["subtype"].cast(pl.String).unique()) == types, name
        assert got.filter(~pl.col("is_case")).is_empty()  # min_stays = 1: every row is a case


@pytest.mark.parametrize("name", ["diabetes_two_stays", "heart_failure_short"])
def test_min_stays_leaves_non_cases(results, name):
    got, _ = results[name]
    assert got["is_case"].any() and not got["is_case"].all()
    non_cases = got.filter(~pl.col("is_case"))
    assert non_cases["subtype"].null_count() == non_cases.height
    assert not non_cases["incident"].any()


def test_incidence_history_and_branches_vary(results):
    got, _ = results["diabetes"]
    assert got["incident"].any() and not got["incident"].all()
    assert set(got["complete_history"].unique()) == {True, False}  # 2021 has no 2020 in tiny
    hf, _ = results["heart_failure"]
    assert not hf["complete_history"].any()  # 5 years of look-back, 3 years of data
    assert set(hf["branches"].unique()) >= {"dp_i50"}
    assert hf["stays_in_index_year"].min() == 0 and hf["qualifying_stays"].max() > 1
    short, _ = results["diabetes_adults_index_year_only"]
    assert short["incident"].all()  # look-back 0: every case is a first detection
    assert short["age"].min() >= 18


def test_dead_patients_are_dropped_and_flagged(tiny, results):
    stays, diagnoses, _ = tiny
    for disease in ("diabetes", "heart_failure"):
        got, expected = results[disease]
        assert got["died_in_year"].any(), disease
        # without the deaths, the reference would keep more rows: some were dropped for a death before N
        alive = stays.with_columns(pl.lit(False).alias("died"), pl.lit("8").alias("exit_mode"))
        spec = load_spec(spec_path(disease))
        immortal = to_polars(reference_cases(spec, alive.to_pandas(), diagnoses.to_pandas(), YEARS, None), CASE_SCHEMA)
        assert immortal.height > expected.height, disease


def test_no_zoned_stay_in_the_window(tiny, results):
    """A row whose residence window holds no stay with a zone (here: look-back 0 and every stay of
    the patient in earlier years): null zone, territory and share, and ``residence_stays`` = 0
    (the count of the window's stays with a zone; the reading of docs/case_finding.md taken by the
    reference — a count of nothing is 0, not unknown)."""
    stays, _, zone_territory = tiny
    got, expected = results["heart_failure"]
    with_res = check_residence(got, expected, stays, 0, "modal", zone_territory)
    empty = with_res.filter(pl.col("residence_zone").is_null())
    assert empty.height > 0
    assert empty["residence_share"].null_count() == empty.height
    assert empty["territory_id"].null_count() == empty.height
    assert (empty["residence_stays"] == 0).all()
