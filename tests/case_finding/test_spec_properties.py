"""Property tests of the spec compiler: random valid specs on random small stays → the engine
(``find_cases`` then ``attach_residence``) equals the plain reference."""

from __future__ import annotations

import datetime as dt
import os

import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from respop.spec.algorithm import POSITIONS, AlgorithmSpec
from respop.pmsi.canonical import DIAGNOSIS_SCHEMA, STAY_SCHEMA
from respop.pmsi.nomenclatures import codes
from tests.case_finding.helpers import check_cases, check_residence

CIM = frozenset(codes("MS_CIM_V"))

PREFIXES = ["E10", "E11", "E14", "I50", "I500", "I110", "J81", "O", "O244", "N18"]
"""Prefixes the random specs draw their codes from."""

EXCLUSIONS = {
    "E10": ["E109", "E101"],
    "E11": ["E110", "E119", "E1100"],
    "E14": ["E149"],
    "I50": ["I500", "I509"],
    "O": ["O244", "O24", "O80"],
    "N18": ["N185", "N189"],
}
"""Prefixes inside each code (for ``exclude``)."""

DATA_CODES = sorted(
    {"E10", "E101", "E109", "E110", "E1100", "E119", "E149", "E14", "I500", "I501", "I509", "I110", "J81",
     "O244", "O240", "O800", "N185", "N189", "N18"} & CIM
)
"""Codes of the random stays matching the prefixes above…"""
NOISE_CODES = ["M170", "H251", "Z511", "C189", "R074", "I10", "E780", "J189"]
"""…and codes that match none."""
assert set(NOISE_CODES) <= CIM and not [c for c in NOISE_CODES if any(c.startswith(p) for p in PREFIXES)]

EXAMPLES = int(os.environ.get("RESPOP_PROPERTY_EXAMPLES", "60"))
"""Examples per property (RESPOP_PROPERTY_EXAMPLES=2000 for a long soak)."""

YEARS = list(range(2019, 2024))
PATIENTS = ["P1", "P2", "P3", "P4", "P5"]
ZONES = ["01001", "01002", "02003"]
AGES = [5, 17, 18, 19, 45, 64, 65, 66, 90]


# --- specs ---------------------------------------------------------------------------------------


@st.composite
def criteria(draw, name: str | None = None) -> dict:
    chosen = draw(st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True))
    inside = sorted({e for c in chosen for e in EXCLUSIONS.get(c, []) + [p for p in PREFIXES if p != c and p.startswith(c)]})
    out: dict = {"codes": chosen}
    if inside and draw(st.booleans()):
        out["exclude"] = draw(st.lists(st.sampled_from(inside), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 3)):  # mostly explicit positions; sometimes the default (DP, DR, DAS)
        out["positions"] = draw(st.lists(st.sampled_from(POSITIONS), min_size=1, max_size=4, unique=True))
    if name is not None:
        out["name"] = name
    return out


@st.composite
def branches(draw) -> list[dict]:
    n = draw(st.integers(1, 3))
    return [
        {
            "name": f"b{i}",
            "label": f"branche {i}",
            "all": [draw(criteria()) for _ in range(draw(st.sampled_from([1, 1, 2])))],
            "unless": [draw(criteria())] if draw(st.integers(0, 3)) == 0 else [],
        }
        for i in range(n)
    ]


@st.composite
def subtypes(draw) -> dict:
    if draw(st.booleans()):
        order = draw(st.permutations(["index_year", "before_index_year"]))
        return {"by": "timing", "types": [{"name": f"t_{w}", "label": w, "when": w} for w in order]}
    n = draw(st.integers(1, 3))
    types = [
        {"name": f"s{i}", "label": f"type {i}", "codes": draw(st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True))}
        for i in range(n)
    ]
    default = draw(st.integers(0, n - 1))
    if draw(st.booleans()):
        del types[default]["codes"]  # a default without codes
    out = {"by": "codes", "default": f"s{default}", "types": types}
    if draw(st.booleans()):
        out["positions"] = draw(st.lists(st.sampled_from(POSITIONS), min_size=1, max_size=3, unique=True))
    return out


@st.composite
def specs(draw) -> AlgorithmSpec:
    population: dict = {}
    if draw(st.integers(0, 2)) == 0:
        population["min_age"] = draw(st.sampled_from([0, 18, 19, 65]))
    if draw(st.integers(0, 2)) == 0:
        population["max_age"] = draw(st.sampled_from([a for a in (17, 18, 64, 65, 100) if a >= population.get("min_age", 0)]))
    raw = {
        "algorithm": {
            "id": draw(st.sampled_from(["diabetes", "heart_failure"])),
            "name": "Maladie",
            "version": "0.1",
            "date": dt.date(2026, 1, 1),
            "sources": ["test"],
        },
        "population": population,
        "window": {"lookback_years": draw(st.integers(0, 3)), "min_stays": draw(st.sampled_from([1, 1, 2, 3]))},
        "branches": draw(branches()),
        "exclude_stays": [draw(criteria(name=f"x{i}")) for i in range(draw(st.sampled_from([0, 0, 1, 2])))],
        "subtypes": draw(subtypes()),
    }
    return AlgorithmSpec.model_validate(raw)


# --- data ----------------------------------------------------------------------------------------


DATES = st.builds(
    lambda y, d: dt.date(y, 1, 1) + dt.timedelta(days=d),
    st.sampled_from(YEARS),
    st.sampled_from([0, 0, 40, 180, 364]),  # few distinct days: equal exit dates test the stay-id tie-break
)


