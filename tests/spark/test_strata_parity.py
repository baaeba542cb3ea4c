"""The Spark target of the strata (respop.spark.strata) equals the polars target on the `tiny`
synthetic world (seed 7), for both shipped specs: features, strata and levels person-year by
person-year, the survival events, the death years, care use (with and without the zone → territory
table) and transitions, with the same columns and types (docs/strata.md). Floats (proportions,
rates per person) are compared exactly: both engines divide the same integers in double precision.
The condition compiler ``to_spark`` equals ``to_polars`` on random condition trees. The `demo`
world is compared by the whole pipeline's outputs (tests/spark/test_pipeline_parity.py, slow:
person strata, care use and transitions)."""

from __future__ import annotations

import functools

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

pytest.importorskip("pyspark", reason="Spark parity tests skipped: pyspark is not installed (pip install 'respop[spark]')")

from respop.case_finding import attach_residence, find_cases  # noqa: E402
from respop.spec.loaders import available_diseases, load_spec, spec_path  # noqa: E402
from respop.spark import strata as spark_strata  # noqa: E402
from respop.spark.frames import from_polars, to_polars  # noqa: E402
from respop.strata import engine as polars_engine  # noqa: E402
from respop.spec.conditions import parse  # noqa: E402
from respop.strata.conditions import to_polars as condition_to_polars  # noqa: E402
from respop.spark.conditions import to_spark  # noqa: E402
from respop.spec.features import COMPUTED, load_features  # noqa: E402
from respop.strata.features import compute_features  # noqa: E402
from tests.conftest import TINY_YEARS  # noqa: E402
from tests.strata.test_conditions import frames, render, trees  # noqa: E402

DISEASES = available_diseases()
"""Every shipped spec (algorithms/*.toml)."""
KEYS = ["patient_key", "disease", "year"]


# --- both engines on one world -------------------------------------------------------------------


def polars_cases(specs, stays: pl.DataFrame, diagnoses: pl.DataFrame, zone_territory: pl.DataFrame, years) -> pl.DataFrame:
    """The stacked cases of both diseases with their residence (the input of the strata)."""
    parts = [
        attach_residence(
            find_cases(spec, stays.lazy(), diagnoses.lazy(), years),
            stays.lazy(),
            spec.window.lookback_years,
            zone_territory=zone_territory,
        ).collect()
        for spec in specs.values()
    ]
    return pl.concat(parts, how="vertical_relaxed")


def case_of(specs, disease: str) -> list[str]:
    """The case-of features of a disease: one per other disease compared."""
    return [f"case_of_{d}" for d in specs if d != disease]


def polars_results(specs, cases, stays, diagnoses, zone_territory, last_year) -> dict:
    features = load_features()
    person = {
        d: polars_engine.assign(
            spec, compute_features(spec, cases.lazy(), stays.lazy(), diagnoses.lazy(), features, case_of=case_of(specs, d))
        ).collect()
        for d, spec in specs.items()
    }
    person_strata = pl.concat(list(person.values()), how="diagonal_relaxed")
    deaths = polars_engine.death_years(stays.lazy()).collect()
    order = {d: [lv.name for lv in spec.strata.levels] for d, spec in specs.items()}
    return {
        "person": person,
        "events": {d: polars_engine.outcome_events(spec, stays.lazy(), diagnoses.lazy()).collect() for d, spec in specs.items()},
        "deaths": deaths,
        "transitions": polars_engine.transitions(person_strata, deaths, last_year, order),
        "care_use": polars_engine.care_use(person_strata, zone_territory),
        "care_use_without_territories": polars_engine.care_use(person_strata, None),
    }


