"""The strata engine equals the plain reference (tests/strata/reference.py) on the `tiny` synthetic
world (seed 7), for both shipped specs: person by person (every feature, stratum, level,
outcomes), transitions, and care use at the area level (docs/strata.md)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from respop.case_finding import attach_residence, find_cases
from respop.spec.loaders import shipped_algorithms_dir, load_spec, spec_path
from respop.strata.engine import assign, care_use, death_years, transitions
from respop.spec.features import load_features
from respop.strata.features import compute_features, features_schema
from tests.conftest import TINY_YEARS
from tests.strata.reference import (
    ALL,
    CARE_USE_SUMS,
    COMPUTED,
    DEATH,
    IDENTITY,
    NOT_SEEN,
    OUTCOMES,
    feature_values,
    first_level,
    read_code_features,
    reference_assign,
    reference_care_use_area,
    reference_death_years,
    reference_features,
    reference_transitions,
)
from tests.strata.reference import to_polars as ref_to_polars

YEARS = TINY_YEARS
LAST_YEAR = YEARS[-1]
DISEASES = ["diabetes", "heart_failure"]
KEYS = ["patient_key", "disease", "year"]
CODE_FEATURES = read_code_features(shipped_algorithms_dir() / "features.toml")

PERSON_SCHEMA: dict[str, pl.DataType] = {
    "patient_key": pl.String,
    "disease": pl.String,
    "year": pl.Int64,
    "residence_zone": pl.String,
    "territory_id": pl.Int64,
    "territory_name": pl.String,
    "sex": pl.Int64,
    "age": pl.Int64,
    "disease_stays_12m": pl.Int64,
    "disease_emergency_stays_12m": pl.Int64,
    "disease_bed_days_12m": pl.Int64,
    "days_since_disease_stay": pl.Int64,
    "stays_12m": pl.Int64,
    "emergency_stays_12m": pl.Int64,
    "bed_days_12m": pl.Int64,
    **{name: pl.Boolean for name in CODE_FEATURES},
    "readmissions_30d": pl.Int64,
    "died_in_year": pl.Boolean,
    "stratum": pl.String,
    "stratum_level": pl.Int64,
}
"""Columns compared, with the type both sides are cast to (the engine's own types are checked apart),
besides the case-of feature of the other disease (:func:`person_schema`)."""


def others(disease: str) -> list[str]:
    return [d for d in DISEASES if d != disease]


def person_schema(disease: str) -> dict[str, pl.DataType]:
    return {**PERSON_SCHEMA, **{f"case_of_{o}": pl.Boolean for o in others(disease)}}


@pytest.fixture(scope="module")
def tiny(tiny_canonical):
    return tiny_canonical


@pytest.fixture(scope="module")
def specs():
    return {d: load_spec(spec_path(d)) for d in DISEASES}


@pytest.fixture(scope="module")
def cases(tiny, specs):
    """The stacked cases of both diseases with their residence (the input of the strata)."""
    stays, diagnoses, zone_territory = tiny
    parts = [
        attach_residence(
            find_cases(spec, stays.lazy(), diagnoses.lazy(), YEARS),
            stays.lazy(),
            spec.window.lookback_years,
            zone_territory=zone_territory,
        ).collect()
        for spec in specs.values()
    ]
    return pl.concat(parts, how="vertical_relaxed")


@pytest.fixture(scope="module")
def engine(tiny, specs, cases):
    stays, diagnoses, _ = tiny
    features = load_features()
    return {
        d: assign(spec, compute_features(
            spec, cases.lazy(), stays.lazy(), diagnoses.lazy(), features, case_of=[f"case_of_{o}" for o in others(d)]
        )).collect()
        for d, spec in specs.items()
    }


@pytest.fixture(scope="module")
def reference(tiny, specs, cases):
    stays, diagnoses, _ = tiny
    stays_pd, diagnoses_pd, cases_pd = stays.to_pandas(), diagnoses.to_pandas(), cases.to_pandas()
    return {
        d: ref_to_polars(
            reference_assign(spec, reference_features(spec, cases_pd, stays_pd, diagnoses_pd, CODE_FEATURES, others(d))),
            person_schema(d),
        )
        for d, spec in specs.items()
    }


@pytest.fixture(scope="module")
def person_strata(engine):
    return pl.concat(list(engine.values()), how="diagonal_relaxed")


def _normalise(df: pl.DataFrame, schema: dict) -> pl.DataFrame:
    return df.select([pl.col(c).cast(t) for c, t in schema.items()]).sort(KEYS)


def assert_same_people(got: pl.DataFrame, expected: pl.DataFrame, what: str) -> None:
    schema = person_schema(what)
    g, e = _normalise(got, schema), _normalise(expected, schema)
    dups = g.filter(pl.struct(KEYS).is_duplicated())
    assert dups.is_empty(), f"{what}: several rows for one (patient, disease, year):\n{dups}"
    only_g = g.join(e.select(KEYS), on=KEYS, how="anti")
    only_e = e.join(g.select(KEYS), on=KEYS, how="anti")
    lines = []
    if only_g.height:
        lines.append(f"person-years only in the engine ({only_g.height}):\n{only_g.head(8)}")
    if only_e.height:
        lines.append(f"person-years only in the reference ({only_e.height}):\n{only_e.head(8)}")
    both = g.join(e, on=KEYS, how="inner", suffix="_ref")
    for c in schema:
        if c in KEYS:
            continue
        bad = both.filter(~pl.col(c).eq_missing(pl.col(f"{c}_ref"))).select(*KEYS, c, f"{c}_ref")
        if bad.height:
            lines.append(f"column {c}: {bad.height} person-years differ (engine, then reference):\n{bad.head(8)}")
    if lines:
        raise AssertionError(f"{what}: engine and reference differ\n" + "\n".join(lines))
    assert_frame_equal(g, e)


# --- person by person ----------------------------------------------------------------------------


@pytest.mark.parametrize("disease", DISEASES)
def test_engine_columns_and_types(engine, disease):
    got = engine[disease]
    documented = [*IDENTITY, "stratum", "stratum_level", *COMPUTED, *CODE_FEATURES, *OUTCOMES]
    missing = [c for c in documented if c not in got.columns]
    assert not missing, f"person strata lack {missing} (have {got.columns})"
    assert got.schema["stratum_level"] == pl.Int8
    ints = ["age", *COMPUTED, "readmissions_30d"]
    assert all(got.schema[c].is_integer() for c in ints), {c: got.schema[c] for c in ints}
    case_of = [f"case_of_{o}" for o in others(disease)]
    bools = [*case_of, *CODE_FEATURES, "died_in_year"]
    assert all(got.schema[c] == pl.Boolean for c in bools), {c: got.schema[c] for c in bools}
    # the schema the Spark target casts to is given by the spec alone: it is the engine's own
    assert dict(got.drop("stratum", "stratum_level").schema) == features_schema(load_features(), case_of)


@pytest.mark.parametrize("disease", DISEASES)
def test_engine_equals_reference_person_by_person(engine, reference, disease):
    assert_same_people(engine[disease], reference[disease], disease)


@pytest.mark.parametrize("disease", DISEASES)
def test_one_row_per_case_year(engine, cases, disease):
    got = engine[disease]
    expected = cases.filter((pl.col("disease") == disease) & pl.col("is_case"))
    assert got.height == expected.height > 0
    assert got.select(KEYS).unique().height == got.height
    assert set(got["disease"].cast(pl.String).unique()) == {disease}


@pytest.mark.parametrize("disease", DISEASES)
def test_every_person_year_in_exactly_one_stratum(engine, specs, disease):
    """The stratum is never null, and it is the first level whose condition holds on the engine's
    own features (conditions evaluated by the reference's evaluator)."""
    got = engine[disease]
    levels = [(lv.name, lv.when) for lv in specs[disease].strata.levels]
    names = [n for n, _ in levels]
    assert got["stratum"].null_count() == 0 and got["stratum_level"].null_count() == 0
    wrong = []
    for row in got.to_dicts():
        expected = first_level(levels, feature_values(row))
        level = len(names) - names.index(expected)
        if str(row["stratum"]) != expected or row["stratum_level"] != level:
            wrong.append((row["patient_key"], row["year"], row["stratum"], row["stratum_level"], expected, level))
    assert not wrong, f"{len(wrong)} person-years not in the first level that holds: {wrong[:5]}"


@pytest.mark.parametrize("disease", DISEASES)
def test_data_are_not_trivial(engine, specs, disease):
    got = engine[disease]
    assert set(got["stratum"].cast(pl.String).unique()) == {lv.name for lv in specs[disease].strata.levels}
    assert set(got["stratum_level"].unique()) == set(range(1, len(specs[disease].strata.levels) + 1))
    for name in (f"case_of_{o}" for o in others(disease)):
        assert got[name].any() and not got[name].all()
    assert got["died_in_year"].any()
    assert (got["stays_12m"] > got["disease_stays_12m"]).any()
    assert (got["disease_stays_12m"] == 0).any()  # cases seen in earlier years only
    assert got["days_since_disease_stay"].null_count() == 0


def test_code_features_and_readmissions_occur(person_strata):
    never = [name for name in CODE_FEATURES if not person_strata[name].any()]
    # no dialysis code (Z49, Z992) on tiny: the variants below exercise a 1-year look-back instead
    assert never == ["dialysis"], never
    assert (person_strata["readmissions_30d"] > 0).any()


VARIANT_FEATURES = """
[codes.ckd_index_year]
label = "N18 dans l'année seulement"
codes = ["N18"]
positions = ["DP", "DR", "DAS"]
lookback_years = 0

[codes.ckd_one_year]
label = "N18, l'année et la précédente"
codes = ["N18"]
positions = ["DP", "DR", "DAS"]
lookback_years = 1

[codes.diabetes_dp]
label = "Diabète en DP"
codes = ["E1"]
positions = ["DP"]
lookback_years = 2

[codes.diabetes_not_type_2]
label = "Diabète sauf type 2"
codes = ["E1"]
exclude = ["E11"]
positions = ["DP", "DR", "DAS"]
lookback_years = 1

[codes.hf_related]
label = "I50 en DR"
codes = ["I50"]
positions = ["DR"]
lookback_years = 5
"""


@pytest.mark.parametrize("disease", DISEASES)
def test_other_code_features_equal_reference(tiny, specs, cases, tmp_path, disease):
    """Look-backs 0 and 1, one position only, exclusions: a features.toml of variants."""
    (tmp_path / "features.toml").write_text(VARIANT_FEATURES, encoding="utf-8")
    stays, diagnoses, _ = tiny
    spec = specs[disease]
    got = compute_features(spec, cases.lazy(), stays.lazy(), diagnoses.lazy(), load_features(tmp_path)).collect()
    variants = read_code_features(tmp_path / "features.toml")
    expected = reference_features(spec, cases.to_pandas(), stays.to_pandas(), diagnoses.to_pandas(), variants)
    schema = {"patient_key": pl.String, "year": pl.Int64, **{n: pl.Boolean for n in variants}}
    g = got.select([pl.col(c).cast(t) for c, t in schema.items()]).sort("patient_key", "year")
    e = ref_to_polars(expected, schema).sort("patient_key", "year")
    assert_frame_equal(g, e)
    for name in variants:  # each variant is exercised (true somewhere, not everywhere)
        assert g[name].any() and not g[name].all(), name
    assert (g["ckd_index_year"] != g["ckd_one_year"]).any()  # the look-back matters


# --- transitions ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_transitions(tiny, specs, person_strata):
    stays, _, _ = tiny
    order = {d: [lv.name for lv in spec.strata.levels] for d, spec in specs.items()}
    return transitions(person_strata, death_years(stays.lazy()).collect(), LAST_YEAR, order)


TRANSITION_SCHEMA = {
    "disease": pl.String,
    "year": pl.Int64,
    "from": pl.String,
    "to": pl.String,
    "count": pl.Int64,
    "proportion": pl.Float64,
}


def test_death_years_equal_reference(tiny):
    stays, _, _ = tiny
    got = death_years(stays.lazy()).collect()
    assert got.columns[:2] == ["patient_key", "death_year"]
    got_pairs = {(r["patient_key"], int(r["death_year"])) for r in got.to_dicts()}
    assert got.height == len(got_pairs)
    expected = {(p, y) for p, ys in reference_death_years(stays.to_pandas()).items() for y in ys}
    assert got_pairs == expected


def test_transitions_equal_reference(tiny, person_strata, engine_transitions):
    stays, _, _ = tiny
    expected = reference_transitions(person_strata.to_pandas(), reference_death_years(stays.to_pandas()), LAST_YEAR)
    keys = ["disease", "year", "from", "to"]
    got = engine_transitions.select([pl.col(c).cast(t) for c, t in TRANSITION_SCHEMA.items()])
    got = got.filter(pl.col("count") > 0).sort(keys)
    exp = ref_to_polars(expected, TRANSITION_SCHEMA).sort(keys)
    assert_frame_equal(got, exp, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_transitions_rules(engine_transitions, specs):
    t = engine_transitions
    sums = t.group_by("disease", "year", "from").agg(pl.col("proportion").sum())
    assert ((sums["proportion"] - 1).abs() < 1e-9).all(), sums
    assert t["year"].max() == LAST_YEAR - 1 and t["year"].min() == YEARS[0]  # the last year has none
    assert (t["count"] > 0).all(), "rows with a zero count"
    for d, spec in specs.items():
        names = {lv.name for lv in spec.strata.levels}
        sub = t.filter(pl.col("disease") == d)
        assert set(sub["from"].cast(pl.String)) <= names
        assert set(sub["to"].cast(pl.String)) <= names | {DEATH, NOT_SEEN}
        assert DEATH in set(sub["to"].cast(pl.String)), d
    # a 5-year look-back keeps every heart-failure case of tiny a case until death: only diabetes
    # (look-back 1) has people no longer seen
    assert NOT_SEEN in set(t.filter(pl.col("disease") == "diabetes")["to"].cast(pl.String))


def test_people_who_died_are_not_followed(tiny, person_strata, engine_transitions):
    """The count from (disease, N) is the number of person-years of N with a residence zone whose
    patient did not die in N."""
    stays, _, _ = tiny
    dead = death_years(stays.lazy()).collect().select("patient_key", year=pl.col("death_year").cast(pl.Int64))
    ps = person_strata.with_columns(pl.col("year").cast(pl.Int64), pl.col("disease").cast(pl.String))
    followed = (
        ps.filter((pl.col("year") < LAST_YEAR) & pl.col("residence_zone").is_not_null())
        .join(dead, on=["patient_key", "year"], how="anti")
        .group_by("disease", "year")
        .len()
        .sort("disease", "year")
    )
    assert ps.join(dead, on=["patient_key", "year"], how="semi").height > 0, "nobody died in a year they were a case"
    counted = (
        engine_transitions.with_columns(pl.col("year").cast(pl.Int64), pl.col("disease").cast(pl.String))
        .group_by("disease", "year")
        .agg(len=pl.col("count").sum().cast(pl.UInt32))
        .sort("disease", "year")
    )
    assert_frame_equal(counted, followed)


# --- care use ------------------------------------------------------------------------------------

CARE_SCHEMA = {
    "year": pl.Int64,
    "disease": pl.String,
    "stratum": pl.String,
    "people": pl.Int64,
    **{c: pl.Int64 for c in CARE_USE_SUMS},
    **{f"{c}_per_person": pl.Float64 for c in CARE_USE_SUMS},
}


@pytest.fixture(scope="module")
def engine_care_use(tiny, person_strata):
    _, _, zone_territory = tiny
    return care_use(person_strata, zone_territory)


def test_care_use_area_equals_reference(person_strata, engine_care_use):
    area = engine_care_use.filter(pl.col("level") == "area")
    assert area.height > 0
    assert area.select("unit").n_unique() == 1
    keys = ["year", "disease", "stratum"]
    got = area.select([pl.col(c).cast(t) for c, t in CARE_SCHEMA.items()]).sort(keys)
    exp = ref_to_polars(reference_care_use_area(person_strata.to_pandas()), CARE_SCHEMA).sort(keys)
    assert_frame_equal(got, exp, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_care_use_without_territories_has_the_same_area(person_strata, engine_care_use):
    keys = ["year", "disease", "stratum"]
    without = care_use(person_strata, None).filter(pl.col("level") == "area").select(list(CARE_SCHEMA)).sort(keys)
    with_ = engine_care_use.filter(pl.col("level") == "area").select(list(CARE_SCHEMA)).sort(keys)
    assert_frame_equal(without, with_)


def test_care_use_all_is_the_sum_of_strata(engine_care_use):
    counts = ["people", *CARE_USE_SUMS]
    keys = ["level", "unit", "year", "disease"]
    cu = engine_care_use.with_columns(pl.col("stratum").cast(pl.String))
    assert set(cu["level"].unique()) == {"zone", "territory", "area"}
    summed = cu.filter(pl.col("stratum") != ALL).group_by(keys).agg(pl.col(counts).sum()).sort(keys)
    alls = cu.filter(pl.col("stratum") == ALL).select(*keys, *counts).sort(keys)
    assert_frame_equal(summed, alls, check_dtypes=False)
    ratios = cu.select([(pl.col(f"{c}_per_person") - pl.col(c) / pl.col("people")).abs().max() for c in CARE_USE_SUMS])
    assert all(v < 1e-12 for v in ratios.row(0)), ratios


def test_care_use_zones_and_territories_add_up_to_the_area(tiny, engine_care_use, person_strata):
    """Each level sums to the area of the person-years with a zone. A few have none: cases found
    only through stays whose residence is not used (docs/pmsi.md §5); the others all have a
    zone and a territory."""
    with_zone = person_strata.filter(pl.col("residence_zone").is_not_null())
    assert person_strata.height - with_zone.height < 0.01 * person_strata.height
    assert with_zone["territory_id"].null_count() == 0
    counts = ["people", *CARE_USE_SUMS]
    keys = ["year", "disease", "stratum"]
    cu = engine_care_use.with_columns(pl.col("stratum").cast(pl.String))
    area = (
        care_use(with_zone, tiny[2]).with_columns(pl.col("stratum").cast(pl.String))
        .filter(pl.col("level") == "area").select(*keys, *counts).sort(keys)
    )
    for level in ["zone", "territory"]:
        summed = cu.filter(pl.col("level") == level).group_by(keys).agg(pl.col(counts).sum()).sort(keys)
        assert summed.equals(area), f"{level} does not add up to the area"