@st.composite
def stays_and_diagnoses(draw, favoured: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A handful of patients' stays over 2019–2023 and their diagnoses, consistent with each other
    (DP and DR rows equal the stay's columns). ``favoured`` codes are drawn more often."""
    pool = DATA_CODES + NOISE_CODES + 2 * list(favoured)
    n = draw(st.integers(8, 30))
    ids = [1000 + 7 * i for i in draw(st.permutations(range(n)))]  # stay ids in no particular order of dates
    stays, diagnoses = [], []
    for stay_id in ids:
        exit_date = draw(DATES)
        died = draw(st.integers(0, 19)) == 0
        zone = None if draw(st.integers(0, 7)) == 0 else draw(st.sampled_from(ZONES))
        dp = draw(st.sampled_from(pool))
        dr = draw(st.one_of(st.none(), st.sampled_from(pool)))
        das = draw(st.lists(st.sampled_from(pool), max_size=5, unique=True))
        um = [(pos, draw(st.sampled_from(pool))) for pos in draw(st.lists(st.sampled_from(["UM_DP", "UM_DR"]), max_size=2, unique=True))]
        los = draw(st.integers(0, 10))
        stays.append({
            "stay_id": stay_id,
            "source_year": exit_date.year,
            "hospital_id": "010000001",
            "rsa_num": str(stay_id),
            "patient_key": draw(st.sampled_from(PATIENTS)) if draw(st.integers(0, 11)) else None,
            "residence_zone": zone,
            "residence_departement": None if zone is None else zone[:2],
            "age": draw(st.sampled_from(AGES)),
            "sex": draw(st.sampled_from([1, 2, 2, None])),
            "entry_date": exit_date - dt.timedelta(days=los),
            "exit_date": exit_date,
            "length_of_stay": los,
            "entry_mode": "8",
            "provenance": None,
            "via_emergency": False,
            "exit_mode": "9" if died else "8",
            "died": died,
            "ghm": "05M091",
            "stay_type": None,
            "is_session": False,
            "principal_diagnosis": dp,
            "related_diagnosis": dr,
        })
        rows = [(dp, "DP", None)] + ([(dr, "DR", None)] if dr else []) + [(c, "DAS", None) for c in das]
        rows += [(c, pos, 1) for pos, c in um]
        diagnoses += [{"stay_id": stay_id, "code": c, "position": p, "unit_rank": r} for c, p, r in rows]
    return pl.DataFrame(stays, schema=STAY_SCHEMA), pl.DataFrame(diagnoses, schema=DIAGNOSIS_SCHEMA)


@st.composite
def scenarios(draw) -> tuple[AlgorithmSpec, pl.DataFrame, pl.DataFrame]:
    """A spec and data whose codes favour the spec's branches (otherwise few stays qualify)."""
    spec = draw(specs())
    prefixes = {p for b in spec.branches for c in b.all for p in c.codes}
    favoured = tuple(c for c in DATA_CODES if any(c.startswith(p) for p in prefixes))
    stays, diagnoses = draw(stays_and_diagnoses(favoured))
    return spec, stays, diagnoses


ZONE_TERRITORY = pl.DataFrame(
    {"zone_code": ["01001", "01002"], "territory_id": [1, 2], "territory_name": ["Nord", "Sud"]},
    schema={"zone_code": pl.String, "territory_id": pl.Int64, "territory_name": pl.String},
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    scenario=scenarios(),
    index_years=st.lists(st.sampled_from(YEARS), min_size=1, max_size=5, unique=True),
    first_year=st.one_of(st.none(), st.sampled_from([2017, 2019, 2020, 2021])),
    residence_years=st.integers(0, 3),
    method=st.sampled_from(["modal", "latest"]),
    territories=st.booleans(),
)
def test_engine_equals_reference_on_random_specs(scenario, index_years, first_year, residence_years, method, territories):
    spec, stays, diagnoses = scenario
    got, expected = check_cases(spec, stays, diagnoses, index_years, first_year)
    with_res = check_residence(got, expected, stays, residence_years, method, ZONE_TERRITORY if territories else None)
    # what the examples exercise (pytest --hypothesis-show-statistics)
    event(f"rows: {'none' if got.is_empty() else 'some'}")
    if not got.is_empty():
        event(f"non-cases: {'some' if not got['is_case'].all() else 'none'}")
        event(f"incident cases: {'some' if got['incident'].any() else 'none'}")
        event(f"sub-types by {spec.subtypes.by}: {got['subtype'].drop_nulls().n_unique()} distinct")
        event(f"rows without residence: {'some' if with_res['residence_zone'].null_count() else 'none'}")
        event(f"branches held together: {'yes' if got['branches'].str.contains('+', literal=True).any() else 'no'}")


@settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_index_years_are_independent(scenario):
    """The rows of one index year do not depend on which other index years are asked for."""
    from respop.case_finding.engine import find_cases

    spec, stays, diagnoses = scenario
    every = find_cases(spec, stays.lazy(), diagnoses.lazy(), YEARS, first_year=2019).collect()
    for year in (2020, 2023):
        one = find_cases(spec, stays.lazy(), diagnoses.lazy(), [year], first_year=2019).collect()
        keys = ["patient_key", "index_year"]
        assert one.sort(keys).equals(every.filter(pl.col("index_year") == year).sort(keys))