def spark_results(specs, cases, stays, diagnoses, zone_territory, last_year) -> dict:
    """The same on Spark frames, collected to polars. Every other disease is given its qualifying
    stay ids (as `respop strata run` does), the others are not (the features find them): both
    paths run."""
    features = load_features()
    person = {}
    for i, (d, spec) in enumerate(specs.items()):
        ids = spark_strata.qualifying_ids(spec, stays, diagnoses) if i % 2 == 0 else None
        person[d] = spark_strata.assign(
            spec, spark_strata.compute_features(spec, cases, stays, diagnoses, features, ids, case_of(specs, d))
        ).cache()
    person_strata = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), person.values()).cache()
    deaths = spark_strata.death_years(stays).cache()
    order = {d: [lv.name for lv in spec.strata.levels] for d, spec in specs.items()}
    out = {
        "person": {d: to_polars(sdf) for d, sdf in person.items()},
        "events": {d: to_polars(spark_strata.outcome_events(spec, stays, diagnoses)) for d, spec in specs.items()},
        "deaths": to_polars(deaths),
        "transitions": to_polars(spark_strata.transitions(person_strata, deaths, last_year, order)),
        "care_use": to_polars(spark_strata.care_use(person_strata, zone_territory)),
        "care_use_without_territories": to_polars(spark_strata.care_use(person_strata, None)),
    }
    for sdf in [*person.values(), person_strata, deaths]:
        sdf.unpersist()
    return out


def assert_same_results(got: dict, expected: dict) -> None:
    for d in DISEASES:
        g, e = got["person"][d], expected["person"][d]
        assert g.schema == e.schema, f"{d}: person strata columns or types differ"
        assert_frame_equal(g.sort(KEYS), e.sort(KEYS), check_exact=True)
        g, e = got["events"][d], expected["events"][d]
        assert g.schema == e.schema, f"{d}: events columns or types differ"
        assert_frame_equal(g.sort(g.columns), e.sort(e.columns), check_exact=True)
    assert_frame_equal(got["deaths"].sort("patient_key"), expected["deaths"].sort("patient_key"), check_exact=True)
    # transitions and care use: same sort in both engines, compared in their own row order
    for name in ["transitions", "care_use", "care_use_without_territories"]:
        assert_frame_equal(got[name], expected[name], check_exact=True)


@pytest.fixture(scope="module")
def specs():
    return {d: load_spec(spec_path(d)) for d in DISEASES}


@pytest.fixture(scope="module")
def tiny_results(spark, tiny_spark, tiny_canonical, specs):
    stays, diagnoses, zone_territory = tiny_canonical
    cases = polars_cases(specs, stays, diagnoses, zone_territory, TINY_YEARS)
    expected = polars_results(specs, cases, stays, diagnoses, zone_territory, TINY_YEARS[-1])
    spark_stays, spark_diagnoses, _ = tiny_spark
    spark_cases = from_polars(spark, cases).cache()
    got = spark_results(specs, spark_cases, spark_stays, spark_diagnoses, zone_territory, TINY_YEARS[-1])
    spark_cases.unpersist()
    return got, expected


# --- tiny ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("disease", DISEASES)
def test_features_and_strata_equal_polars(tiny_results, disease):
    got, expected = tiny_results
    g, e = got["person"][disease], expected["person"][disease]
    assert g.schema == e.schema, f"Spark {g.schema}\npolars {e.schema}"
    assert g.height == e.height > 0
    assert_frame_equal(g.sort(KEYS), e.sort(KEYS), check_exact=True)


@pytest.mark.parametrize("disease", DISEASES)
def test_outcome_events_equal_polars(tiny_results, disease):
    got, expected = tiny_results
    g, e = got["events"][disease], expected["events"][disease]
    assert g.schema == e.schema
    assert set(e["kind"]) == {"disease_stay", "death"}
    assert_frame_equal(g.sort(g.columns), e.sort(e.columns), check_exact=True)


def test_death_years_equal_polars(tiny_results):
    got, expected = tiny_results
    assert expected["deaths"].height > 0
    assert_frame_equal(got["deaths"].sort("patient_key"), expected["deaths"].sort("patient_key"), check_exact=True)


@pytest.mark.parametrize("name", ["transitions", "care_use", "care_use_without_territories"])
def test_aggregates_equal_polars(tiny_results, name):
    """Same rows, columns, types and order; the proportions and rates per person exactly equal."""
    got, expected = tiny_results
    assert expected[name].height > 0
    assert_frame_equal(got[name], expected[name], check_exact=True)


def test_tiny_is_not_trivial(tiny_results, specs):
    """Every stratum occurs, with re-hospitalisations, code features and the other disease."""
    _, expected = tiny_results
    for d, spec in specs.items():
        person = expected["person"][d]
        assert set(person["stratum"]) == {lv.name for lv in spec.strata.levels}, d
        assert (person["readmissions_30d"] > 0).any(), d
        for name in case_of(specs, d):
            assert person[name].any(), (d, name)
        assert (person["days_since_disease_stay"] > 365).any(), d
    both = pl.concat(list(expected["person"].values()), how="diagonal_relaxed")
    true_codes = [c for c in load_features().names() if both[c].any()]
    assert len(true_codes) >= 5, true_codes
    assert set(expected["transitions"]["to"]) >= {polars_engine.DEATH, polars_engine.NOT_SEEN}
    assert set(expected["care_use"]["level"]) == {"zone", "territory", "area"}


def test_a_computed_feature_without_spark_expression_is_named(specs, monkeypatch):
    """A feature added to COMPUTED (and to the polars compute_features) but not here: the Spark
    compute_features stops before reading any frame, naming it and where to add it."""
    monkeypatch.setitem(COMPUTED, "frailty_index", "a feature written in polars only")
    assert spark_strata.missing_expressions() == ["frailty_index"]
    with pytest.raises(NotImplementedError, match="frailty_index") as err:
        spark_strata.compute_features(specs["diabetes"], None, None, None, load_features())
    assert "respop/spark/strata.py" in str(err.value)


def test_every_computed_feature_has_a_spark_expression():
    assert spark_strata.missing_expressions() == []


# --- conditions: to_spark == to_polars on random trees -------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(trees, min_size=1, max_size=10), data=frames)
def test_random_conditions_compile_like_polars(spark, batch, data):
    """Each example: up to ten random condition trees evaluated on one random frame (one Spark job)."""
    frame = pl.DataFrame(data, schema={"a": pl.Int64, "b": pl.Int64, "p": pl.Boolean, "q": pl.Boolean}).with_row_index("_i").cast({"_i": pl.Int32})
    nodes = [parse(render(tree)) for tree in batch]
    expected = frame.select("_i", *[condition_to_polars(n).alias(f"c{k}") for k, n in enumerate(nodes)])
    got = to_polars(from_polars(spark, frame).select("_i", *[to_spark(n).alias(f"c{k}") for k, n in enumerate(nodes)])).sort("_i")
    for k, tree in enumerate(batch):
        assert got[f"c{k}"].to_list() == expected[f"c{k}"].to_list(), f"{render(tree)!r} on {data}"


def test_booleans_compared_with_numbers_as_polars_does(spark):
    """A boolean feature is 0/1 beside a number in polars; Spark (ANSI mode) must agree, not fail."""
    frame = pl.DataFrame(
        {"_i": [0, 1, 2, 3], "p": [True, False, None, True], "a": [3, 0, 5, None]},
        schema={"_i": pl.Int32, "p": pl.Boolean, "a": pl.Int64},
    )
    texts = ["p == 1", "p > 0", "p != 0", "p >= true", "a > p", "not p == 0 and a >= 1"]
    nodes = [parse(t) for t in texts]
    expected = frame.select("_i", *[condition_to_polars(n).alias(f"c{k}") for k, n in enumerate(nodes)])
    got = to_polars(from_polars(spark, frame).select("_i", *[to_spark(n).alias(f"c{k}") for k, n in enumerate(nodes)])).sort("_i")
    for k, text in enumerate(texts):
        assert got[f"c{k}"].to_list() == expected[f"c{k}"].to_list(), text
